#!/usr/bin/env node
// `npm run bench`: syncbn's nn modules as users write them (no dispose())
// against PyTorch's nn modules on this machine's CPU, same thread count.
//
// 1. The pair: syncbn and PyTorch alone in the run (no other peer loaded),
//    alternating case by case for several rounds so drift hits both alike;
//    syncbn twice, as users write it (`nn`, outputs left to the garbage
//    collector) and through the functional ops with every output disposed
//    (the kernels' own speed). Each measurement is timed inside its own
//    process: warm-up, then samples of back-to-back calls; the median counts.
// 2. A training loop (forward + backward, `--steps` steps at 32x64x56x56),
//    each peer in a fresh process: time per step and peak RSS.
// 3. With --slow-peers, after the pair: TensorFlow.js (CPU and WebAssembly),
//    ONNX Runtime (inference) and a plain loop, apart, each followed by
//    PyTorch on the same case with the Node process's CPU use measured
//    meanwhile (what a slow peer leaves running).
//
//   npm run bench                     writes bench/results/cpu-<date>.{json,svg}
//   npm run bench -- --quick          one tiny shape, few repetitions (the smoke test)
//   npm run bench -- --case 256x1024  a subset (writes cpu-<date>-subset.*)
//   npm run bench -- --dtypes float32,bfloat16  bfloat16 inputs beside float32 ones (cpu-<date>-bfloat16.*)
//   npm run bench -- --help           every option
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { parseOptions, OptionError, usage } = require('./options');
const { Progress, clock } = require('./progress');
const { makeCases, numel, DTYPES, DTYPE_BYTES } = require('./cases');
const { describe, bandwidth, copyFloor, cpuTimes, coresBusy } = require('./machine');
const { pairTable, loopTable, slowTable, dtypeTable, enrich, svgChart, floorKey } = require('./report');

let opts;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof OptionError)) throw e;
  process.stderr.write(`bench: ${e.message}\n${usage()}\n`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(`${usage()}\n`);
  process.exit(0);
}

// A full garbage collection before each measurement, so that no peer pays
// for the garbage of the one before it (bench/NOTES.md 27). The flag is set
// before the first context exists, so the `gc` it exposes is taken from a
// fresh context.
require('node:v8').setFlagsFromString('--expose-gc');
const collect = process.env.SYNCBN_BENCH_NO_GC ? () => {} : require('node:vm').runInNewContext('gc');

