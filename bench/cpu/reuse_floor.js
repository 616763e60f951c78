#!/usr/bin/env node
// The floor of natural use (outputs left to the garbage collector): V8
// frees an output's memory only when a scavenge finds it dead, and it
// scavenges once per 32 MB of new array buffers, so the memory an output is
// written to was last used about 32 MB of outputs ago: cold in cache, where
// a disposed output's array is the one just written. This times the raw
// kernels (no allocation, no JavaScript layer) both ways: outputs written
// into the same arrays every call, and into arrays rotated over 32 MB.
//
//   node bench/cpu/reuse_floor.js [threads]
'use strict';

const path = require('node:path');
const { native } = require(path.resolve(__dirname, '../../dist/native'));

const threads = Number(process.argv[2] || 2);
native.setNumThreads(threads);
const SHAPES = [[32, 64, 3136], [64, 256, 196], [256, 1024, 1], [8, 32, 4096]];
const ROTATION_BYTES = 32 << 20;

function random(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

for (const shape of SHAPES) {
  const [, C] = shape;
  const n = shape[0] * shape[1] * shape[2];
  const x = random(n);
  const dy = random(n);
  const w = new Float32Array(C).fill(1);
  const b = new Float32Array(C);
  const rm = new Float32Array(C);
  const rv = new Float32Array(C).fill(1);
  const sm = new Float32Array(C);
  const si = new Float32Array(C);
  const gw = new Float32Array(C);
  const gb = new Float32Array(C);
  const k = Math.max(2, Math.ceil(ROTATION_BYTES / (4 * n)));
  const ring = Array.from({ length: k }, () => new Float32Array(n).fill(0));
  let i = 0;
  const out = { same: () => ring[0], rotated: () => ring[(i = (i + 1) % k)] };
  const on = { dtype: 'float32', shape, channelsLast: false };
  const train = (output) => ({ ...on, input: x, weight: w, bias: b, eps: 1e-5, momentum: 0.1, runningMean: rm, runningVar: rv,
    output, saveMean: sm, saveInvstd: si });
  const modes = {
    'train-fwd': (o) => native.ops.forwardTraining(train(o())),
    'train-fwdbwd': (o) => {
      native.ops.forwardTraining(train(o()));
      native.ops.backward({ ...on, gradOutput: dy, input: x, weight: w, mean: sm, invstdOrVar: si, training: true, eps: 1e-5,
        gradInput: o(), gradWeight: gw, gradBias: gb, accumulate: true });
    },
    infer: (o) => native.ops.forwardInference({ ...on, input: x, runningMean: rm, runningVar: rv, weight: w, bias: b, eps: 1e-5, output: o() }),
  };
  const parts = [];
  for (const [mode, fn] of Object.entries(modes)) {
    const iters = Math.max(5, Math.round(3e7 / n));
    const t = { same: [], rotated: [] };
    for (let round = 0; round < 9; round++) {
      for (const kind of ['same', 'rotated']) {
        for (let j = 0; j < k; j++) fn(out[kind]);
        const t0 = process.hrtime.bigint();
        for (let j = 0; j < iters; j++) fn(out[kind]);
        t[kind].push(Number(process.hrtime.bigint() - t0) / 1e6 / iters);
      }
    }
    const med = (a) => a.sort((p, q) => p - q)[a.length >> 1];
    parts.push(`${mode} ${med(t.same).toFixed(3)} / ${med(t.rotated).toFixed(3)} ms (${(med(t.rotated) / med(t.same)).toFixed(2)}x)`);
  }
  console.log(`${shape[0]}x${shape[1]}x${shape[2]} (same / rotated over ${k} arrays): ${parts.join(' | ')}`);
}
