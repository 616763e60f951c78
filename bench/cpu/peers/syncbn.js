// syncbn itself: the functional ops, outputs disposed after each call (as
// PyTorch frees a tensor when its last reference goes), so the pool recycles.
'use strict';

const path = require('node:path');
const { F, randn, ones, zeros, setNumThreads, getNumThreads } = require(path.resolve(__dirname, '../../../dist'));
const { native } = require(path.resolve(__dirname, '../../../dist/native'));

module.exports = {
  name: 'syncbn',
  async init(threads) {
    setNumThreads(threads);
    return { available: true, version: require('../../../package.json').version, threads: getNumThreads(), detail: `kernels: ${native.features.isa}` };
  },
  prepare(c) {
    const C = c.shape[1];
    const h = {
      x: randn(c.shape, { memoryFormat: c.format }),
      dy: randn(c.shape, { memoryFormat: c.format }),
      w: ones([C]),
      b: zeros([C]),
      rm: zeros([C]),
      rv: ones([C]),
    };
    const run = {
      'train-fwd': () => F.nativeBatchNorm(h.x, h.w, h.b, h.rm, h.rv, true, 0.1, 1e-5).output.dispose(),
      'train-fwdbwd': () => {
        const f = F.nativeBatchNorm(h.x, h.w, h.b, h.rm, h.rv, true, 0.1, 1e-5);
        const g = F.batchNormBackward(h.dy, h.x, { weight: h.w, saveMean: f.saveMean, saveInvstd: f.saveInvstd, training: true });
        f.output.dispose();
        g.gradInput.dispose();
      },
      infer: () => F.nativeBatchNorm(h.x, h.w, h.b, h.rm, h.rv, false, 0.1, 1e-5).output.dispose(),
    }[c.mode];
    return { run };
  },
};
