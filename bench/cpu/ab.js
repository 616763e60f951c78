#!/usr/bin/env node
// A/B of two builds of the addon in one process: the kernels of build A and
// build B run alternately, 15 rounds per case, so the drift of a shared VM
// hits both alike (separate runs of the same build differ by 20-30% here).
// Kernel-only: outputs are preallocated and reused, as the benchmark's
// disposed outputs are.
//
//   cp build/Release/syncbn.node /tmp/a.node   # before a change
//   npm run build:addon                        # after it
//   node bench/cpu/ab.js /tmp/a.node build/Release/syncbn.node
//
// SHAPES="64,256,196;256,1024,1" picks [n, c, inner] shapes; CL=1 runs them
// channels-last; COLD=1 rotates each call over enough copies of x and dy
// (64 MiB or more) that they come from memory, not from the L3 cache.
// Prints the median ms of A and B and the ratio A/B per mode.
'use strict';

const path = require('node:path');

const [fileA, fileB] = process.argv.slice(2);
if (!fileA || !fileB) {
  console.error('usage: node bench/cpu/ab.js <a.node> <b.node>');
  process.exit(2);
}
const A = require(path.resolve(fileA));
const B = require(path.resolve(fileB));
const shapes = (process.env.SHAPES || '32,64,3136;64,256,196;256,1024,1;8,32,4096').split(';').map((s) => s.split(',').map(Number));
const channelsLast = !!process.env.CL;

function random(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random();
  return a;
}

for (const shape of shapes) {
  const n = shape[0] * shape[1] * shape[2];
  const C = shape[1];
  const copies = process.env.COLD ? Math.max(2, Math.ceil((64 << 20) / (8 * n))) : 1;
  const xs = Array.from({ length: copies }, () => random(n));
  const dys = Array.from({ length: copies }, () => random(n));
  let k = 0;
  const w = new Float32Array(C).fill(1);
  const b = new Float32Array(C);
  const rm = new Float32Array(C);
  const rv = new Float32Array(C).fill(1);
  const y = new Float32Array(n);
  const dx = new Float32Array(n);
  const sm = new Float32Array(C);
  const si = new Float32Array(C).fill(1);
  const gw = new Float32Array(C);
  const gb = new Float32Array(C);
  const next = () => (k = (k + 1) % copies);
  // A build with native.ops takes named arguments (one object per call, as
  // lib/backends/kernel_ops.ts builds it); older builds positional ones.
  const ops = (N) => (N.ops ? {
    'train-fwd': () => N.ops.forwardTraining({ dtype: 'float32', shape, channelsLast, input: xs[next()], weight: w, bias: b,
      eps: 1e-5, momentum: 0.1, runningMean: rm, runningVar: rv, output: y, saveMean: sm, saveInvstd: si }),
    infer: () => N.ops.forwardInference({ dtype: 'float32', shape, channelsLast, input: xs[next()], runningMean: rm, runningVar: rv,
      weight: w, bias: b, eps: 1e-5, output: y }),
    backward: () => N.ops.backward({ dtype: 'float32', shape, channelsLast, gradOutput: dys[next()], input: xs[k], weight: w,
      mean: sm, invstdOrVar: si, training: true, eps: 1e-5, gradInput: dx, gradWeight: gw, gradBias: gb, accumulate: false }),
  } : {
    'train-fwd': () => N.batchNormForwardTraining(xs[next()], shape, channelsLast, w, b, 1e-5, 0.1, rm, rv, y, sm, si),
    infer: () => N.batchNormForwardInference(xs[next()], shape, channelsLast, rm, rv, w, b, 1e-5, y),
    backward: () => N.batchNormBackward(dys[next()], xs[k], shape, channelsLast, w, sm, si, true, 1e-5, dx, gw, gb, false),
  });
  const a = ops(A);
  const bb = ops(B);
  const iters = Math.max(3, Math.round(5e7 / n / 1e3));
  const parts = [];
  for (const mode of Object.keys(a)) {
    const ta = [];
    const tb = [];
    for (let round = 0; round < 15; round++) {
      for (const [fn, times] of [[a[mode], ta], [bb[mode], tb]]) {
        fn();
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < iters; i++) fn();
        times.push(Number(process.hrtime.bigint() - t0) / iters / 1e6);
      }
    }
    ta.sort((p, q) => p - q);
    tb.sort((p, q) => p - q);
    parts.push(`${mode} ${ta[7].toFixed(3)} -> ${tb[7].toFixed(3)} ms (${(ta[7] / tb[7]).toFixed(2)}x)`);
  }
  console.log(`${shape.join('x')}${channelsLast ? ' channels-last' : ''}: ${parts.join(' | ')}`);
}
