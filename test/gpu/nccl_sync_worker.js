#!/usr/bin/env node
// One rank of check_cuda.js's NCCL SyncBatchNorm check across GPUs: rank r
// on cuda:r trains an nn.SyncBatchNorm on its rows of every ops.json case
// (the batch split in WORLD_SIZE row ranges) and compares with PyTorch's
// numbers for the whole batch: its rows of the output and grad input, the
// running stats and the counter, and the weight/bias grads summed over the
// ranks (each rank's own are local, as in PyTorch). Prints "FAIL ..." lines
// and exits 1 on any difference.
//   RANK=r WORLD_SIZE=n MASTER_PORT=p node test/gpu/nccl_sync_worker.js
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { nn, tensor, distributed: dist } = require(path.resolve(__dirname, '../../dist'));

const TOL = { float32: { rtol: 1e-5, atol: 1e-5 }, float64: { rtol: 1e-12, atol: 1e-12 } };
const rank = Number(process.env.RANK);
const world = Number(process.env.WORLD_SIZE);
const device = `cuda:${rank}`;
const failures = [];

function close(actual, expected, tol, label) {
  const a = actual.toArray ? actual.toArray() : actual;
  if (a.length !== expected.length) throw new Error(`${label}: ${a.length} values, expected ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    const e = expected[i];
    if (!(Math.abs(a[i] - e) <= tol.atol + tol.rtol * Math.abs(e))) throw new Error(`${label}: element ${i} is ${a[i]}, expected ${e}`);
  }
}

function rowsOf(values, shape, start, n) {
  const per = values.length / shape[0];
  return values.slice(start * per, (start + n) * per);
}

function syncCase(c, fmt) {
  const { dtype } = c;
  const C = c.shape[1];
  const N = c.shape[0];
  const start = Math.floor((N * rank) / world);
  const n = Math.floor((N * (rank + 1)) / world) - start;
  const shape = [n, ...c.shape.slice(1)];
  const tol = TOL[dtype];
  const e = c.expected;
  const bn = new nn.SyncBatchNorm(C, { eps: c.eps, momentum: c.momentum, dtype });
  bn.weight.copy_(tensor(c.weight, [C], { dtype }));
  bn.bias.copy_(tensor(c.bias, [C], { dtype }));
  bn.runningMean.copy_(tensor(c.running_mean, [C], { dtype }));
  bn.runningVar.copy_(tensor(c.running_var, [C], { dtype }));
  bn.to(device);
  const on = { dtype, device, memoryFormat: fmt };
  const y = bn.forward(tensor(rowsOf(c.x, c.shape, start, n), shape, on));
  if (String(y.device) !== device) throw new Error(`output on ${y.device}, expected ${device}`);
  close(y, rowsOf(e.y, c.shape, start, n), tol, 'output rows');
  close(bn.runningMean, e.running_mean, tol, 'running mean');
  close(bn.runningVar, e.running_var, tol, 'running var');
  if (Number(bn.numBatchesTracked.item()) !== 1) throw new Error(`num_batches_tracked ${bn.numBatchesTracked.item()}, expected 1`);
  const dx = bn.backward(tensor(rowsOf(c.dy, c.shape, start, n), shape, on));
  close(dx, rowsOf(e.dx, c.shape, start, n), tol, 'grad input rows');
  if (!bn.weight.grad.isCuda) throw new Error('the weight grad left the device');
  dist.allReduceGradients(bn, { op: 'sum' });
  close(bn.weight.grad, e.grad_weight, tol, 'grad weight summed over ranks');
  close(bn.bias.grad, e.grad_bias, tol, 'grad bias summed over ranks');
}

async function main() {
  const fx = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'golden', 'fixtures', 'ops.json'), 'utf8'));
  await dist.initProcessGroup({
    backend: 'nccl', rank, worldSize: world, initMethod: `tcp://127.0.0.1:${process.env.MASTER_PORT}`, timeoutMs: 60000, device: rank,
  });
  try {
    for (const c of fx.cases) {
      for (const fmt of c.shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous']) {
        try {
          syncCase(c, fmt);
        } catch (err) {
          failures.push(`${c.name} ${fmt}: ${err.message}`);
        }
      }
    }
  } finally {
    await dist.destroyProcessGroup();
  }
  for (const f of failures) console.log(`FAIL rank ${rank} ${f}`);
  console.log(`rank ${rank}: ${fx.cases.length} cases, ${failures.length} failed`);
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL rank ${rank}: ${err.stack || err}`);
  process.exit(1);
});
