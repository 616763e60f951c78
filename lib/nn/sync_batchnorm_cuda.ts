// SyncBatchNorm's two synchronization points on CUDA tensors over NCCL,
// kept on the device: the Welford summary, its all-gather, the merge with
// the running-stat update, the backward sums and their all-reduce all stay
// in device memory, enqueued on the device's stream. The host reads back one
// number per forward (the merged count, which decides whether the batch is
// refused and scales grad input). The threads and Gloo backends reduce host
// memory, so their path (nn/sync_batchnorm.ts) stages through the host.
//
// The forward all-gathers the ranks' (count, mean, m2) triples (world x 3C
// doubles, as PyTorch all-gathers world x (2C + 1) statistics) and merges
// them in rank order on every rank: NCCL has no user-defined reduction, and
// the same order gives every rank the same bits.
import { ProcessGroup, Fingerprint } from '../distributed/process_group';
import * as cuda from '../backends/cuda';
import { Tensor, emptyCuda } from '../tensor';

// The device ops this path runs, for the GPU suite (test/gpu/check_cuda.js).
export { batchNormWelfordSummary, batchNormGatherWelford, addInto } from '../backends/cuda';

export interface SyncPoint {
  fingerprint: Fingerprint;
  /** Check the fingerprint across ranks (SyncBatchNorm's checkDivergence). */
  check: boolean;
  where: string;
}

/** Whether a sync of `input` over `group` stays on the device. */
export function syncsOnDevice(input: Tensor, group: ProcessGroup): boolean {
  return input.isCuda && group.backend === 'nccl';
}

/**
 * The group's batch statistics of `input`: mean and invstd per channel,
 * running stats moved in place by `momentum` (when given and the merged
 * count exceeds 1), and the merged count.
 */
export function syncStatsOnDevice(input: Tensor, group: ProcessGroup, at: SyncPoint, opts: {
  runningMean: Tensor | null; runningVar: Tensor | null; eps: number; momentum: number;
}): { mean: Tensor; invstd: Tensor; count: number } {
  const C = input.shape[1];
  const summary = cuda.batchNormWelfordSummary(input);
  const gathered = emptyCuda([group.size * 3 * C], 'float64', input.device);
  group.syncAllGatherDevice(at.fingerprint, summary.cudaStorage().buffer, gathered.cudaStorage().buffer, 3 * C, 'float64', at);
  return cuda.batchNormGatherWelford(gathered, group.size, input, opts.runningMean, opts.runningVar,
    { eps: opts.eps, momentum: opts.momentum }, at.where);
}

/**
 * Sums `sumDy` and `sumDyXmu` (C values each, one dtype, one device) over
 * the group, in place: packed into one buffer so that one NCCL all-reduce
 * moves both (PyTorch concatenates them too).
 */
export function syncGradSumsOnDevice(sumDy: Tensor, sumDyXmu: Tensor, group: ProcessGroup, at: SyncPoint): void {
  const C = sumDy.numel();
  const dtype = sumDy.dtype as 'float32' | 'float64';
  const bytes = C * (dtype === 'float64' ? 8 : 4);
  const packed = emptyCuda([2 * C], dtype, sumDy.device);
  const p = packed.cudaStorage().buffer;
  p.copyFrom(sumDy.cudaStorage().buffer, bytes, 0, 0);
  p.copyFrom(sumDyXmu.cudaStorage().buffer, bytes, bytes, 0);
  group.syncAllReduceDevice(at.fingerprint, p, 2 * C, dtype, at);
  sumDy.cudaStorage().buffer.copyFrom(p, bytes, 0, 0);
  sumDyXmu.cudaStorage().buffer.copyFrom(p, bytes, 0, bytes);
}

/** grad += g on the device, as autograd accumulates into `.grad`. */
export function accumulateOnDevice(grad: Tensor, g: Tensor, where: string): void {
  cuda.addInto(grad, g, where);
}
