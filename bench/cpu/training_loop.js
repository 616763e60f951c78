#!/usr/bin/env node
// A training loop as a user writes it, in a process of its own so that its
// peak RSS is the loop's: `steps` forward + backward steps of one BatchNorm
// layer, outputs left to the garbage collector (natural), disposed, or
// dropped (never kept past their call: what natural use costs without the
// promotion of held outputs, bench/NOTES.md 35).
// Prints one JSON line: ms per step, the per-step times' median and 90th
// percentile, RSS before the loop and the process's peak RSS.
//
//   node bench/cpu/training_loop.js <n,c,h,w> <steps> <threads> natural|disposed|dropped
'use strict';

const path = require('node:path');
const { randn, setNumThreads } = require(path.resolve(__dirname, '../../dist'));
const { moduleFor } = require('./peers/syncbn');

const [shapeText, stepsText, threadsText, style] = process.argv.slice(2);
const shape = shapeText.split(',').map(Number);
const steps = Number(stepsText);
setNumThreads(Number(threadsText));
if (!['natural', 'disposed', 'dropped'].includes(style) || !(steps > 0) || shape.some((d) => !(d > 0))) {
  console.error('usage: training_loop.js <n,c,...> <steps> <threads> natural|disposed|dropped');
  process.exit(2);
}
const bn = moduleFor(shape);
const x = randn(shape);
const dy = randn(shape);
const rssBefore = process.memoryUsage().rss;
const times = [];
const t0 = process.hrtime.bigint();
// Declared outside the loop, as a user's `y = bn.forward(x)`: the last
// step's outputs stay referenced until this step's replace them.
let y = null;
let dx = null;
for (let i = 0; i < steps; i++) {
  const s = process.hrtime.bigint();
  if (style === 'dropped') {
    bn.forward(x);
    bn.backward(dy);
  } else {
    y = bn.forward(x);
    dx = bn.backward(dy);
  }
  if (style === 'disposed') {
    y.dispose();
    dx.dispose();
  }
  times.push(Number(process.hrtime.bigint() - s) / 1e6);
}
const total = Number(process.hrtime.bigint() - t0) / 1e6;
times.sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({
  msPerStep: total / steps,
  medianMs: times[times.length >> 1],
  p90Ms: times[Math.floor(times.length * 0.9)],
  rssBeforeMB: rssBefore / 2 ** 20,
  peakRssMB: process.resourceUsage().maxRSS / 1024,
})}\n`);
