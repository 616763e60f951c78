#!/usr/bin/env node
// The GPU suite, as a plain Node program (the GPU machine has no npm tree):
// every golden case the jest suites run on the CPU (test/golden/checks.js:
// modules_float32/64.json, varied.json, ops.json, momentum.json, half.json,
// edges.json, with the same checks and tolerances) on CUDA, in both memory
// formats, and SyncBatchNorm's device ops over ops.json's workers; then
// device checks and NCCL in a world of one (rendezvous, collectives, the
// Welford merge, gradients, SyncBatchNorm and its device path), and
// nn.SyncBatchNorm over NCCL with one process per GPU where there are two.
// A fixture file it does not know is reported and counted as skipped.
//
//   node test/gpu/check_cuda.js               on 'cuda'; exits 1 without a GPU
//   node test/gpu/check_cuda.js --suites fixtures|nccl  one part only
//   node test/gpu/check_cuda.js --device cpu  the same checks dispatched on the
//     CPU (device-only and NCCL checks are skipped, each counted):
//     what `npm test` runs everywhere, so the suite's logic and fixture
//     handling are tested without a GPU.
// Closes with "N passed, N failed, N skipped"; exits 1 on any failure.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { cuda, nn, F, tensor, distributed: dist } = require(path.resolve(__dirname, '../../dist'));

// The golden cases and their checks, the jest suites' own (test/golden/checks.js).
const golden = require('../golden/checks');
const { FIXTURES, TOLERANCE: TOL, close, equal, formatsFor, load } = golden;
const lib = require(path.resolve(__dirname, '../../dist'));
const argDevice = process.argv.indexOf('--device') >= 0 ? process.argv[process.argv.indexOf('--device') + 1] : 'cuda';
if (argDevice !== 'cuda' && argDevice !== 'cpu') {
  console.log(`check_cuda.js: --device must be 'cuda' or 'cpu', got ${argDevice}`);
  process.exit(2);
}
const DEVICE = argDevice;
const suitesArg = process.argv.indexOf('--suites') >= 0 ? process.argv[process.argv.indexOf('--suites') + 1] : 'fixtures,nccl';
const SUITES = new Set(suitesArg.split(','));
if ([...SUITES].some((x) => x !== 'fixtures' && x !== 'nccl')) {
  console.log(`check_cuda.js: --suites takes fixtures and/or nccl, got ${suitesArg}`);
  process.exit(2);
}
const ON_GPU = DEVICE === 'cuda';
// Fixture files written by other generators, with no CUDA check of their own here.
const HANDLED = new Set(golden.FILES);

let passed = 0;
let failed = 0;
let skipped = 0;

/** The op ran where it was asked to: a result on the host would mean a silent fallback. */
function onDevice(t, label) {
  return golden.onDevice(t, DEVICE, label);
}

