// The CUDA backend: device storage (DeviceBuffer), outputs allocated on the
// input's device, the CUDA kernels through native.ops. Ops enqueue on the
// device's stream and return; only copies to the host wait. The ops of C
// values with no CUDA kernel (gather, finalize, moments, blend) run on the
// host and write their results back to the device.
//
// SyncBatchNorm over NCCL stays on the device: the Welford summary, its
// all-gather, the merge with the running-stat update, the backward sums and
// their all-reduce are all enqueued on the device's stream; the host reads
// back one number per forward (the merged count, which decides whether the
// batch is refused and scales grad input). The forward all-gathers the
// ranks' (count, mean, m2) triples (world x 3C doubles, as PyTorch
// all-gathers world x (2C + 1) statistics) and merges them in rank order on
// every rank: NCCL has no user-defined reduction, and the same order gives
// every rank the same bits. Over the threads and Gloo communicators, which
// reduce host memory, CUDA tensors sync through the host (kernel_ops.ts).
import { tensor } from '../factories';
import { native, OpDType } from '../native';
import { channelTensor, paramDtype } from '../op_checks';
import { batchView, Device, emptyCuda, Tensor } from '../tensor';
import type { ProcessGroup } from '../distributed/process_group';
import type { Backend, BlendArgs, SyncPoint, SyncStatsArgs } from './backend';
import { cpu } from './cpu';
import { KernelOps } from './kernel_ops';

/**
 * Runs a per-channel op on host copies of running stats that may live on a
 * device, then writes the updated values back.
 */
function withHostRunningStats<R>(runningMean: Tensor | null, runningVar: Tensor | null,
  fn: (rm: Tensor | null, rv: Tensor | null) => R): R {
  const hostMean = runningMean ? runningMean.cpu() : null;
  const hostVar = runningVar ? runningVar.cpu() : null;
  const r = fn(hostMean, hostVar);
  if (runningMean && hostMean && hostMean !== runningMean) runningMean.copy_(hostMean);
  if (runningVar && hostVar && hostVar !== runningVar) runningVar.copy_(hostVar);
  return r;
}

class CudaBackend extends KernelOps implements Backend {
  protected like(input: Tensor): Tensor {
    return emptyCuda(input.shape, input.dtype, input.device, input.memoryFormat);
  }

  protected perChannel(input: Tensor, n: number): Tensor {
    return emptyCuda([n], this.paramDtype(input), input.device);
  }

  protected array(t: Tensor) {
    return t.cudaStorage().buffer;
  }

  welfordStats(input: Tensor): Float64Array {
    const out = new Float64Array(3 * input.shape[1]);
    batchNormWelfordSummary(input).cudaStorage().buffer.copyToHost(out);
    return out;
  }

  moments(input: Tensor): { mean: Tensor; variance: Tensor } {
    // C values: from the device's Welford summary, finished on the host.
    const C = input.shape[1];
    const s = this.welfordStats(input);
    const mean = new Float64Array(C);
    const variance = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      mean[c] = s[3 * c + 1];
      variance[c] = s[3 * c] > 1 ? s[3 * c + 2] / (s[3 * c] - 1) : NaN;
    }
    const dtype = this.paramDtype(input);
    return { mean: tensor(mean, [C], { dtype, device: input.device }), variance: tensor(variance, [C], { dtype, device: input.device }) };
  }

  gatherStatsWithCounts(means: Tensor, invstds: Tensor, counts: Float64Array, runningMean: Tensor | null,
    runningVar: Tensor | null, momentum: number, eps: number): { mean: Tensor; invstd: Tensor } {
    // world x C statistics: small; merged on the host, returned to the device.
    const r = withHostRunningStats(runningMean, runningVar,
      (rm, rv) => cpu.gatherStatsWithCounts(means.cpu(), invstds.cpu(), counts, rm, rv, momentum, eps));
    return { mean: r.mean.to(means.device), invstd: r.invstd.to(means.device) };
  }

  welfordFinalize(summary: Float64Array, runningMean: Tensor | null, runningVar: Tensor | null, eps: number,
    momentum: number, dtype: 'float32' | 'float64', device: Device): { mean: Tensor; invstd: Tensor } {
    // C values, merged on the host; results and running stats back on the device.
    const r = withHostRunningStats(runningMean, runningVar,
      (rm, rv) => cpu.welfordFinalize(summary, rm, rv, eps, momentum, dtype, 'cpu'));
    return { mean: r.mean.to(device), invstd: r.invstd.to(device) };
  }

  blendStats(mean: Tensor, variance: Tensor, a: BlendArgs): { mean: Tensor; variance: Tensor } {
    // C values: blended on the host, written back to the device tensors.
    const host = (t: Tensor | null) => (t ? t.cpu() : null);
    const r = cpu.blendStats(mean.cpu(), variance.cpu(), {
      momentum: a.momentum, varScale: a.varScale,
      other: a.other ? { mean: a.other.mean.cpu(), variance: a.other.variance.cpu() } : null,
      runningMean: host(a.runningMean), runningVar: host(a.runningVar), out: null,
    });
    if (a.out) return { mean: a.out.mean.copy_(r.mean), variance: a.out.variance.copy_(r.variance) };
    return { mean: r.mean.to(mean.device), variance: r.variance.to(mean.device) };
  }

  override syncStats(input: Tensor, group: ProcessGroup, at: SyncPoint, a: SyncStatsArgs): { mean: Tensor; invstd: Tensor; count: number } {
    if (group.backend !== 'nccl') return super.syncStats(input, group, at, a);
    const C = input.shape[1];
    const summary = batchNormWelfordSummary(input);
    const gathered = emptyCuda([group.size * 3 * C], 'float64', input.device);
    group.syncAllGatherDevice(at.fingerprint, summary.cudaStorage().buffer, gathered.cudaStorage().buffer, 3 * C, 'float64', at);
    const stats = batchNormGatherWelford(gathered, group.size, input, a.runningMean, a.runningVar,
      { eps: a.eps, momentum: a.momentum }, at.where);
    // The merge left the running stats alone for a count below 2.
    a.checkCount(stats.count);
    return stats;
  }

  override syncGradSums(sumDy: Tensor, sumDyXmu: Tensor, group: ProcessGroup, at: SyncPoint): void {
    if (group.backend !== 'nccl') {
      super.syncGradSums(sumDy, sumDyXmu, group, at);
      return;
    }
    // Packed into one buffer so that one NCCL all-reduce moves both (PyTorch concatenates them too).
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

  override addInto(grad: Tensor, g: Tensor, where: string): void {
    // A half grad takes float32 values on the host.
    if (grad.dtype === g.dtype) addInto(grad, g, where);
    else super.addInto(grad, g, where);
  }
}

