#!/usr/bin/env node
// npm run bench:dist: the cost of synchronization. For each world size and
// channel count: syncbn's allReduce over gloo (processes on loopback) and
// threads (worker threads of one process), SyncBatchNorm's overhead per layer
// (forward + backward over BatchNorm2d on the same local batch), and
// PyTorch's Gloo all_reduce of the same payload (Debian's python3-torch),
// measured in the same run, one kernel thread per rank. Prints the tables and
// writes <out>/dist-<date>.json and .svg. Not a test: nothing is asserted.
// The NCCL side needs a GPU and is not measured here.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { Worker } = require('node:worker_threads');
const { markdownTables, svgChart } = require('./report');

const ROOT = path.resolve(__dirname, '../..');
const BACKENDS = ['gloo', 'threads', 'torch'];
const PYTHON = process.env.SYNCBN_PYTHON || '/usr/bin/python3';

const USAGE = `usage: npm run bench:dist -- [options]
  --worlds LIST      world sizes, e.g. 2,4 (default 2,4; each 2..16)
  --backends LIST    of gloo, threads, torch (PyTorch's Gloo) (default all three)
  --channels LIST    channel counts C (default 64,256,1024,4096); payload 3C float64
  --samples N        timed blocks per measurement, the median is reported (default 7)
  --sample-ms MS     length of one timed block (default 100)
  --batch N          SyncBatchNorm local batch [N, C, S, S] (default 8)
  --spatial S        (default 4)
  --out DIR          where the JSON and SVG go (default bench/results)
  --dist DIR         the syncbn build to measure (default this checkout's dist/; another
                     tree's dist/ for before/after runs under the same conditions)
  --quick            2 samples of 5 ms: checks the harness, measures nothing
  -h, --help`;

function usageError(msg) {
  process.stderr.write(`bench:dist: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function intList(text, name, min, max) {
  const parts = String(text).split(',');
  const out = parts.map((p) => Number(p.trim()));
  for (let i = 0; i < out.length; i++) {
    if (parts[i].trim() === '' || !Number.isInteger(out[i]) || out[i] < min || out[i] > max) {
      usageError(`--${name} takes integers from ${min} to ${max} separated by commas, got '${text}'`);
    }
  }
  if (new Set(out).size !== out.length) usageError(`--${name} repeats a value: '${text}'`);
  return out;
}

function int(text, name, min, max) {
  return intList(text, name, min, max)[0] ?? usageError(`--${name} takes one integer`);
}

function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        worlds: { type: 'string' },
        backends: { type: 'string' },
        channels: { type: 'string' },
        samples: { type: 'string' },
        'sample-ms': { type: 'string' },
        batch: { type: 'string' },
        spatial: { type: 'string' },
        out: { type: 'string' },
        dist: { type: 'string' },
        quick: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    usageError(e.message);
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const one = (k) => (parsed[k] !== undefined && parsed[k].includes(',') ? usageError(`--${k} takes one integer, got '${parsed[k]}'`) : parsed[k]);
  const backends = (parsed.backends ?? BACKENDS.join(',')).split(',').map((b) => b.trim());
  for (const b of backends) if (!BACKENDS.includes(b)) usageError(`--backends takes ${BACKENDS.join(', ')}; got '${b}'`);
  if (new Set(backends).size !== backends.length) usageError(`--backends repeats a value: '${parsed.backends}'`);
  const quick = parsed.quick ?? false;
  return {
    worlds: intList(parsed.worlds ?? '2,4', 'worlds', 2, 16),
    backends,
    channels: intList(parsed.channels ?? '64,256,1024,4096', 'channels', 1, 65536),
    samples: int(one('samples') ?? (quick ? '2' : '7'), 'samples', 1, 1000),
    sampleMs: int(one('sample-ms') ?? (quick ? '5' : '100'), 'sample-ms', 1, 60000),
    batch: int(one('batch') ?? '8', 'batch', 2, 4096),
    spatial: int(one('spatial') ?? '4', 'spatial', 1, 1024),
    out: path.resolve(parsed.out ?? path.join(ROOT, 'bench', 'results')),
    dist: distDir(parsed.dist),
    quick,
  };
}

function distDir(given) {
  const dir = path.resolve(given ?? path.join(ROOT, 'dist'));
  if (!fs.existsSync(path.join(dir, 'index.js'))) usageError(`--dist: ${dir} holds no built syncbn (no index.js; run npx tsc -p tsconfig.build.json there)`);
  return dir;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Why `backend` cannot run here, or null. */
function unavailable(backend, opts) {
  if (backend === 'torch') {
    const r = spawnSync(PYTHON, ['-c', 'import torch, torch.distributed as d; assert d.is_gloo_available(); print(torch.__version__)'], { encoding: 'utf8' });
    return r.status === 0 ? null : `${PYTHON} has no torch with Gloo (install Debian's python3-torch): ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  }
  if (backend === 'gloo') {
    const { features } = require(opts.dist);
    return features.gloo ? null : 'this build of syncbn has no Gloo';
  }
  return null;
}

function rankConfig(opts, backend, world) {
  return {
    dist: opts.dist, backend, world, channels: opts.channels, samples: opts.samples, sampleMs: opts.sampleMs,
    warmup: opts.quick ? 2 : 20, minIters: opts.quick ? 1 : 5, maxIters: opts.quick ? 5 : 20000, batch: opts.batch, spatial: opts.spatial,
    timeoutMs: 120000, name: `bench_dist_${process.pid}_${world}`,
  };
}

/** Runs `world` processes of `argv`; resolves with rank 0's JSON line. */
async function runProcesses(command, argv, world, timeoutMs) {
  const port = await freePort();
  const procs = [];
  const outs = [];
  const done = [];
  for (let r = 0; r < world; r++) {
    const env = { ...process.env, RANK: String(r), WORLD_SIZE: String(world), LOCAL_RANK: String(r), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: '1', SYNCBN_SECRET: `bench-dist-${process.pid}-${port}` };
    const p = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    p.stdout.on('data', (d) => (out.stdout += d));
    p.stderr.on('data', (d) => (out.stderr += d));
    procs.push(p);
    outs.push(out);
    done.push(new Promise((resolve) => p.on('close', (code, signal) => resolve({ code, signal }))));
  }
  const timer = setTimeout(() => procs.forEach((p) => p.kill('SIGKILL')), timeoutMs);
  const codes = await Promise.all(done);
  clearTimeout(timer);
  const bad = codes.findIndex((c) => c.code !== 0);
  if (bad >= 0) {
    throw new Error(`rank ${bad} exited with ${codes[bad].code ?? codes[bad].signal}: ${outs[bad].stderr.trim().split('\n').slice(-3).join(' / ')}`);
  }
  const line = outs[0].stdout.trim().split('\n').pop();
  return JSON.parse(line);
}

async function runThreads(cfg) {
  const workers = Array.from({ length: cfg.world }, (_, r) => new Worker(path.join(__dirname, 'rank.js'), { workerData: { ...cfg, rank: r } }));
  const results = await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  })));
  await Promise.all(workers.map((w) => w.terminate()));
  const failed = results.find((r) => r.error);
  if (failed) throw new Error(failed.error);
  return results.find((r) => r.rank === 0);
}

