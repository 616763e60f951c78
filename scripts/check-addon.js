#!/usr/bin/env node
// Loads the addon built in <dir> (default: the package root) and checks one
// training forward against a plain JavaScript reference. CI uses it to prove
// the node-gyp build compiles, loads and computes, beside the cmake-js one.
// --gloo: the addon must also have Gloo.
'use strict';

const path = require('node:path');

const args = process.argv.slice(2);
const dir = path.resolve(args.find((a) => !a.startsWith('--')) || path.join(__dirname, '..'));
const addon = require('node-gyp-build')(dir);

const [n, c, inner] = [4, 3, 50];
const x = Float64Array.from({ length: n * c * inner }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
const y = new Float64Array(x.length);
const mean = new Float64Array(c);
const invstd = new Float64Array(c);
addon.ops.forwardTraining({ dtype: 'float64', shape: [n, c, inner], channelsLast: false, input: x, weight: null, bias: null,
  eps: 1e-5, momentum: 0.1, runningMean: null, runningVar: null, output: y, saveMean: mean, saveInvstd: invstd });

let worst = 0;
for (let ch = 0; ch < c; ch++) {
  let s = 0;
  let ss = 0;
  for (let b = 0; b < n; b++) for (let i = 0; i < inner; i++) s += x[(b * c + ch) * inner + i];
  const m = s / (n * inner);
  for (let b = 0; b < n; b++) for (let i = 0; i < inner; i++) ss += (x[(b * c + ch) * inner + i] - m) ** 2;
  const is = 1 / Math.sqrt(ss / (n * inner) + 1e-5);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < inner; i++) {
      const k = (b * c + ch) * inner + i;
      worst = Math.max(worst, Math.abs(y[k] - (x[k] - m) * is));
    }
  }
}
if (!(worst < 1e-12)) {
  console.error(`addon in ${dir}: forward differs from the reference by ${worst}`);
  process.exit(1);
}
if (args.includes('--gloo') && !addon.features.gloo) {
  console.error(`addon in ${dir}: built without Gloo`);
  process.exit(1);
}
console.log(`addon in ${dir} loads and computes (openmp: ${addon.features.openmp}, gloo: ${addon.features.gloo}, threads: ${addon.getNumThreads()}, max error ${worst.toExponential(2)})`);
