#!/usr/bin/env node
// Where the (N, C) training backward spends its time (bench/NOTES.md 36):
// the raw addon's ops on warm arrays (outputs reused, everything in cache),
// at 1 and 2 threads, beside in-process passes of known traffic: the fused
// backward, its two halves as the SyncBatchNorm ops (backwardReduce: the
// grad sums, reads dy and x; backwardElemt: grad input, reads dy and x,
// writes dx), the kernels' own inference (a scaled copy, read x write y) and
// statistics (one read of x), and TypedArray.set (memcpy, one thread). Then
// the fused backward over 128..512 rows, whose intercept is its fixed cost.
// All in one process, modes alternating by round; medians of 15 rounds.
//
//   npm run build:addon && node bench/cpu/backward_floor.js [n,c]
'use strict';

const path = require('node:path');

const N = require(path.resolve(__dirname, '../../build/Release/syncbn.node'));
const [n0, C] = (process.argv[2] || '256,1024').split(',').map(Number);

function random(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

// The ops of one shape, on its own warm arrays.
function opsFor(rows) {
  const shape = [rows, C, 1];
  const n = rows * C;
  const x = random(n);
  const dy = random(n);
  const y = new Float32Array(n);
  const dx = new Float32Array(n);
  const w = new Float32Array(C).fill(1);
  const b = new Float32Array(C);
  const rm = new Float32Array(C);
  const rv = new Float32Array(C).fill(1);
  const sm = new Float32Array(C);
  const si = new Float32Array(C).fill(1);
  const gw = new Float32Array(C);
  const gb = new Float32Array(C);
  const sdy = new Float32Array(C);
  const sdyx = new Float32Array(C);
  const on = { dtype: 'float32', shape, channelsLast: false };
  N.ops.forwardTraining({ ...on, input: x, weight: w, bias: b, eps: 1e-5, momentum: 0.1, runningMean: rm, runningVar: rv,
    output: y, saveMean: sm, saveInvstd: si });
  const reduce = () => N.ops.backwardReduce({ ...on, gradOutput: dy, input: x, mean: sm, invstd: si, sumDy: sdy,
    sumDyXmu: sdyx, gradWeight: gw, gradBias: gb });
  const elemt = () => N.ops.backwardElemt({ ...on, gradOutput: dy, input: x, mean: sm, invstd: si, weight: w, sumDy: sdy,
    sumDyXmu: sdyx, totalCount: rows, gradInput: dx });
  return {
    backward: () => N.ops.backward({ ...on, gradOutput: dy, input: x, weight: w, mean: sm, invstdOrVar: si, training: true,
      eps: 1e-5, gradInput: dx, gradWeight: gw, gradBias: gb, accumulate: false }),
    backwardReduce: reduce,
    backwardElemt: elemt,
    'reduce+elemt': () => {
      reduce();
      elemt();
    },
    forwardTraining: () => N.ops.forwardTraining({ ...on, input: x, weight: w, bias: b, eps: 1e-5, momentum: 0.1,
      runningMean: rm, runningVar: rv, output: y, saveMean: sm, saveInvstd: si }),
    'forwardInference (scaled copy)': () => N.ops.forwardInference({ ...on, input: x, runningMean: rm, runningVar: rv,
      weight: w, bias: b, eps: 1e-5, output: y }),
    'stats (one read)': () => N.ops.stats({ ...on, input: x, eps: 1e-5, mean: rm, invstd: rv }),
    'memcpy 1 MiB-array (TypedArray.set, 1 thread)': () => y.set(x),
  };
}

// Median ms per call of each fn, rounds alternating between them.
function time(fns, callMs = 2) {
  const names = Object.keys(fns);
  const iters = {};
  for (const k of names) {
    for (let i = 0; i < 20; i++) fns[k]();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) fns[k]();
    const one = Number(process.hrtime.bigint() - t0) / 50 / 1e6;
    iters[k] = Math.max(5, Math.round(callMs / one));
  }
  const t = Object.fromEntries(names.map((k) => [k, []]));
  for (let round = 0; round < 15; round++) {
    for (const k of names) {
      const fn = fns[k];
      fn();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iters[k]; i++) fn();
      t[k].push(Number(process.hrtime.bigint() - t0) / iters[k] / 1e6);
    }
  }
  return Object.fromEntries(names.map((k) => {
    const s = t[k].sort((p, q) => p - q);
    return [k, { med: s[7], lo: s[3], hi: s[11] }];
  }));
}

const fmt = (r) => `${(r.med * 1e3).toFixed(1)} us (IQR ${(r.lo * 1e3).toFixed(1)}-${(r.hi * 1e3).toFixed(1)})`;
const MiB = (n0 * C * 4) / (1 << 20);
console.log(`${n0}x${C} float32, ${MiB.toFixed(2)} MiB per tensor, warm arrays`);
for (const threads of [1, 2]) {
  N.setNumThreads(threads);
  const r = time(opsFor(n0));
  console.log(`-- ${threads} thread(s)`);
  for (const [k, v] of Object.entries(r)) console.log(`  ${k.padEnd(46)} ${fmt(v)}`);
}

// Fixed cost: the fused backward at 2 threads over rows in whole 64-row
// tiles, and a call too small for a second thread.
N.setNumThreads(2);
const sweep = [128, 192, 256, 320, 384, 512];
const fns = Object.fromEntries(sweep.map((r) => [`${r}`, opsFor(r).backward]));
const tiny = (() => {
  const on = { dtype: 'float32', shape: [2, 4, 1], channelsLast: false };
  const a = new Float32Array(8).fill(0.5);
  const p = () => new Float32Array(4).fill(1);
  const [w, sm, si, gw, gb] = [p(), p(), p(), p(), p()];
  const dx = new Float32Array(8);
  return () => N.ops.backward({ ...on, gradOutput: a, input: a, weight: w, mean: sm, invstdOrVar: si, training: true,
    eps: 1e-5, gradInput: dx, gradWeight: gw, gradBias: gb, accumulate: false });
})();
const rs = time({ ...fns, 'tiny 2x4 (one thread)': tiny });
console.log('-- fused backward, 2 threads, by rows (C fixed)');
for (const [k, v] of Object.entries(rs)) console.log(`  ${k.padEnd(24)} ${fmt(v)}`);
// Least squares over the sweep: time = a + b * rows.
const xs = sweep;
const ys = sweep.map((r) => rs[`${r}`].med * 1e3);
const mx = xs.reduce((p, q) => p + q) / xs.length;
const my = ys.reduce((p, q) => p + q) / ys.length;
const slope = xs.reduce((p, q, i) => p + (q - mx) * (ys[i] - my), 0) / xs.reduce((p, q) => p + (q - mx) ** 2, 0);
console.log(`  fit: ${(my - slope * mx).toFixed(1)} us + ${(slope * 1e3).toFixed(1)} ns per row of ${C}`);
