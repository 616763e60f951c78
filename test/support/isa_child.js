// One process's half of test/half_kernels.test.ts: the build of the CPU
// kernels this process runs (SYNCBN_CPU_ISA=baseline forces the baseline
// one) converts every float16 and bfloat16 pattern, and computes a set of
// ops whose results the test compares across builds. Prints one JSON line:
// { isa, conversions: 'ok' or what failed, ops: { 'dtype op ...': values } }.
'use strict';

const path = require('node:path');
const dist = path.resolve(__dirname, '../../dist');
const { F, tensor, features, setNumThreads } = require(dist);
const { native } = require(path.join(dist, 'native'));
const { fromHalfBits, toHalfBits } = require(path.join(dist, 'half_float'));

const HALVES = ['float16', 'bfloat16'];

/** y = x * scale per channel through forwardInference (mean 0, invstd 1, bias 0): x of [n, C, inner]. */
function scaled(dtype, x, shape, channelsLast, scale) {
  const C = shape[1];
  const y = new Uint16Array(x.length);
  native.ops.forwardInference({
    dtype, shape, channelsLast, input: x, runningMean: new Float32Array(C), runningVar: new Float32Array(C).fill(1 - 2 ** -20),
    weight: Float32Array.from(scale), bias: new Float32Array(C), eps: 2 ** -20, output: y,
  });
  return y;
}

function sameBits(got, want, dtype, what) {
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want[i]) continue;
    if (Number.isNaN(fromHalfBits(got[i], dtype)) && Number.isNaN(fromHalfBits(want[i], dtype))) continue;
    throw new Error(`${what}: element ${i} is ${got[i].toString(16)}, expected ${want[i].toString(16)}`);
  }
}

// Runs of the contiguous layout (one of 65,536, four of 8,192 per channel)
// and rows of 13 and 4,096 channels.
const LAYOUTS = [[[1, 1, 65536], false], [[4, 2, 8192], false], [[1, 13, 5041], true], [[1, 4096, 16], true]];

function conversions() {
  for (const dtype of HALVES) {
    for (const [shape, channelsLast] of LAYOUTS) {
      const C = shape[1];
      const x = Uint16Array.from({ length: shape[0] * C * shape[2] }, (_, i) => i);
      const channel = (i) => (channelsLast ? i % C : Math.floor(i / shape[2]) % C);
      // Unchanged (x * 1 + 0; -0 becomes +0, as in IEEE and PyTorch), then float32 products rounded to
      // nearest even as PyTorch rounds: x * 1.5 is one bit longer than x, half of them exact ties;
      // the third scale leaves longer tails. Every pattern, each conversion both ways.
      const long = Array.from({ length: C }, (_, c) => Math.fround(1 + 3 * 2 ** -10 + (c % 7) * 2 ** -14));
      for (const scale of [new Array(C).fill(1), new Array(C).fill(1.5), long]) {
        const want = Uint16Array.from(x, (h, i) => toHalfBits(fromHalfBits(h, dtype) * scale[channel(i)] + 0, dtype));
        sameBits(scaled(dtype, x, shape, channelsLast, scale), want, dtype, `${dtype} x * ${scale[0]}, [${shape}]${channelsLast ? ' channels last' : ''}`);
      }
    }
  }
  return 'ok';
}

/** Deterministic values (no RNG state shared with the other process needed). */
function values(n, seed) {
  return Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 3 + (i % 5) - 2);
}

function ops() {
  const out = {};
  for (const dtype of ['float32', ...HALVES]) {
    for (const [shape, fmt] of [[[37, 19], 'contiguous'], [[6, 5, 9, 11], 'contiguous'], [[6, 5, 9, 11], 'channelsLast'], [[40, 70, 3, 3], 'channelsLast']]) {
      const C = shape[1];
      const n = shape.reduce((a, b) => a * b, 1);
      const x = tensor(values(n, 1), shape, { dtype, memoryFormat: fmt });
      const dy = tensor(values(n, 2), shape, { dtype, memoryFormat: fmt });
      const w = tensor(values(C, 3).map((v) => 1 + v / 10), [C]);
      const b = tensor(values(C, 4), [C]);
      const key = `${dtype} [${shape}] ${fmt}`;
      const f = F.nativeBatchNorm(x, w, b, null, null, true, 0.1, 1e-5);
      const g = F.batchNormBackward(dy, x, { weight: w, saveMean: f.saveMean, saveInvstd: f.saveInvstd, training: true });
      out[`${key} forward`] = Array.from(f.output.toArray());
      out[`${key} mean`] = Array.from(f.saveMean.toArray());
      out[`${key} grad input`] = Array.from(g.gradInput.toArray());
      out[`${key} grad weight`] = Array.from(g.gradWeight.toArray());
      out[`${key} welford`] = Array.from(F.batchNormWelfordStats(x));
    }
  }
  return out;
}

setNumThreads(2);
let conv;
try {
  conv = conversions();
} catch (e) {
  conv = e.message;
}
process.stdout.write(`${JSON.stringify({ isa: features.isa, conversions: conv, ops: ops() })}\n`);
