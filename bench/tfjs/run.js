#!/usr/bin/env node
// `npm run bench:tfjs`: syncbn's tfjs layer against tf.layers.batchNormalization,
// as a tfjs model calls them (layer.apply, tf.grads with dy), on tfjs's cpu
// and wasm backends, in one process per backend:
//
// 1. the layer: training forward, forward + backward and inference at
//    [32,56,56,64] and [64,14,14,256] channels-last (axis -1) and their
//    channels-first equivalents (axis 1); the median of timed calls after a
//    warm-up; on wasm, the share of syncbn's time spent copying its outputs
//    into the heap (the one copy that backend forces);
// 2. one training step (trainOnBatch) of the example's convnet
//    (examples/tfjs_data_parallel.js) with each layer;
// 3. SyncBatchNormalization's forward + backward at world 2 (2 Gloo ranks
//    under syncbn-run, each with the same local batch) against world 1, one
//    kernel thread per rank: the cost of the two syncs.
//
//   npm run bench:tfjs                 writes bench/results/tfjs-<date>.{json,svg}
//   npm run bench:tfjs -- --quick      small shapes, few repetitions (the smoke test)
//   npm run bench:tfjs -- --help
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Progress } = require('../cpu/progress');
const { svg, table } = require('./report');

const USAGE = `usage: npm run bench:tfjs -- [--quick] [--backends cpu,wasm] [--out DIR] [--help]
  --quick          small shapes, few repetitions (a smoke test; its timings mean little)
  --backends LIST  tfjs backends to run (default cpu,wasm)
  --out DIR        where to write tfjs-<date>.{json,svg} (default bench/results)`;

function parse(argv) {
  const opts = { quick: false, backends: ['cpu', 'wasm'], out: path.join(__dirname, '..', 'results') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help') opts.help = true;
    else if (a === '--child') opts.child = argv[++i];
    else if (a === '--quick') opts.quick = true;
    else if (a === '--backends' || a === '--out') {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      if (a === '--out') opts.out = path.resolve(v);
      else {
        opts.backends = v.split(',');
        const bad = opts.backends.filter((b) => b !== 'cpu' && b !== 'wasm');
        if (bad.length) throw new Error(`--backends: unknown backend ${bad.join(', ')} (cpu, wasm)`);
      }
    } else throw new Error(`unknown option ${a}`);
  }
  return opts;
}

