// syncbn two ways. `natural`: the nn modules as users write them, outputs
// left to the garbage collector (y = bn.forward(x); dx = bn.backward(dy)).
// `disposed`: the functional ops with every output disposed at once, so the
// free list hands the same warm arrays back (the kernels' own speed). A
// case's dtype is its input's; the layers stay float32 (mixed precision for
// float16 and bfloat16 inputs).
'use strict';

const path = require('node:path');
const { F, nn, randn, ones, zeros, setNumThreads, getNumThreads } = require(path.resolve(__dirname, '../../../dist'));
const { native } = require(path.resolve(__dirname, '../../../dist/native'));

function moduleFor(shape) {
  const C = shape[1];
  return shape.length === 5 ? new nn.BatchNorm3d(C) : shape.length === 4 ? new nn.BatchNorm2d(C) : new nn.BatchNorm1d(C);
}

/** The inputs of a case, kept across its modes (drawing 6.4M normals costs a second). */
let cached = null;
function inputs(c) {
  const dtype = c.dtype ?? 'float32';
  const key = `${c.shape.join('x')} ${c.format} ${dtype}`;
  if (!cached || cached.key !== key) {
    cached = null;
    cached = { key, x: randn(c.shape, { memoryFormat: c.format, dtype }), dy: randn(c.shape, { memoryFormat: c.format, dtype }) };
  }
  return cached;
}

/** The call of one case, natural or disposed. */
function makeRun(c, style) {
  const { x, dy } = inputs(c);
  if (style === 'natural') {
    const bn = moduleFor(c.shape);
    if (c.mode === 'infer') bn.eval();
    // As in `y = bn.forward(x)` in a loop: the last outputs stay referenced
    // until the next call's replace them (a scavenge in between promotes
    // them, bench/NOTES.md 32).
    let y = null;
    let dx = null;
    return {
      'train-fwd': () => {
        y = bn.forward(x);
      },
      'train-fwdbwd': () => {
        y = bn.forward(x);
        dx = bn.backward(dy);
      },
      infer: () => {
        y = bn.forward(x);
      },
    }[c.mode];
  }
  const C = c.shape[1];
  const w = ones([C]);
  const b = zeros([C]);
  const rm = zeros([C]);
  const rv = ones([C]);
  return {
    'train-fwd': () => F.nativeBatchNorm(x, w, b, rm, rv, true, 0.1, 1e-5).output.dispose(),
    'train-fwdbwd': () => {
      const f = F.nativeBatchNorm(x, w, b, rm, rv, true, 0.1, 1e-5);
      const g = F.batchNormBackward(dy, x, { weight: w, saveMean: f.saveMean, saveInvstd: f.saveInvstd, training: true });
      f.output.dispose();
      g.gradInput.dispose();
    },
    infer: () => F.nativeBatchNorm(x, w, b, rm, rv, false, 0.1, 1e-5).output.dispose(),
  }[c.mode];
}

module.exports = {
  name: 'syncbn',
  async init(threads) {
    setNumThreads(threads);
    return { available: true, version: require('../../../package.json').version, threads: getNumThreads(), detail: `kernels: ${native.features.isa}` };
  },
  makeRun,
  moduleFor,
  releaseInputs() {
    cached = null;
  },
};
