#!/usr/bin/env node
// GPU correctness against the PyTorch fixtures, as a plain Node program (the
// GPU machine has no npm tree): BatchNorm1d/2d/3d in float32 and float64,
// both memory formats, three training steps then eval, forward and backward;
// float16 / bfloat16 inputs with float32 parameters. Prints each failure and
// closes with "N passed, N failed"; exits 1 on any failure or without a GPU.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { cuda, nn, tensor, dist } = require(path.resolve(__dirname, '../../dist'));

const FIXTURES = path.join(__dirname, '..', 'golden', 'fixtures');
const TOL = { float32: { rtol: 1e-5, atol: 1e-5 }, float64: { rtol: 1e-12, atol: 1e-12 }, float16: { rtol: 2e-3, atol: 2e-3 }, bfloat16: { rtol: 1.6e-2, atol: 1.6e-2 } };

let passed = 0;
let failed = 0;

function close(actual, expected, tol, label) {
  const a = actual.toArray ? actual.toArray() : actual;
  if (a.length !== expected.length) throw new Error(`${label}: ${a.length} values, expected ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    const e = expected[i];
    if (!(Math.abs(a[i] - e) <= tol.atol + tol.rtol * Math.abs(e))) throw new Error(`${label}: element ${i} is ${a[i]}, expected ${e}`);
  }
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

if (!cuda.isAvailable()) {
  console.log(`no usable GPU: ${cuda.unavailableReason()}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
console.log(`GPU: ${cuda.getDeviceName(0)} (${cuda.deviceCount()} device(s))`);

for (const dtype of ['float32', 'float64']) {
  const fx = JSON.parse(fs.readFileSync(path.join(FIXTURES, `modules_${dtype}.json`), 'utf8'));
  for (const c of fx.cases) {
    const inp = fx.inputs[c.kind];
    for (const fmt of inp.shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous']) {
      const name = `${dtype} ${c.kind} affine=${c.affine} track=${c.track_running_stats} momentum=${c.momentum} ${fmt}`;
      check(name, () => {
        const bn = new nn[inp.module](inp.shape[1], { momentum: c.momentum, affine: c.affine, trackRunningStats: c.track_running_stats, dtype });
        if (c.affine) {
          bn.weight.copy_(tensor(inp.weight, [inp.shape[1]], { dtype }));
          bn.bias.copy_(tensor(inp.bias, [inp.shape[1]], { dtype }));
        }
        bn.to('cuda');
        c.steps.forEach((s, i) => {
          bn.train(s.training);
          const y = bn.forward(tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt, device: 'cuda' }));
          close(y, s.y, TOL[dtype], `step ${i} output`);
          close(bn.backward(tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt, device: 'cuda' })), s.dx, TOL[dtype], `step ${i} grad input`);
          if (c.affine) {
            close(bn.weight.grad, s.grad_weight, TOL[dtype], `step ${i} grad weight`);
            close(bn.bias.grad, s.grad_bias, TOL[dtype], `step ${i} grad bias`);
          }
          if (c.track_running_stats) {
            close(bn.runningMean, s.running_mean, TOL[dtype], `step ${i} running mean`);
            close(bn.runningVar, s.running_var, TOL[dtype], `step ${i} running var`);
          }
        });
      });
    }
  }
}

const half = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'half.json'), 'utf8'));
for (const c of half.cases) {
  check(`${c.dtype} input ${c.kind}`, () => {
    const C = c.shape[1];
    const bn = new nn[c.module](C);
    bn.weight.copy_(tensor(c.weight, [C]));
    bn.bias.copy_(tensor(c.bias, [C]));
    bn.to('cuda');
    c.steps.forEach((s, i) => {
      bn.train(s.training);
      const y = bn.forward(tensor(s.x, c.shape, { dtype: c.dtype, device: 'cuda' }));
      if (y.dtype !== c.dtype) throw new Error(`output dtype ${y.dtype}`);
      close(y, s.y, TOL[c.dtype], `step ${i} output`);
      close(bn.backward(tensor(s.dy, c.shape, { dtype: c.dtype, device: 'cuda' })), s.dx, TOL[c.dtype], `step ${i} grad input`);
      close(bn.runningMean, s.running_mean, TOL.float32, `step ${i} running mean`);
      close(bn.runningVar, s.running_var, { rtol: 1e-4, atol: 1e-5 }, `step ${i} running var`);
    });
  });
}

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

check('an empty batch on the GPU', () => {
  const bn = new nn.BatchNorm2d(3).to('cuda');
  const y = bn.forward(tensor([], [0, 3, 2, 2], { device: 'cuda' }));
  if (y.numel() !== 0) throw new Error('expected an empty output');
  close(bn.runningMean, [0, 0, 0], TOL.float32, 'running mean unchanged');
});

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
  const lib = process.env.SYNCBN_NCCL_LIBRARY;
  if (!lib) {
    failed++;
    console.log('FAIL nccl: SYNCBN_NCCL_LIBRARY is not set (bench/gpu/run.sh looks for libnccl.so.2 next to PyTorch)');
    return;
  }
  console.log(`NCCL: ${lib}`);
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
      // SyncBatchNorm in a world of one falls back to BatchNorm's kernels.
      const sbn = new nn.SyncBatchNorm(2).to('cuda');
      close(sbn.forward(x), bn.forward(x).toArray(), TOL.float32, 'SyncBatchNorm world of one');
    } finally {
      await dist.destroyProcessGroup();
    }
  });
}

ncclSuite().then(() => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
});