let opts;
try {
  opts = parse(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`bench:tfjs: ${e.message}\n${USAGE}\n`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const LAYER_CASES = opts.quick
  ? [{ shape: [4, 6, 6, 8], axis: -1 }, { shape: [4, 8, 6, 6], axis: 1 }]
  : [
    { shape: [32, 56, 56, 64], axis: -1 },
    { shape: [64, 14, 14, 256], axis: -1 },
    { shape: [32, 64, 56, 56], axis: 1 },
    { shape: [64, 256, 14, 14], axis: 1 },
  ];
const MODES = ['train-fwd', 'train-fwdbwd', 'infer'];
const SYNC_SHAPE = opts.quick ? [4, 6, 6, 8] : [32, 28, 28, 64];
const timing = opts.quick ? { warmup: 1, reps: 3, slowReps: 1, budgetMs: 200 } : { warmup: 2, reps: 15, slowReps: 3, budgetMs: 3000 };

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Median ms of `fn` after a warm-up; slow calls (over 1 s) are timed fewer times. */
function time(fn) {
  for (let i = 0; i < timing.warmup; i++) fn();
  const samples = [];
  const start = Date.now();
  for (;;) {
    const t0 = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const slow = samples[0] > 1000;
    if (samples.length >= (slow ? timing.slowReps : timing.reps) && (slow || Date.now() - start > timing.budgetMs || samples.length >= 4 * timing.reps)) break;
  }
  return { ms: median(samples), samples };
}

/** One backend's layer and convnet rows, measured in this (child) process. */
async function measureBackend(backend) {
  const tf = require('@tensorflow/tfjs');
  if (backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
  const warn = console.warn;
  console.warn = () => undefined; // tfjs advises tfjs-node on the first cpu write
  await tf.setBackend(backend);
  await tf.ready();
  tf.tensor([0]).dispose();
  console.warn = warn;
  const sbn = require('syncbn/tfjs');
  const { getNumThreads, setNumThreads } = require('syncbn');
  const threads = getNumThreads();
  const progress = new Progress(LAYER_CASES.length * MODES.length + 1, `${backend}:`);
  const rows = [];
  for (const c of LAYER_CASES) {
    const x = tf.randomNormal(c.shape, 1, 2);
    const dy = tf.randomNormal(c.shape);
    const make = {
      syncbn: () => sbn.batchNormalization({ axis: c.axis }),
      tfjs: () => tf.layers.batchNormalization({ axis: c.axis }),
    };
    const layers = { syncbn: make.syncbn(), tfjs: make.tfjs() };
    for (const mode of MODES) {
      const run = (layer) => {
        if (mode === 'train-fwdbwd') return () => tf.dispose(tf.grads((xx) => layer.apply(xx, { training: true }))([x], dy));
        return () => tf.dispose(layer.apply(x, { training: mode === 'train-fwd' }));
      };
      const row = { backend, shape: c.shape, axis: c.axis, mode, ms: {} };
      row.ms.syncbn = time(run(layers.syncbn)).ms;
      setNumThreads(1);
      row.ms.syncbn1 = time(run(layers.syncbn)).ms;
      setNumThreads(threads);
      try {
        // Fresh layers (the timed ones have moved their statistics unequally): tfjs's is right only along
        // the last axis, as its kernel indexes the statistics by the last dim.
        const fresh = { syncbn: make.syncbn(), tfjs: make.tfjs() };
        row.tfjsMaxDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(fresh.syncbn.apply(x, { training: mode !== 'infer' }),
          fresh.tfjs.apply(x, { training: mode !== 'infer' })))).dataSync()[0]);
        row.ms.tfjs = time(run(layers.tfjs)).ms;
      } catch (e) {
        row.ms.tfjs = null;
        row.tfjsError = e.message.split('\n')[0];
      }
      if (backend === 'wasm') {
        // The forced copy: a tfjs tensor made from an output-sized Float32Array, per output syncbn hands back.
        const values = new Float32Array(x.size);
        row.copyMs = time(() => tf.tensor(values, c.shape).dispose()).ms * (mode === 'train-fwdbwd' ? 2 : 1);
      }
      rows.push(row);
      progress.step(`${c.shape.join('x')} axis ${c.axis} ${mode}`);
    }
    tf.dispose([x, dy]);
    for (const l of Object.values(layers)) l.dispose();
  }

  // Model steps: the example's convnet (tfjs's wasm backend cannot train
  // convolutions: it has no Conv2DBackpropFilter kernel) and an MLP.
  const models = {};
  for (const spec of modelSpecs(opts.quick)) {
    if (backend === 'wasm' && spec.conv) {
      models[spec.name] = { skipped: 'tfjs\'s wasm backend has no Conv2DBackpropFilter kernel' };
      continue;
    }
    const xs = tf.randomUniform(spec.input, 0, 1, 'float32', 1);
    const ys = tf.oneHot(tf.tensor1d(Array.from({ length: spec.input[0] }, (_, i) => i % 4), 'int32'), 4);
    const ms = {};
    for (const which of ['syncbn', 'tfjs']) {
      const net = spec.build(tf, which === 'syncbn' ? () => sbn.syncBatchNormalization() : () => tf.layers.batchNormalization());
      net.compile({ optimizer: tf.train.sgd(0.05), loss: 'categoricalCrossentropy' });
      for (let i = 0; i < timing.warmup; i++) await net.trainOnBatch(xs, ys);
      const r = [];
      for (let i = 0; i < Math.max(3, timing.reps / 3); i++) {
        const t0 = process.hrtime.bigint();
        await net.trainOnBatch(xs, ys);
        r.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      ms[which] = median(r);
      net.dispose();
    }
    models[spec.name] = { input: spec.input, ms };
    tf.dispose([xs, ys]);
  }
  progress.step('model steps');
  progress.end();
  return { backend, version: tf.version_core, threads, rows, models };
}

/** The models timed for one training step (trainOnBatch), each with the batch normalization layer given. */
function modelSpecs(quick) {
  const size = quick ? 8 : 12;
  return [
    {
      // examples/tfjs_data_parallel.js's convnet at its global batch.
      name: `the example's convnet, ${32} images ${size}x${size}x3`,
      conv: true,
      input: [32, size, size, 3],
      build: (tf, bn) => tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [size, size, 3], filters: 8, kernelSize: 3, padding: 'same' }),
          bn(), tf.layers.reLU(), tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same' }),
          bn(), tf.layers.reLU(), tf.layers.globalAveragePooling2d({}),
          tf.layers.dense({ units: 4, activation: 'softmax' }),
        ],
      }),
    },
    {
      name: `an MLP (dense 256, BN, relu, dense 256, BN, relu, dense 4), ${quick ? 16 : 512} rows of 128`,
      conv: false,
      input: [quick ? 16 : 512, 128],
      build: (tf, bn) => tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [128], units: 256 }), bn(), tf.layers.reLU(),
          tf.layers.dense({ units: 256 }), bn(), tf.layers.reLU(),
          tf.layers.dense({ units: 4, activation: 'softmax' }),
        ],
      }),
    },
  ];
}