async function runOne(opts, backend, world) {
  const cfg = rankConfig(opts, backend, world);
  const t0 = Date.now();
  let res;
  if (backend === 'threads') res = await runThreads(cfg);
  else if (backend === 'gloo') res = await runProcesses(process.execPath, [path.join(__dirname, 'rank.js'), JSON.stringify(cfg)], world, 300000);
  else res = await runProcesses(PYTHON, [path.join(__dirname, 'torch_rank.py'), JSON.stringify(cfg)], world, 300000);
  process.stderr.write(`  ${backend} world ${world}: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return { backend, world, ...res };
}

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const { describe } = require(path.join(ROOT, 'bench', 'cpu', 'machine'));
  const machine = describe(1);
  const date = new Date().toISOString().slice(0, 10);
  process.stderr.write(`bench:dist on ${machine.cpu}, ${machine.cores} cores, node ${machine.node}; 1 kernel thread per rank; ranks on loopback\n`);
  process.stderr.write('  nccl: not run (needs CUDA GPUs; the gloo and threads backends and PyTorch\'s Gloo are measured)\n');
  const runs = [];
  const t0 = Date.now();
  for (const world of opts.worlds) {
    for (const backend of opts.backends) {
      const why = unavailable(backend, opts);
      if (why) {
        process.stderr.write(`  ${backend} world ${world}: not run: ${why}\n`);
        runs.push({ backend, world, skipped: why });
        continue;
      }
      runs.push(await runOne(opts, backend, world));
    }
  }
  const torch = runs.find((r) => r.torch)?.torch ?? null;
  const result = { date, machine, options: opts, torch, seconds: (Date.now() - t0) / 1000, runs };
  process.stdout.write(`${markdownTables(result)}\n`);
  fs.mkdirSync(opts.out, { recursive: true });
  const base = path.join(opts.out, `dist-${date}${opts.quick ? '-quick' : ''}`);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 1)}\n`);
  fs.writeFileSync(`${base}.svg`, svgChart(result));
  process.stderr.write(`wrote ${base}.json and .svg (${result.seconds.toFixed(0)} s)\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:dist failed: ${e.stack || e}\n`);
  process.exit(1);
});