function check(name, fn) {
  try {
    fn();
    passed++;
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

function skip(name, why) {
  skipped++;
  console.log(`skip ${name}: ${why}`);
}

if (ON_GPU && !cuda.isAvailable()) {
  console.log(`no usable GPU: ${cuda.unavailableReason()}`);
  console.log('0 passed, 1 failed, 0 skipped');
  process.exit(1);
}
console.log(ON_GPU ? `GPU: ${cuda.getDeviceName(0)} (${cuda.deviceCount()} device(s))` : 'dry run on the CPU: the GPU suite\'s checks, dispatched on cpu');

/** Rows [start, start + n) of a logical-order batch. */
function batchSlice(values, shape, start, n) {
  const per = values.length / shape[0];
  return values.slice(start * per, (start + n) * per);
}

// SyncBatchNorm's device path and its ops (lib/backends/cuda.ts), loaded from the build.
const SYNC = require(path.resolve(__dirname, '../../dist/backends/cuda'));

/**
 * SyncBatchNorm's device ops over an ops fixture's workers (`splits`, an
 * empty one included) against PyTorch's numbers for the whole batch: each
 * worker's Welford summary, packed rank-major as NCCL's all-gather leaves
 * them (device copies stand in for the collective, which needs one GPU per
 * rank), merged in rank order with the running-stat update; then each
 * worker's elemt, its backward sums added on the device as the all-reduce
 * adds them, the grads accumulated on the device, and each worker's grad
 * input with the merged count.
 */
function syncOpsCase(c, fmt) {
  const tol = TOL[c.dtype];
  const dtype = c.dtype;
  const C = c.shape[1];
  const on = { dtype, device: DEVICE };
  const vec = (v) => tensor(v, [C], on);
  const weight = vec(c.weight);
  const bias = vec(c.bias);
  const e = c.expected;
  const world = c.splits.length;
  const parts = [];
  let start = 0;
  for (const n of c.splits) {
    const shape = [n, ...c.shape.slice(1)];
    parts.push({
      start, n,
      x: tensor(batchSlice(c.x, c.shape, start, n), shape, { ...on, memoryFormat: fmt }),
      dy: tensor(batchSlice(c.dy, c.shape, start, n), shape, { ...on, memoryFormat: fmt }),
    });
    start += n;
  }
  const triple = 3 * C * 8;
  const gathered = tensor(new Float64Array(world * 3 * C), [world * 3 * C], { dtype: 'float64', device: DEVICE });
  parts.forEach((p, w) => gathered.cudaStorage().buffer.copyFrom(onDevice(SYNC.batchNormWelfordSummary(p.x), 'summary').cudaStorage().buffer, triple, w * triple, 0));
  const rm = vec(c.running_mean);
  const rv = vec(c.running_var);
  const anyPart = parts.find((p) => p.n > 0).x;
  const g = SYNC.batchNormGatherWelford(gathered, world, anyPart, rm, rv, { eps: c.eps, momentum: c.momentum }, 'test');
  equal(g.count, c.x.length / C, 'merged count');
  close(onDevice(g.mean, 'merged mean'), e.mean, tol, 'merged mean');
  close(onDevice(g.invstd, 'merged invstd'), e.invstd, tol, 'merged invstd');
  close(rm, e.running_mean, tol, 'merged running mean');
  close(rv, e.running_var, tol, 'merged running var');

  let sumDy = null;
  let sumDyXmu = null;
  const grads = { weight: null, bias: null };
  for (const p of parts.filter((q) => q.n > 0)) {
    const y = onDevice(F.batchNormElemt(p.x, weight, bias, g.mean, g.invstd), 'worker output');
    close(y, batchSlice(e.y, c.shape, p.start, p.n), tol, `worker at row ${p.start} output`);
    const r = F.batchNormBackwardReduce(p.dy, p.x, g.mean, g.invstd, weight);
    if (sumDy === null) {
      sumDy = r.sumDy;
      sumDyXmu = r.sumDyXmu;
      grads.weight = r.gradWeight;
      grads.bias = r.gradBias;
    } else {
      SYNC.addInto(sumDy, r.sumDy, 'test');
      SYNC.addInto(sumDyXmu, r.sumDyXmu, 'test');
      SYNC.cuda.addInto(grads.weight, r.gradWeight, 'test');
      SYNC.cuda.addInto(grads.bias, r.gradBias, 'test');
    }
  }
  close(onDevice(sumDy, 'summed sum_dy'), e.sum_dy, tol, 'summed sum_dy');
  close(sumDyXmu, e.sum_dy_xmu, tol, 'summed sum_dy_xmu');
  close(onDevice(grads.weight, 'accumulated grad weight'), e.grad_weight, tol, 'accumulated grad weight');
  close(grads.bias, e.grad_bias, tol, 'accumulated grad bias');
  for (const p of parts.filter((q) => q.n > 0)) {
    const dx = onDevice(F.batchNormBackwardElemt(p.dy, p.x, g.mean, g.invstd, weight, sumDy, sumDyXmu, g.count), 'worker grad input');
    close(dx, batchSlice(e.dx, c.shape, p.start, p.n), tol, `worker at row ${p.start} grad input`);
  }

  // One value per channel over the group: the caller refuses it, so the running stats stay.
  const one = tensor(c.x.slice(0, C), [1, C], on);
  const lone = tensor(new Float64Array(3 * C), [3 * C], { dtype: 'float64', device: DEVICE });
  lone.cudaStorage().buffer.copyFrom(SYNC.batchNormWelfordSummary(one).cudaStorage().buffer);
  const orm = vec(c.running_mean);
  const orv = vec(c.running_var);
  equal(SYNC.batchNormGatherWelford(lone, 1, one, orm, orv, { eps: c.eps, momentum: c.momentum }, 'test').count, 1, 'count of one value');
  close(orm, c.running_mean, tol, 'running mean after one value');
  close(orv, c.running_var, tol, 'running var after one value');
}

const ran = [];

function fixtureSuite() {
  // Every golden case the jest suites run on the CPU, here on DEVICE.
  for (const family of golden.FAMILIES) {
    for (const c of golden.cases(family)) check(c.name, () => c.run(lib, DEVICE));
  }
  ran.push(...golden.FILES);

  // SyncBatchNorm's device ops over each ops.json case's workers: device only.
  for (const c of load('ops.json').cases) {
    const name = `ops.json ${c.name}: SyncBatchNorm's device ops over workers [${c.splits}]`;
    if (ON_GPU) check(name, () => formatsFor(c.shape).forEach((fmt) => syncOpsCase(c, fmt)));
    else skip(name, 'the device path of SyncBatchNorm needs a CUDA device');
  }

  for (const f of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.json') && !HANDLED.has(f)).sort()) {
    skip(`fixtures/${f}`, 'this suite has no CUDA check for it');
  }

  if (ON_GPU) {
    check('mixing devices is an error', () => {
      const bn = new nn.BatchNorm1d(3).to('cuda');
      let message = '';
      try {
        bn.forward(tensor([1, 2, 3, 4, 5, 6], [2, 3]));
      } catch (e) {
        message = e.message;
      }
      if (!/Expected all tensors to be on the same device/.test(message)) throw new Error(`got: ${message}`);
    });
  } else {
    skip('mixing devices is an error', 'needs a CUDA device');
  }

  check(`an empty batch on ${DEVICE}`, () => {
    const bn = new nn.BatchNorm2d(3).to(DEVICE);
    const y = bn.forward(tensor([], [0, 3, 2, 2], { device: DEVICE }));
    if (y.numel() !== 0) throw new Error('expected an empty output');
    close(bn.runningMean, [0, 0, 0], TOL.float32, 'running mean unchanged');
  });

}

async function checkAsync(name, fn) {
  try {
    await fn();
    passed++;
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// NCCL, world size 1 (NCCL refuses two ranks on one GPU, and this machine
// has one): the rendezvous through the store, every collective on device
// memory and through the host staging, the Welford merge, gradients.
async function ncclSuite() {
  if (!ON_GPU) {
    skip('nccl world of one', 'NCCL reduces CUDA tensors');
    return;
  }
  // Without SYNCBN_NCCL_LIBRARY the loader's path is searched (bench/gpu/run.sh sets it to PyTorch's copy).
  console.log(`NCCL: ${process.env.SYNCBN_NCCL_LIBRARY || 'libnccl.so.2 on the loader path'}`);
  const port = await freePort();
  await checkAsync('nccl world of one: rendezvous and collectives', async () => {
    const world = await dist.initProcessGroup({ backend: 'nccl', rank: 0, worldSize: 1, initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 60000, device: 0 });
    try {
      if (world.backend !== 'nccl' || world.size !== 1) throw new Error(`world ${world.backend} of ${world.size}`);
      const t = tensor([1, -2, 3], [3], { device: 'cuda' });
      dist.allReduce(t);
      close(t, [1, -2, 3], TOL.float32, 'sum');
      dist.allReduce(t, { op: 'max' });
      close(t, [1, -2, 3], TOL.float32, 'max');
      dist.allReduce(t, { op: 'avg' });
      close(t, [1, -2, 3], TOL.float32, 'avg');
      const d = tensor([0.5, 0.25], [2], { dtype: 'float64', device: 'cuda' });
      dist.broadcast(d, 0);
      close(d, [0.5, 0.25], TOL.float64, 'broadcast');
      const out = [tensor([0, 0], [2], { dtype: 'float64', device: 'cuda' })];
      dist.allGather(out, d);
      close(out[0], [0.5, 0.25], TOL.float64, 'all-gather');
      dist.barrier();
      let refused = '';
      try {
        dist.allReduce(tensor([1]));
      } catch (e) {
        refused = e.message;
      }
      if (!/nccl backend reduces CUDA tensors/.test(refused)) throw new Error(`a CPU tensor was not refused: ${refused}`);
      // The Welford merge (two sum all-reduces on NCCL) with the fingerprint check.
      const triples = new Float64Array([4, 1e4, 2, 0, 0, 0]);
      world.syncAllReduce([7, 2, 1], triples, 'welford', { check: true, where: 'test', describe: () => 'layer' });
      close(Array.from(triples), [4, 1e4, 2, 0, 0, 0], TOL.float64, 'welford');
      // Averaged gradients of a CUDA module.
      const bn = new nn.BatchNorm1d(2).to('cuda');
      const x = tensor([1, 2, 3, 5, 4, 0], [3, 2], { device: 'cuda' });
      bn.forward(x);
      bn.backward(tensor([1, 0, 0, 1, 1, 1], [3, 2], { device: 'cuda' }));
      const before = bn.bias.grad.toArray().slice();
      dist.allReduceGradients(bn);
      close(bn.bias.grad, Array.from(before), TOL.float32, 'averaged gradients');
      // SyncBatchNorm in a world of one falls back to BatchNorm's kernels, counter included:
      // against a fresh BatchNorm1d after the same one step (bn above has taken one already).
      const sbn = new nn.SyncBatchNorm(2).to('cuda');
      const ref = new nn.BatchNorm1d(2).to('cuda');
      close(sbn.forward(x), ref.forward(x).toArray(), TOL.float32, 'SyncBatchNorm world of one');
      equal(Number(sbn.numBatchesTracked.item()), 1, 'SyncBatchNorm num_batches_tracked');
      close(sbn.runningMean, ref.runningMean.toArray(), TOL.float32, 'SyncBatchNorm running mean');
      close(sbn.runningVar, ref.runningVar.toArray(), TOL.float32, 'SyncBatchNorm running var');
      ncclSyncPath(world);
    } finally {
      await dist.destroyProcessGroup();
    }
  });
  await ncclAcrossGpus();
}

/**
 * nn.SyncBatchNorm over NCCL end to end, one process per GPU (NCCL refuses
 * two ranks on one GPU): test/gpu/nccl_sync_worker.js on every ops.json
 * case. Skipped, and counted, with fewer than two GPUs.
 */
async function ncclAcrossGpus() {
  const name = 'nccl SyncBatchNorm across GPUs, one process per GPU';
  const gpus = cuda.deviceCount();
  if (gpus < 2) {
    skip(name, `needs two CUDA devices, this machine has ${gpus}`);
    return;
  }
  const world = Math.min(gpus, 4);
  const port = await freePort();
  await checkAsync(`${name} (${world} ranks)`, async () => {
    const runs = await Promise.all(Array.from({ length: world }, (_, rank) => new Promise((resolve) => {
      const child = spawn(process.execPath, [path.join(__dirname, 'nccl_sync_worker.js')], {
        env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 300000);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ rank, code, signal, out });
      });
    })));
    const bad = runs.filter((r) => r.code !== 0);
    if (bad.length > 0) {
      throw new Error(bad.map((r) => `rank ${r.rank} exited ${r.code ?? r.signal}:\n${r.out.trim().split('\n').slice(-20).join('\n')}`).join('\n'));
    }
  });
}

/**
 * SyncBatchNorm's device path through NCCL itself (a world of one: a
 * layer would not sync there, so its functions are called directly) against
 * PyTorch's numbers: the all-gather of the Welford summary with the
 * fingerprint checked, the merge, and the in-place all-reduce of the packed
 * backward sums.
 */
function ncclSyncPath(world) {
  for (const c of load('ops.json').cases) {
    const tol = TOL[c.dtype];
    const C = c.shape[1];
    const on = { dtype: c.dtype, device: 'cuda' };
    const vec = (v) => tensor(v, [C], on);
    const x = tensor(c.x, c.shape, on);
    const dy = tensor(c.dy, c.shape, on);
    const weight = vec(c.weight);
    const e = c.expected;
    const rm = vec(c.running_mean);
    const rv = vec(c.running_var);
    const at = (k) => ({ fingerprint: [k, C, 1], check: true, where: `nccl SyncBatchNorm ${c.name}` });
    const s = SYNC.cuda.syncStats(x, world, at(0), { runningMean: rm, runningVar: rv, eps: c.eps, momentum: c.momentum, checkCount: () => {} });
    equal(s.count, c.x.length / C, `${c.name} nccl merged count`);
    close(onDevice(s.mean, 'nccl mean'), e.mean, tol, `${c.name} nccl mean`);
    close(s.invstd, e.invstd, tol, `${c.name} nccl invstd`);
    close(rm, e.running_mean, tol, `${c.name} nccl running mean`);
    close(rv, e.running_var, tol, `${c.name} nccl running var`);
    close(F.batchNormElemt(x, weight, vec(c.bias), s.mean, s.invstd), e.y, tol, `${c.name} nccl output`);
    const r = F.batchNormBackwardReduce(dy, x, s.mean, s.invstd, weight);
    SYNC.cuda.syncGradSums(r.sumDy, r.sumDyXmu, world, at(1));
    close(onDevice(r.sumDy, 'nccl sum_dy'), e.sum_dy, tol, `${c.name} nccl sum_dy`);
    close(r.sumDyXmu, e.sum_dy_xmu, tol, `${c.name} nccl sum_dy_xmu`);
    close(F.batchNormBackwardElemt(dy, x, s.mean, s.invstd, weight, r.sumDy, r.sumDyXmu, s.count), e.dx, tol, `${c.name} nccl grad input`);
  }
}

if (SUITES.has('fixtures')) fixtureSuite();
(SUITES.has('nccl') ? ncclSuite() : Promise.resolve()).then(() => {
  if (SUITES.has('fixtures')) console.log(`fixture files run: ${ran.join(', ')}`);
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed === 0 ? 0 : 1);
});
