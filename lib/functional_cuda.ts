// The functional ops on CUDA tensors: the same checks as on the CPU (done by
// functional.ts before it gets here), outputs allocated on the input's
// device, one call into the CUDA kernels. Ops enqueue on the device's stream
// and return; only copies to the host wait.
import { CudaDType, DeviceBuffer, native, NativeShape } from './native';
import { channelTensor, paramDtype } from './op_checks';
import { batchView, emptyCuda, Tensor } from './tensor';

function dtypeOf(t: Tensor): CudaDType {
  return t.dtype as CudaDType;
}

function head(input: Tensor): [CudaDType, number, NativeShape, boolean] {
  return [dtypeOf(input), input.cudaStorage().index, batchView(input.shape), input.memoryFormat === 'channelsLast'];
}

function buf(t: Tensor | null): DeviceBuffer | null {
  return t ? t.cudaStorage().buffer : null;
}

function like(input: Tensor): Tensor {
  return emptyCuda(input.shape, input.dtype, input.device, input.memoryFormat);
}

function channels(input: Tensor): Tensor {
  return emptyCuda([input.shape[1]], paramDtype(input.dtype), input.device);
}

/** A checked per-channel CUDA tensor's buffer. */
function param(t: Tensor | null | undefined, name: string, input: Tensor, where: string, required = false): DeviceBuffer | null {
  return buf(channelTensor(t, name, input.shape[1], paramDtype(input.dtype), where, input, required));
}

export function nativeBatchNorm(input: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null,
  runningVar: Tensor | null, training: boolean, momentum: number, eps: number, where: string) {
  const rm = param(runningMean, 'running_mean', input, where, !training);
  const rv = param(runningVar, 'running_var', input, where, !training);
  const w = param(weight, 'weight', input, where);
  const b = param(bias, 'bias', input, where);
  const output = like(input);
  const h = head(input);
  if (training) {
    const saveMean = channels(input);
    const saveInvstd = channels(input);
    native.cuda.forwardTraining(...h, buf(input)!, w, b, eps, momentum, rm, rv, buf(output)!, buf(saveMean)!, buf(saveInvstd)!);
    return { output, saveMean, saveInvstd };
  }
  native.cuda.forwardInference(...h, buf(input)!, rm!, rv!, w, b, eps, buf(output)!);
  const none = emptyCuda([0], paramDtype(input.dtype), input.device);
  return { output, saveMean: none, saveInvstd: none };
}

export function batchNormBackward(dy: Tensor, input: Tensor, opts: {
  weight?: Tensor | null; training: boolean; eps: number; mean: Tensor; second: Tensor;
  want: [boolean, boolean, boolean]; into: { weight?: Tensor | null; bias?: Tensor | null }; accumulate: boolean;
}, where: string) {
  const w = param(opts.weight, 'weight', input, where);
  const mean = param(opts.mean, opts.training ? 'save_mean' : 'running_mean', input, where, true)!;
  const second = param(opts.second, opts.training ? 'save_invstd' : 'running_var', input, where, true)!;
  const [wantInput, wantWeight, wantBias] = opts.want;
  const gradInput = wantInput ? like(input) : null;
  const gradWeight = wantWeight ? (opts.accumulate ? opts.into.weight! : channels(input)) : null;
  const gradBias = wantBias ? (opts.accumulate ? opts.into.bias! : channels(input)) : null;
  native.cuda.backward(...head(input), buf(dy)!, buf(input)!, w, mean, second, opts.training, opts.eps, buf(gradInput),
    param(gradWeight, 'grad_weight', input, where), param(gradBias, 'grad_bias', input, where), opts.accumulate);
  return { gradInput, gradWeight, gradBias };
}

export function batchNormStats(input: Tensor, eps: number) {
  const mean = channels(input);
  const invstd = channels(input);
  native.cuda.stats(...head(input), buf(input)!, eps, buf(mean)!, buf(invstd)!);
  return { mean, invstd };
}

export function batchNormElemt(input: Tensor, weight: Tensor | null, bias: Tensor | null, mean: Tensor, invstd: Tensor, where: string): Tensor {
  const out = like(input);
  native.cuda.elemt(...head(input), buf(input)!, param(mean, 'mean', input, where, true)!, param(invstd, 'invstd', input, where, true)!,
    param(weight, 'weight', input, where), param(bias, 'bias', input, where), buf(out)!);
  return out;
}

export function batchNormBackwardReduce(dy: Tensor, input: Tensor, mean: Tensor, invstd: Tensor, weight: Tensor | null,
  mask: { inputG: boolean; weightG: boolean; biasG: boolean }, where: string) {
  param(weight, 'weight', input, where);
  const sumDy = mask.inputG ? channels(input) : null;
  const sumDyXmu = mask.inputG ? channels(input) : null;
  const gradWeight = mask.weightG ? channels(input) : null;
  const gradBias = mask.biasG ? channels(input) : null;
  native.cuda.backwardReduce(...head(input), buf(dy)!, buf(input)!, param(mean, 'mean', input, where, true)!,
    param(invstd, 'invstd', input, where, true)!, buf(sumDy), buf(sumDyXmu), buf(gradWeight), buf(gradBias));
  return { sumDy, sumDyXmu, gradWeight, gradBias };
}

export function batchNormBackwardElemt(dy: Tensor, input: Tensor, mean: Tensor, invstd: Tensor, weight: Tensor | null,
  sumDy: Tensor, sumDyXmu: Tensor, count: number, where: string): Tensor {
  const out = like(input);
  native.cuda.backwardElemt(...head(input), buf(dy)!, buf(input)!, param(mean, 'mean', input, where, true)!,
    param(invstd, 'invstd', input, where, true)!, param(weight, 'weight', input, where),
    param(sumDy, 'sum_dy', input, where, true)!, param(sumDyXmu, 'sum_dy_xmu', input, where, true)!, count, buf(out)!);
  return out;
}

// ---- SyncBatchNorm on the device (nn/sync_batchnorm_cuda.ts) ----

/** The local (count, mean, m2) triples per channel, float64 [3C], on the input's device. */
export function batchNormWelfordSummary(input: Tensor): Tensor {
  const summary = emptyCuda([3 * input.shape[1]], 'float64', input.device);
  native.cuda.welfordStats(...head(input), buf(input)!, buf(summary)!);
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
  const rm = param(runningMean, 'running_mean', input, where);
  const rv = param(runningVar, 'running_var', input, where);
  const mean = channels(input);
  const invstd = channels(input);
  const count = native.cuda.gatherWelford(dtypeOf(input), input.cudaStorage().index, world, C, buf(summaries)!, opts.eps, opts.momentum,
    buf(mean)!, buf(invstd)!, rm, rv);
  return { mean, invstd, count };
}

/** dst += src on the device (both per-channel tensors of one dtype and device). */
export function addInto(dst: Tensor, src: Tensor, where: string): void {
  if (!dst.isCuda || !src.isCuda || dst.device !== src.device || dst.dtype !== src.dtype || dst.numel() !== src.numel() ||
    (dst.dtype !== 'float32' && dst.dtype !== 'float64')) {
    throw new TypeError(`${where}: cannot add a ${src.dtype} [${src.shape.join(', ')}] tensor on ${src.device} into a ` +
      `${dst.dtype} [${dst.shape.join(', ')}] tensor on ${dst.device}`);
  }
  native.cuda.addInto(dtypeOf(dst), dst.cudaStorage().index, dst.numel(), buf(src)!, buf(dst)!);
}
