// BatchNorm over a whole batch, step by step, written here in float64 from
// PyTorch's definitions (torch/nn/modules/batchnorm.py, native_batch_norm and
// its backward), not with the library: the distributed tests compare every
// rank with it, so a bug SyncBatchNorm shares with BatchNorm cannot pass.
//
// Training: biased batch variance normalizes; running stats move by the
// momentum (or 1 / batches seen, when it is null) towards the mean and the
// unbiased variance; the counter counts training forwards. Eval: the running
// stats normalize and are constants for the backward. Grads of weight and
// bias accumulate over steps, as a module's .grad does. (Values are rounded
// to the 16-bit types by lib/half_float.ts, the codec of the checkpoints.)

import type { FloatingDType } from '../../lib';
import { fromHalfBits, toHalfBits } from '../../lib/half_float';

export interface ReferenceStep {
  y: number[];
  dx: number[];
  gradWeight: number[];
  gradBias: number[];
  runningMean: number[];
  runningVar: number[];
  counter: number;
}

export interface ReferenceConfig {
  shape: number[];
  eps: number;
  momentum: number | null;
  weight: number[];
  bias: number[];
  /**
   * The inputs' dtype and the parameters' (paramDtype, default the same): a
   * layer sees its inputs and parameters rounded to them, and so does the
   * reference; it computes in float64 from there.
   */
  dtype: FloatingDType;
  paramDtype?: FloatingDType;
  steps: { training: boolean; x: number[]; dy: number[] }[];
}

/** A value as a tensor of `dtype` holds it. */
function rounding(dtype: FloatingDType): (v: number) => number {
  if (dtype === 'float64') return (v) => v;
  if (dtype === 'float32') return Math.fround;
  return (v) => fromHalfBits(toHalfBits(v, dtype), dtype);
}

export function referenceBatchNorm(cfg: ReferenceConfig): ReferenceStep[] {
  const [N, C] = cfg.shape;
  const inner = cfg.shape.slice(2).reduce((a, b) => a * b, 1);
  const n = N * inner;
  const round = rounding(cfg.dtype);
  const weight = cfg.weight.map(rounding(cfg.paramDtype ?? cfg.dtype));
  const bias = cfg.bias.map(rounding(cfg.paramDtype ?? cfg.dtype));
  const runningMean = new Array<number>(C).fill(0);
  const runningVar = new Array<number>(C).fill(1);
  const gradWeight = new Array<number>(C).fill(0);
  const gradBias = new Array<number>(C).fill(0);
  let counter = 0;
  const at = (i: number, c: number, k: number) => (i * C + c) * inner + k;

  return cfg.steps.map((s) => {
    const x = s.x.map(round);
    const dy = s.dy.map(round);
    const y = new Array<number>(x.length);
    const dx = new Array<number>(x.length);
    if (s.training) counter += 1;
    const factor = cfg.momentum === null ? 1 / counter : cfg.momentum;
    for (let c = 0; c < C; c++) {
      let mean: number;
      let invstd: number;
      if (s.training) {
        let sum = 0;
        for (let i = 0; i < N; i++) for (let k = 0; k < inner; k++) sum += x[at(i, c, k)];
        mean = sum / n;
        let m2 = 0;
        for (let i = 0; i < N; i++) for (let k = 0; k < inner; k++) m2 += (x[at(i, c, k)] - mean) ** 2;
        invstd = 1 / Math.sqrt(m2 / n + cfg.eps);
        runningMean[c] = (1 - factor) * runningMean[c] + factor * mean;
        runningVar[c] = (1 - factor) * runningVar[c] + factor * (m2 / (n - 1));
      } else {
        mean = runningMean[c];
        invstd = 1 / Math.sqrt(runningVar[c] + cfg.eps);
      }
      let sumDy = 0;
      let sumDyXmu = 0;
      for (let i = 0; i < N; i++) {
        for (let k = 0; k < inner; k++) {
          const j = at(i, c, k);
          y[j] = (x[j] - mean) * invstd * weight[c] + bias[c];
          sumDy += dy[j];
          sumDyXmu += dy[j] * (x[j] - mean);
        }
      }
      for (let i = 0; i < N; i++) {
        for (let k = 0; k < inner; k++) {
          const j = at(i, c, k);
          // Training: the gradient flows through the batch mean and variance too.
          const through = s.training ? sumDy / n + (x[j] - mean) * invstd * invstd * sumDyXmu / n : 0;
          dx[j] = (dy[j] - through) * invstd * weight[c];
        }
      }
      gradWeight[c] += sumDyXmu * invstd;
      gradBias[c] += sumDy;
    }
    return { y, dx, gradWeight: [...gradWeight], gradBias: [...gradBias], runningMean: [...runningMean], runningVar: [...runningVar], counter };
  });
}
