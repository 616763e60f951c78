#!/usr/bin/env node
// syncbn's side of the GPU benchmark: each case timed as the median of
// `reps` launches, each bracketed by device synchronization, after warm-up;
// and a device-to-device copy of the same size for the roofline. Writes JSON
// to argv[2].
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { cuda, F, randn, ones, zeros } = require(path.resolve(__dirname, '../../dist'));

const spec = JSON.parse(fs.readFileSync(path.join(__dirname, 'cases.json'), 'utf8'));

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function time(fn) {
  for (let i = 0; i < spec.warmup; i++) fn();
  cuda.synchronize();
  const t = [];
  for (let i = 0; i < spec.reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    cuda.synchronize();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(t);
}

const rows = [];
for (const shape of spec.shapes) {
  const nchwOnly = spec.nchwOnly.some((s) => s.join() === shape.join());
  const formats = shape.length >= 3 && !nchwOnly ? ['contiguous', 'channelsLast'] : ['contiguous'];
  for (const dtype of spec.dtypes) {
    for (const format of formats) {
      const C = shape[1];
      const input = randn(shape, { dtype, memoryFormat: format, device: 'cuda' });
      const dy = randn(shape, { dtype, memoryFormat: format, device: 'cuda' });
      const w = ones([C], { device: 'cuda' });
      const b = zeros([C], { device: 'cuda' });
      const rm = zeros([C], { device: 'cuda' });
      const rv = ones([C], { device: 'cuda' });
      const saved = F.nativeBatchNorm(input, w, b, rm, rv, true, 0.1, 1e-5);
      const copyDst = input.clone();
      const bytesPer = dtype === 'float32' ? 4 : 2;
      const n = shape.reduce((a, c) => a * c, 1);
      const copyMs = time(() => copyDst.cudaStorage().buffer.copyFrom(input.cudaStorage().buffer));
      const copyGBs = (2 * n * bytesPer) / (copyMs / 1e3) / 1e9;
      for (const mode of spec.modes) {
        const run = {
          'train-fwd': () => F.nativeBatchNorm(input, w, b, rm, rv, true, 0.1, 1e-5),
          infer: () => F.nativeBatchNorm(input, w, b, rm, rv, false, 0.1, 1e-5),
          backward: () => F.batchNormBackward(dy, input, { weight: w, saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, training: true }),
        }[mode];
        const ms = time(run);
        const passes = mode === 'backward' ? 3 : 2;
        const gbs = (passes * n * bytesPer) / (ms / 1e3) / 1e9;
        rows.push({ shape, dtype, format, mode, ms, gbs, copyGBs, ofCopy: gbs / copyGBs });
        process.stderr.write(`syncbn ${shape.join('x')} ${dtype} ${format} ${mode}: ${ms.toFixed(3)} ms\n`);
      }
    }
  }
}
fs.writeFileSync(process.argv[2], JSON.stringify({ device: cuda.getDeviceName(0), rows }, null, 1));
