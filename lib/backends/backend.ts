// A Backend runs the functional ops on one device: it allocates the outputs
// there and calls the addon's op (native.ops, the same binding for both
// devices). lib/functional.ts checks the arguments, then calls the backend of
// the input's device; nothing else in it knows about devices.
import type { Device, Tensor } from '../tensor';
import { cpu } from './cpu';
import { cuda } from './cuda';

export interface NativeBatchNormResult {
  output: Tensor;
  /** Batch mean per channel (training), empty otherwise. */
  saveMean: Tensor;
  /** 1/sqrt(biased batch var + eps) per channel (training), empty otherwise. */
  saveInvstd: Tensor;
}

export interface BatchNormBackwardResult {
  gradInput: Tensor | null;
  gradWeight: Tensor | null;
  gradBias: Tensor | null;
}

export interface BackwardReduceResult {
  sumDy: Tensor | null;
  sumDyXmu: Tensor | null;
  gradWeight: Tensor | null;
  gradBias: Tensor | null;
}

/** The checked arguments of the fused backward. */
export interface BackwardArgs {
  weight: Tensor | null;
  /** Saved mean (training) or running mean. */
  mean: Tensor;
  /** Saved invstd (training) or running var. */
  invstdOrVar: Tensor;
  training: boolean;
  eps: number;
  /** Which of (gradInput, gradWeight, gradBias) to compute. */
  want: readonly [boolean, boolean, boolean];
  /** With `accumulate`, the grads are added into these. */
  into: { weight: Tensor | null; bias: Tensor | null };
  accumulate: boolean;
}

/** The checked arguments of blendStats (see F.blendStats). */
export interface BlendArgs {
  momentum: number;
  varScale: number;
  other: { mean: Tensor; variance: Tensor } | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  out: { mean: Tensor; variance: Tensor } | null;
}

/**
 * The ops of one device, on checked arguments (lib/functional.ts checks);
 * each is the functional op of the same name less its checks.
 */
export interface Backend {
  forwardTraining(input: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null,
    runningVar: Tensor | null, momentum: number, eps: number): NativeBatchNormResult;
  forwardInference(input: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor, runningVar: Tensor,
    eps: number): NativeBatchNormResult;
  backward(gradOutput: Tensor, input: Tensor, a: BackwardArgs): BatchNormBackwardResult;
  stats(input: Tensor, eps: number): { mean: Tensor; invstd: Tensor };
  elemt(input: Tensor, weight: Tensor | null, bias: Tensor | null, mean: Tensor, invstd: Tensor): Tensor;
  backwardReduce(gradOutput: Tensor, input: Tensor, mean: Tensor, invstd: Tensor,
    want: { inputG: boolean; weightG: boolean; biasG: boolean }): BackwardReduceResult;
  backwardElemt(gradOutput: Tensor, input: Tensor, mean: Tensor, invstd: Tensor, weight: Tensor | null, sumDy: Tensor,
    sumDyXmu: Tensor, count: number): Tensor;
  /** (count, mean, m2) per channel, on the host. */
  welfordStats(input: Tensor): Float64Array;
  moments(input: Tensor): { mean: Tensor; variance: Tensor };
  /** means, invstds: [world, C] on this device; counts: one per worker. */
  gatherStatsWithCounts(means: Tensor, invstds: Tensor, counts: Float64Array, runningMean: Tensor | null,
    runningVar: Tensor | null, momentum: number, eps: number): { mean: Tensor; invstd: Tensor };
  /** Results (and running stats, updated) on `device`. */
  welfordFinalize(summary: Float64Array, runningMean: Tensor | null, runningVar: Tensor | null, eps: number,
    momentum: number, dtype: 'float32' | 'float64', device: Device): { mean: Tensor; invstd: Tensor };
  blendStats(mean: Tensor, variance: Tensor, a: BlendArgs): { mean: Tensor; variance: Tensor };
}

/** The CUDA backend when any of `devices` is a CUDA device, else the CPU's. */
export function backendWhere(...devices: (Device | undefined)[]): Backend {
  return devices.some((d) => d !== undefined && d !== 'cpu') ? cuda : cpu;
}

/** The backend of a tensor's device. */
export function backendOf(t: Tensor): Backend {
  return t.isCuda ? cuda : cpu;
}
