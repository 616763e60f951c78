// The benchmark's cases: shapes x memory formats x modes, and the memory
// traffic each mode implies.
'use strict';

const SHAPES = [
  [32, 64, 56, 56],
  [64, 256, 14, 14],
  [256, 1024],
  [8, 32, 16, 16, 16],
];
const QUICK_SHAPES = [[4, 8, 6, 6]];

const MODES = ['train-fwd', 'train-fwdbwd', 'infer'];

// Passes over x counted for "effective GB/s" (the issue's convention):
// training forward 3 (read for stats, read + write to normalize), inference
// 2, backward 5, so forward + backward 8.
const EFFECTIVE_PASSES = { 'train-fwd': 3, 'train-fwdbwd': 8, infer: 2 };
// The least traffic possible when a channel's slice stays in cache:
// forward x read once and y written once; backward x and dy read once and
// dx written once.
const MINIMAL_PASSES = { 'train-fwd': 2, 'train-fwdbwd': 5, infer: 2 };

function numel(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

const DTYPES = ['float32', 'bfloat16', 'float16'];
const DTYPE_BYTES = { float32: 4, bfloat16: 2, float16: 2 };

/** The cases of `dtypes` (float32's ids carry no dtype; the others end with it). */
function makeCases(quick, dtypes = ['float32']) {
  const cases = [];
  for (const shape of quick ? QUICK_SHAPES : SHAPES) {
    const formats = shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
    for (const format of formats) {
      for (const mode of MODES) {
        for (const dtype of dtypes) {
          const id = `${shape.join('x')} ${format} ${mode}${dtype === 'float32' ? '' : ` ${dtype}`}`;
          cases.push({ id, shape, format, mode, dtype });
        }
      }
    }
  }
  return cases;
}

function bytes(c, passes) {
  return passes[c.mode] * numel(c.shape) * DTYPE_BYTES[c.dtype ?? 'float32'];
}

module.exports = { makeCases, numel, bytes, EFFECTIVE_PASSES, MINIMAL_PASSES, MODES, DTYPES, DTYPE_BYTES };
