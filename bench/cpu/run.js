#!/usr/bin/env node
// `npm run bench`: syncbn against its peers on this machine's CPU, side by
// side in one invocation. Peers run alternately, case by case, for several
// rounds, so drift hits all alike; each measurement is timed inside its own
// process (warm-up, then repetitions; the median counts).
//
//   npm run bench                    all cases, writes bench/results/cpu-<date>.{json,svg}
//   npm run bench -- --quick         one tiny shape, few repetitions (the smoke test)
//   npm run bench -- --threads 2 --rounds 3 --out DIR
//   npm run bench -- --case 256x1024 --peers syncbn,pytorch   a subset (while tuning;
//                                    writes cpu-<date>-subset.{json,svg})
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { makeCases, numel } = require('./cases');
const { describe, bandwidth, copyFloor } = require('./machine');
const { markdownTable, enrich, svgChart } = require('./report');

// A full garbage collection before each measurement, so that no peer pays
// for the garbage of the one before it: TensorFlow.js leaves hundreds of MB
// per case, and a major collection inside a 0.1 ms peer's samples showed as
// 4-13 ms samples (bench/NOTES.md 27). The flag is set before the first
// context exists, so the `gc` it exposes is taken from a fresh context.
require('node:v8').setFlagsFromString('--expose-gc');
const collect = process.env.SYNCBN_BENCH_NO_GC ? () => {} : require('node:vm').runInNewContext('gc');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const quick = process.argv.includes('--quick');
const threads = Number(option('threads', process.env.OMP_NUM_THREADS || os.cpus().length));
const rounds = Number(option('rounds', quick ? 1 : 3));
const reps = Number(option('reps', quick ? 3 : 7));
const warmup = quick ? 1 : 2;
// Warm-up lasts at least this long: fresh arrays on this VM run up to 2x
// slower for their first few dozen calls, in every peer.
const warmMs = quick ? 0 : 25;
// A sample times back-to-back calls for at least this long and counts their
// mean, so a 50 us call is not one timer reading among scheduler noise.
const sampleMs = quick ? 0 : 2;
const outDir = path.resolve(option('out', path.join(__dirname, '..', 'results')));
// A slow peer stops repeating after this long in one round (it still runs once).
const budgetMs = quick ? 200 : 800;
// Calls slower than this are timed once, in the first round only.
const SLOW_MS = 1000;

async function loadPeers() {
  const tfjs = require('./peers/tfjs');
  const list = [require('./peers/syncbn'), require('./peers/torch'), tfjs.tfjsCpu, tfjs.tfjsWasm, require('./peers/onnxruntime'), require('./peers/ts_loop'), tfjs.tfjsNode];
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
  return peers;
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
    // A call this slow is its own warm-up: it is the one sample (the JIT
    // warmed up on earlier cases), or this peer alone would run for hours.
    if (last >= SLOW_MS) return [last];
  }
  const batch = Math.max(1, Math.min(1000, Math.floor(sampleMs / last)));
  const samples = [];
  const start = process.hrtime.bigint();
  while (samples.length < reps && (samples.length === 0 || Number(process.hrtime.bigint() - start) / 1e6 < budgetMs)) {
    let ms = 0;
    for (let k = 0; k < batch; k++) ms += await call();
    samples.push(ms / batch);
  }
  return samples;
}

async function measure(peer, c) {
  const p = peer.impl;
  if (p.measureRemote) return p.measureRemote(c, { reps, warmup, warmMs, sampleMs, budgetMs, slowMs: SLOW_MS });
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

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const date = new Date().toISOString().slice(0, 10);
  process.stderr.write(`syncbn CPU benchmark (${quick ? 'quick' : 'full'}), ${threads} threads\n`);
  const machine = describe(threads);
  process.stderr.write(`  machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.caches}\n`);
  const syncbn = require('./peers/syncbn');
  await syncbn.init(threads);
  const bw = bandwidth(quick);
  process.stderr.write(`  memory bandwidth: copy ${bw.copyGBs.toFixed(1)} GB/s, triad ${bw.triadGBs.toFixed(1)} GB/s (${bw.arrayMiB} MiB arrays, read + write)\n`);
  const peers = await loadPeers();
  const only = option('peers', null)?.split(',');
  const live = peers.filter((p) => p.available && (!only || only.includes(p.name)));
  const cases = makeCases(quick).filter((c) => c.id.includes(option('case', '')));
  const copyMs = {};
  for (const c of cases) {
    const key = c.shape.join('x');
    if (!(key in copyMs)) copyMs[key] = copyFloor(numel(c.shape), quick);
  }
  process.stderr.write(`  copy of x to y per shape: ${Object.entries(copyMs).map(([k, ms]) => `${k} ${ms.toFixed(3)} ms`).join(', ')}\n`);
  const samples = new Map(cases.map((c) => [c.id, Object.fromEntries(live.map((p) => [p.name, []]))]));
  const skipped = new Map(cases.map((c) => [c.id, {}]));
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      // Rotate the order each round so no peer always runs on a warm machine.
      const order = live.map((_, i) => live[(i + round) % live.length]);
      for (const p of order) {
        const why = p.impl.supports?.(c);
        if (why) {
          skipped.get(c.id)[p.name] = why;
          continue;
        }
        const got = samples.get(c.id)[p.name];
        if (round > 0 && median(got) >= SLOW_MS) continue;
        collect();
        got.push(...(await measure(p, c)));
      }
      process.stderr.write(`\r  round ${round + 1}/${rounds}: ${c.id.padEnd(36)}`);
    }
    for (const p of live) await p.impl.releaseRemote?.();
  }
  process.stderr.write('\n');
  for (const p of peers) await p.impl.close?.();

  const rows = cases.map((c) => ({
    ...c,
    ms: Object.fromEntries(live.map((p) => [p.name, median(samples.get(c.id)[p.name])])),
    samples: samples.get(c.id),
    skipped: skipped.get(c.id),
  }));
  enrich(rows, bw.roofGBs, copyMs);
  const result = {
    date,
    quick,
    threads,
    rounds,
    reps,
    machine,
    bandwidth: bw,
    copyMs,
    peers: peers.map(({ impl, ...info }) => info),
    rows,
  };
  const table = markdownTable(result);
  process.stdout.write(`\n${table}\n\nratio (x) = peer time / syncbn time: above 1, syncbn is faster.\n`);
  fs.mkdirSync(outDir, { recursive: true });
  // A subset names its files apart, so tuning runs leave the full run's alone.
  const subset = process.argv.includes('--case') || process.argv.includes('--peers');
  const base = path.join(outDir, `cpu-${date}${quick ? '-quick' : subset ? '-subset' : ''}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(result, null, 1));
  fs.writeFileSync(`${base}.svg`, svgChart(result));
  process.stderr.write(`wrote ${path.relative(process.cwd(), base)}.json and .svg\n`);
}

main().catch((e) => {
  console.error(e.stack || e.message);
  process.exit(1);
});