/** SyncBatchNormalization forward + backward on each rank of a world (child processes). */
function measureSync() {
  const script = path.join(__dirname, 'sync_rank.js');
  const env = { ...process.env, OMP_NUM_THREADS: '1', SYNC_SHAPE: JSON.stringify(SYNC_SHAPE), SYNC_REPS: String(timing.reps) };
  const one = JSON.parse(execFileSync(process.execPath, [script], { env, encoding: 'utf8' }).trim().split('\n').pop());
  const port = 20000 + Math.floor(Math.random() * 20000);
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', '..', 'bin', 'syncbn-run.js'), '--nproc-per-node', '2', '--master-port', String(port), script], { env, encoding: 'utf8' });
  const ranks = out.trim().split('\n').filter((l) => l.includes('{')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
  return { shape: SYNC_SHAPE, world1: one.ms, world2: Math.max(...ranks.map((r) => r.ms)), ranks };
}

async function main() {
  if (opts.child) {
    const result = await measureBackend(opts.child);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const tfVersion = require('@tensorflow/tfjs/package.json').version;
  process.stderr.write(`bench:tfjs: @tensorflow/tfjs ${tfVersion}, node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0].model})\n`);
  const backends = [];
  for (const b of opts.backends) {
    const child = path.join(__dirname, 'run.js');
    const out = execFileSync(process.execPath, [child, '--child', b, ...(opts.quick ? ['--quick'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    backends.push(JSON.parse(out.trim().split('\n').pop()));
  }
  process.stderr.write('  sync: world 1, then world 2 under syncbn-run\n');
  const sync = measureSync();
  const result = {
    date: new Date().toISOString(), quick: opts.quick, tfjs: tfVersion, node: process.version,
    machine: { cores: os.cpus().length, cpu: os.cpus()[0].model }, backends, sync,
  };
  process.stdout.write(table(result));
  fs.mkdirSync(opts.out, { recursive: true });
  const base = path.join(opts.out, `tfjs-${result.date.slice(0, 10)}${opts.quick ? '-quick' : ''}`);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 1)}\n`);
  fs.writeFileSync(`${base}.svg`, svg(result));
  process.stderr.write(`bench:tfjs: wrote ${base}.json and .svg\n`);
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  });
}
