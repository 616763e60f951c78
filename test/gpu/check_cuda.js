#!/usr/bin/env node
// GPU correctness against the PyTorch fixtures, as a plain Node program (the
// GPU machine has no npm tree): BatchNorm1d/2d/3d in float32 and float64,
// both memory formats, three training steps then eval, forward and backward;
// float16 / bfloat16 inputs with float32 parameters. Prints each failure and
// closes with "N passed, N failed"; exits 1 on any failure or without a GPU.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { cuda, nn, tensor } = require(path.resolve(__dirname, '../../dist'));

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

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
