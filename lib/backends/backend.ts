// A Backend runs the functional ops, and SyncBatchNorm's syncs, on one
// device: it allocates the outputs there and calls the addon's op
// (native.ops, the same binding for both devices). lib/functional.ts checks
// the arguments, then calls the backend of the input's device
// (lib/backends/index.ts picks it); nothing else knows about devices.
import type { Fingerprint, ProcessGroup } from '../distributed/process_group';
import type { Device, Tensor } from '../tensor';

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

/** One synchronization point of a SyncBatchNorm layer. */
export interface SyncPoint {
  fingerprint: Fingerprint;
  /** Check the fingerprint across ranks (SyncBatchNorm's checkDivergence). */
  check: boolean;
  /** How errors name the layer and pass. */
  where: string;
}

/** The running statistics and constants of a forward sync. */
export interface SyncStatsArgs {
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  eps: number;
  momentum: number;
  /** Sees the merged count before the running statistics move, and may refuse it by throwing. */
  checkCount(count: number): void;
}

/**
 * The ops of one device, on checked arguments (lib/functional.ts checks);
 * each is the functional op of the same name less its checks, and the three
 * steps of SyncBatchNorm that reach across ranks.
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
  /**
   * SyncBatchNorm's forward sync: the group's mean and invstd of `input`
   * (each rank's (count, mean, m2) per channel, merged exactly), the running
   * statistics moved by `momentum`, and the merged count.
   */
  syncStats(input: Tensor, group: ProcessGroup, at: SyncPoint, a: SyncStatsArgs): { mean: Tensor; invstd: Tensor; count: number };
  /** SyncBatchNorm's backward sync: `sumDy` and `sumDyXmu` summed over the group, in place. */
  syncGradSums(sumDy: Tensor, sumDyXmu: Tensor, group: ProcessGroup, at: SyncPoint): void;
  /** grad += g in place, as autograd accumulates into `.grad` (g may be float32 for a half grad). */
  addInto(grad: Tensor, g: Tensor, where: string): void;
}