const quick = !!opts.quick;
const dtypes = (opts.dtypes ?? 'float32').split(',');
for (const d of dtypes) {
  if (!DTYPES.includes(d)) {
    process.stderr.write(`bench: --dtypes: unknown dtype '${d}'; expected ${DTYPES.join(', ')}\n${usage()}\n`);
    process.exit(2);
  }
}
const threads = opts.threads ?? Number(process.env.OMP_NUM_THREADS || os.cpus().length);
const rounds = opts.rounds ?? (quick ? 1 : 3);
const reps = opts.reps ?? (quick ? 3 : 7);
const steps = opts.steps ?? (quick ? 20 : 300);
const warmup = quick ? 1 : 3;
// Warm-up lasts at least this long: fresh arrays on this VM run up to 2x
// slower for their first few dozen calls, in every peer.
const warmMs = quick ? 0 : 40;
// A sample times back-to-back calls for at least this long and counts their
// mean: long enough that the collections natural use causes (a scavenge per
// 32 MB of outputs, a mark-compact per 64 MB promoted) fall inside samples
// in proportion, not in a few of them (30 ms samples spread 1.5-2.1x).
const sampleMs = quick ? 0 : 100;
const budgetMs = quick ? 200 : 1500;
// Calls slower than this are timed once (the slow peers' large cases).
const SLOW_MS = 1000;
const LOOP_SHAPE = quick ? [4, 8, 6, 6] : [32, 64, 56, 56];
const outDir = path.resolve(opts.out ?? path.join(__dirname, '..', 'results'));
const timing = { reps, warmup, warmMs, sampleMs, budgetMs, slowMs: SLOW_MS };

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function timeLocal(run, async) {
  const call = async () => {
    const t0 = process.hrtime.bigint();
    if (async) await run();
    else run();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const warmStart = process.hrtime.bigint();
  let last = Infinity;
  for (let i = 0; i < warmup || Number(process.hrtime.bigint() - warmStart) / 1e6 < warmMs; i++) {
    last = await call();
    // A call this slow is its own warm-up and its one sample.
    if (last >= SLOW_MS) return [last];
  }
  const batch = Math.max(1, Math.min(1000, Math.ceil(sampleMs / last)));
  const samples = [];
  const start = process.hrtime.bigint();
  while (samples.length < reps && (samples.length === 0 || Number(process.hrtime.bigint() - start) / 1e6 < budgetMs)) {
    let ms = 0;
    for (let k = 0; k < batch; k++) ms += await call();
    samples.push(ms / batch);
  }
  return samples;
}

/** Samples of one slow peer on one case (the pre-rebuild harness's way). */
async function measureSlow(p, c) {
  if (p.measureRemote) return p.measureRemote(c, timing);
  if (p.activate) await p.activate();
  if (p.prepareAsync) {
    const h = await p.prepareAsync(c);
    try {
      return await timeLocal(h.runAsync, true);
    } finally {
      await h.release?.();
    }
  }
  const h = p.prepare(c);
  try {
    return await timeLocal(h.run, false);
  } finally {
    h.release?.();
  }
}

/** The training loop of syncbn in a fresh Node process. */
function syncbnLoop(style) {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'training_loop.js'), LOOP_SHAPE.join(','), String(steps), String(threads), style],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim().split('\n').pop());
}

const STYLES = ['natural', 'disposed', 'pytorch'];

