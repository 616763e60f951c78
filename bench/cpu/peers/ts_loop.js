// The floor: batch norm as a plain TypeScript/JavaScript loop over the
// TypedArray, one thread, two-pass statistics in double.
'use strict';

function layout(c) {
  const [n, C] = c.shape;
  const inner = c.shape.slice(2).reduce((a, b) => a * b, 1);
  // Index of (batch b, channel ch, spatial i) in either memory format.
  const at = c.format === 'channelsLast' ? (b, ch, i) => (b * inner + i) * C + ch : (b, ch, i) => (b * C + ch) * inner + i;
  return { n, C, inner, at };
}

function stats(x, L) {
  const mean = new Float64Array(L.C);
  const invstd = new Float64Array(L.C);
  const count = L.n * L.inner;
  for (let ch = 0; ch < L.C; ch++) {
    let s = 0;
    for (let b = 0; b < L.n; b++) for (let i = 0; i < L.inner; i++) s += x[L.at(b, ch, i)];
    const m = s / count;
    let v = 0;
    for (let b = 0; b < L.n; b++) for (let i = 0; i < L.inner; i++) v += (x[L.at(b, ch, i)] - m) ** 2;
    mean[ch] = m;
    invstd[ch] = 1 / Math.sqrt(v / count + 1e-5);
  }
  return { mean, invstd };
}

function normalize(x, L, mean, invstd) {
  const y = new Float32Array(x.length);
  for (let ch = 0; ch < L.C; ch++) {
    for (let b = 0; b < L.n; b++) for (let i = 0; i < L.inner; i++) y[L.at(b, ch, i)] = (x[L.at(b, ch, i)] - mean[ch]) * invstd[ch];
  }
  return y;
}

function backward(x, dy, L, mean, invstd) {
  const dx = new Float32Array(x.length);
  const count = L.n * L.inner;
  for (let ch = 0; ch < L.C; ch++) {
    let sg = 0;
    let sgx = 0;
    for (let b = 0; b < L.n; b++) {
      for (let i = 0; i < L.inner; i++) {
        const k = L.at(b, ch, i);
        sg += dy[k];
        sgx += dy[k] * (x[k] - mean[ch]);
      }
    }
    const is = invstd[ch];
    for (let b = 0; b < L.n; b++) {
      for (let i = 0; i < L.inner; i++) {
        const k = L.at(b, ch, i);
        dx[k] = (dy[k] - sg / count - (x[k] - mean[ch]) * (sgx / count) * is * is) * is;
      }
    }
  }
  return dx;
}

module.exports = {
  name: 'ts-loop',
  async init() {
    return { available: true, version: process.version, threads: 1, detail: 'plain loops, one thread' };
  },
  prepare(c) {
    const L = layout(c);
    const x = Float32Array.from({ length: L.n * L.C * L.inner }, () => Math.random() - 0.5);
    const dy = Float32Array.from({ length: x.length }, () => Math.random() - 0.5);
    const fixed = stats(x, L);
    const run = {
      'train-fwd': () => {
        const s = stats(x, L);
        normalize(x, L, s.mean, s.invstd);
      },
      'train-fwdbwd': () => {
        const s = stats(x, L);
        normalize(x, L, s.mean, s.invstd);
        backward(x, dy, L, s.mean, s.invstd);
      },
      infer: () => normalize(x, L, fixed.mean, fixed.invstd),
    }[c.mode];
    return { run };
  },
};