export const cuda: Backend = new CudaBackend();

// ---- SyncBatchNorm on the device: CUDA's own ops (the GPU suite calls them too) ----

/** The local (count, mean, m2) triples per channel, float64 [3C], on the input's device. */
export function batchNormWelfordSummary(input: Tensor): Tensor {
  const summary = emptyCuda([3 * input.shape[1]], 'float64', input.device);
  native.ops.welfordStats({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
    input: input.cudaStorage().buffer, summary: summary.cudaStorage().buffer });
  return summary;
}

/**
 * Merges `world` ranks' summaries (float64 [world * 3C], rank-major) in rank
 * order on the device into mean and invstd, moving the running stats when
 * the merged count exceeds 1. Returns the merged count too: the one value
 * that comes back to the host (8 bytes), which waits for the stream.
 */
export function batchNormGatherWelford(summaries: Tensor, world: number, input: Tensor, runningMean: Tensor | null,
  runningVar: Tensor | null, opts: { eps: number; momentum: number }, where: string): { mean: Tensor; invstd: Tensor; count: number } {
  const C = input.shape[1];
  if (!summaries.isCuda || summaries.dtype !== 'float64' || summaries.numel() !== world * 3 * C || summaries.device !== input.device) {
    throw new TypeError(`${where}: the gathered statistics must be ${world * 3 * C} float64 values on ${input.device}, ` +
      `got ${summaries.numel()} ${summaries.dtype} values on ${summaries.device}`);
  }
  const pd = paramDtype(input.dtype);
  const rm = channelTensor(runningMean, 'running_mean', C, pd, where, input);
  const rv = channelTensor(runningVar, 'running_var', C, pd, where, input);
  const mean = emptyCuda([C], pd, input.device);
  const invstd = emptyCuda([C], pd, input.device);
  const total = emptyCuda([1], 'float64', input.device);
  native.ops.welfordGather({ dtype: input.dtype as OpDType, summaries: summaries.cudaStorage().buffer, world, channels: C,
    eps: opts.eps, momentum: opts.momentum, mean: mean.cudaStorage().buffer, invstd: invstd.cudaStorage().buffer,
    runningMean: rm ? rm.cudaStorage().buffer : null, runningVar: rv ? rv.cudaStorage().buffer : null,
    totalCount: total.cudaStorage().buffer });
  const count = new Float64Array(1);
  total.cudaStorage().buffer.copyToHost(count);
  return { mean, invstd, count: count[0] };
}

/** dst += src on the device (both per-channel tensors of one dtype and device). */
export function addInto(dst: Tensor, src: Tensor, where: string): void {
  if (!dst.isCuda || !src.isCuda || dst.device !== src.device || dst.dtype !== src.dtype || dst.numel() !== src.numel() ||
    (dst.dtype !== 'float32' && dst.dtype !== 'float64')) {
    throw new TypeError(`${where}: cannot add a ${src.dtype} [${src.shape.join(', ')}] tensor on ${src.device} into a ` +
      `${dst.dtype} [${dst.shape.join(', ')}] tensor on ${dst.device}`);
  }
  native.ops.accumulate({ dtype: dst.dtype, source: src.cudaStorage().buffer, destination: dst.cudaStorage().buffer, count: dst.numel() });
}