async function main() {
  const cases = makeCases(quick, dtypes).filter((c) => c.id.includes(opts.case ?? ''));
  if (cases.length === 0) {
    process.stderr.write(`bench: --case '${opts.case}' matches no case; cases are:\n${makeCases(quick, dtypes).map((c) => `  ${c.id}`).join('\n')}\n`);
    process.exit(2);
  }
  const date = new Date().toISOString().slice(0, 10);
  const started = Date.now();
  process.stderr.write(`syncbn CPU benchmark (${quick ? 'quick' : 'full'}), ${threads} threads\n`);
  const machine = describe(threads);
  process.stderr.write(`  machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.caches}\n`);
  const syncbn = require('./peers/syncbn');
  const torch = require('./peers/torch');
  const sInfo = await syncbn.init(threads);
  const tInfo = await torch.init(threads).catch((e) => ({ available: false, reason: e.message }));
  process.stderr.write(`  syncbn: ${sInfo.version}, ${sInfo.threads} thread(s), ${sInfo.detail}\n`);
  process.stderr.write(`  pytorch: ${tInfo.available ? `${tInfo.version}, ${tInfo.threads} thread(s), ${tInfo.detail}` : `not run: ${tInfo.reason}`}\n`);
  // The roofline and copy floors put the times in context; without a C++
  // compiler for their probe the benchmark still runs, and says so.
  let bw = null;
  const copyMs = {};
  try {
    bw = bandwidth(quick);
    process.stderr.write(`  memory bandwidth: copy ${bw.copyGBs.toFixed(1)} GB/s, triad ${bw.triadGBs.toFixed(1)} GB/s (${bw.arrayMiB} MiB arrays, read + write)\n`);
    // A 16-bit case copies the bytes of half as many float32 values.
    for (const c of cases) {
      const key = floorKey(c);
      if (!(key in copyMs)) copyMs[key] = copyFloor(Math.ceil((numel(c.shape) * DTYPE_BYTES[c.dtype]) / 4), quick);
    }
    process.stderr.write(`  copy of x to y per shape: ${Object.entries(copyMs).map(([k, ms]) => `${k} ${ms.toFixed(3)} ms`).join(', ')}\n`);
  } catch (e) {
    process.stderr.write(`  memory bandwidth and copy floors: not measured: ${e.message}\n`);
  }

  // 1. The pair.
  const styles = tInfo.available ? STYLES : STYLES.filter((s) => s !== 'pytorch');
  const samples = new Map(cases.map((c) => [c.id, Object.fromEntries(styles.map((s) => [s, []]))]));
  // Cores that other processes kept busy during each measurement: this
  // machine is shared, and a busy neighbour slows whichever peer it meets.
  const others = new Map(cases.map((c) => [c.id, []]));
  const progress = new Progress(rounds * cases.length * styles.length, 'pair');
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      // Rotate the order each round so neither always runs on a warm machine.
      const order = styles.map((_, i) => styles[(i + round + cases.indexOf(c)) % styles.length]);
      for (const style of order) {
        collect();
        const got = samples.get(c.id)[style];
        const pids = tInfo.available ? { node: process.pid, pytorch: torch.pid() } : { node: process.pid };
        const before = cpuTimes(pids);
        if (style === 'pytorch') got.push(...(await torch.measureRemote(c, timing)));
        else got.push(...(await timeLocal(syncbn.makeRun(c, style), false)));
        const busy = coresBusy(before, cpuTimes(pids));
        if (busy) others.get(c.id).push(busy.others);
        progress.step(`round ${round + 1}/${rounds}, ${c.id}, ${style}`);
      }
    }
    syncbn.releaseInputs();
    if (tInfo.available) await torch.releaseRemote();
  }
  progress.end();
  const rows = cases.map((c) => {
    const s = samples.get(c.id);
    const ms = Object.fromEntries(styles.map((k) => [k, median(s[k])]));
    const p90 = Object.fromEntries(styles.map((k) => [k, quantile(s[k], 0.9)]));
    return { ...c, ms, p90, samples: s, otherCores: { median: median(others.get(c.id)), max: others.get(c.id).length ? Math.max(...others.get(c.id)) : null } };
  });
  enrich(rows, copyMs);

  // 2. The training loop, each peer in a fresh process, alternating.
  const loopRuns = { natural: [], disposed: [], pytorch: [] };
  const loopProgress = new Progress(rounds * styles.length, 'training loop');
  for (let round = 0; round < rounds; round++) {
    for (const style of styles.map((_, i) => styles[(i + round) % styles.length])) {
      loopRuns[style].push(style === 'pytorch' ? torch.trainingLoop(LOOP_SHAPE, steps, threads) : syncbnLoop(style));
      loopProgress.step(`round ${round + 1}/${rounds}, ${style}`);
    }
  }
  loopProgress.end();
  const loop = { shape: LOOP_SHAPE, steps, runs: loopRuns, summary: {} };
  for (const style of styles) {
    const runs = loopRuns[style];
    loop.summary[style] = {
      msPerStep: median(runs.map((r) => r.msPerStep)),
      p90Ms: median(runs.map((r) => r.p90Ms)),
      medianMs: median(runs.map((r) => r.medianMs)),
      rssBeforeMB: median(runs.map((r) => r.rssBeforeMB)),
      peakRssMB: Math.max(...runs.map((r) => r.peakRssMB)),
    };
  }

  // 3. The slow peers, apart.
  let slow = null;
  if (opts['slow-peers']) slow = await slowPeers(rows);

  await torch.close();
  const result = {
    date, quick, threads, rounds, reps, steps, sampleMs, dtypes, machine, bandwidth: bw, copyMs,
    peers: { syncbn: sInfo, pytorch: tInfo }, rows, loop, slow, minutes: (Date.now() - started) / 60000,
  };
  process.stdout.write(`\n${pairTable(result)}\n\n${loopTable(result)}\n`);
  if (dtypes.length > 1) process.stdout.write(`\n${dtypeTable(result)}\n`);
  if (slow) process.stdout.write(`\n${slowTable(result)}\n`);
  process.stdout.write('\nx = PyTorch time / syncbn time: above 1, syncbn is faster. nn = modules as users write them (no dispose()); F+dispose = functional ops, outputs disposed.\n');
  fs.mkdirSync(outDir, { recursive: true });
  // A subset names its files apart, so tuning runs leave the full run's alone.
  const subset = opts.case !== undefined || opts.rounds !== undefined || opts.reps !== undefined;
  const halves = dtypes.filter((d) => d !== 'float32');
  const base = path.join(outDir, `cpu-${date}${halves.map((d) => `-${d}`).join('')}${quick ? '-quick' : subset ? '-subset' : ''}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(result, null, 1));
  fs.writeFileSync(`${base}.svg`, svgChart(result));
  process.stderr.write(`wrote ${path.relative(process.cwd(), base)}.json and .svg after ${clock(Date.now() - started)}\n`);
}

/**
 * TensorFlow.js, ONNX Runtime and the plain loop on the --slow-case cases,
 * after the pair is done. After each slow peer's measurement PyTorch runs the
 * same case again, and the Node process's CPU time meanwhile is recorded:
 * work a slow peer leaves behind (its threads, V8 collecting its garbage)
 * competes with PyTorch for the cores, which is what made PyTorch's numbers
 * in the old all-peers run differ from the pair's (bench/NOTES.md 31).
 */
async function slowPeers(pairRows) {
  const torch = require('./peers/torch');
  const tfjs = require('./peers/tfjs');
  const list = [tfjs.tfjsCpu, tfjs.tfjsWasm, require('./peers/onnxruntime'), require('./peers/ts_loop'), tfjs.tfjsNode];
  const peers = [];
  for (const p of list) {
    let info;
    try {
      info = await p.init(threads);
    } catch (e) {
      info = { available: false, reason: e.message };
    }
    peers.push({ impl: p, name: p.name, ...info });
    process.stderr.write(`  ${p.name}: ${info.available ? `${info.version}, ${info.threads} thread(s)${info.detail ? `, ${info.detail}` : ''}` : `not run: ${info.reason}`}\n`);
  }
  const live = peers.filter((p) => p.available);
  const wanted = (opts['slow-case'] ?? (quick ? 'contiguous' : '64x256x14x14')).split(',');
  const cases = makeCases(quick).filter((c) => wanted.some((w) => c.id.includes(w)));
  if (cases.length === 0) throw new Error(`--slow-case '${opts['slow-case']}' matches no case`);
  const rows = [];
  const progress = new Progress(cases.length * (live.length + 1), 'slow peers');
  // PyTorch's median on the case, and the cores kept busy meanwhile by this
  // Node process, by PyTorch itself and by every other process.
  const torchAfter = async (c) => {
    const a = cpuTimes({ node: process.pid, pytorch: torch.pid() });
    const s = await torch.measureRemote(c, timing);
    return { ms: median(s), cores: coresBusy(a, cpuTimes({ node: process.pid, pytorch: torch.pid() })) };
  };
  for (const c of cases) {
    const row = { id: c.id, ms: {}, pytorchAfter: {}, pytorchAfterCollect: {}, skipped: {} };
    collect();
    row.pytorchAfter.alone = await torchAfter(c);
    progress.step(`${c.id}, pytorch alone`);
    for (const p of live) {
      const why = p.impl.supports?.(c);
      if (why) {
        row.skipped[p.name] = why;
        progress.step();
        continue;
      }
      collect();
      row.ms[p.name] = median(await measureSlow(p.impl, c));
      // PyTorch meets the machine as the peer left it; then again after a
      // full collection, as the old all-peers run measured it (the
      // collection's freeing may go on in V8's threads meanwhile).
      row.pytorchAfter[p.name] = await torchAfter(c);
      collect();
      row.pytorchAfterCollect[p.name] = await torchAfter(c);
      progress.step(`${c.id}, ${p.name}`);
    }
    const pair = pairRows.find((r) => r.id === c.id);
    row.syncbnNatural = pair ? pair.ms.natural : null;
    rows.push(row);
  }
  progress.end();
  for (const p of peers) await p.impl.close?.();
  return { peers: peers.map(({ impl, ...info }) => info), rows };
}

main().catch((e) => {
  console.error(e.stack || e.message);
  process.exit(1);
});
