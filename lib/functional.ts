// F.batchNorm and the ATen-level ops below it. Every op validates in
// TypeScript, allocates its outputs, and makes one call into the addon.
import { tensor } from './factories';
import * as cuda from './functional_cuda';
import { CudaDType, native, NativeShape } from './native';
import { channelTensor, checkInput, checkNumber, describeShape, matchGrad, paramDtype } from './op_checks';
import { outputArray } from './storage';
import { Device, Tensor, FloatStorage, batchView, emptyCuda, storageDtype } from './tensor';

type FloatTensor = Tensor & { data: FloatStorage };

/** The CPU storage of a checked float tensor. */
function host(t: Tensor): FloatStorage {
  return t.data as FloatStorage;
}

/** The CPU storage of a checked per-channel tensor. */
function channelData(
  t: Tensor | null | undefined,
  name: string,
  channels: number,
  dtype: string,
  where: string,
  required = false,
  input?: Tensor,
): FloatStorage | null {
  const checked = channelTensor(t, name, channels, dtype, where, input ?? (t as Tensor), required);
  return checked ? (checked.data as FloatStorage) : null;
}

/** An output tensor of `input`'s dtype, from the recycled storage; every op writes all of it. */
function like(input: Tensor, shape: readonly number[] = input.shape): FloatTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = outputArray(input.dtype === 'float64' ? 'float64' : 'float32', n);
  return new Tensor(data, shape, shape === input.shape ? input.memoryFormat : 'contiguous') as FloatTensor;
}

/**
 * Runs a per-channel op (C values) on host copies of running stats that may
 * live on a device, then writes the updated values back.
 */
function withHostRunningStats<R>(runningMean: Tensor | null, runningVar: Tensor | null, fn: (rm: Tensor | null, rv: Tensor | null) => R): R {
  const hostMean = runningMean ? runningMean.cpu() : null;
  const hostVar = runningVar ? runningVar.cpu() : null;
  const r = fn(hostMean, hostVar);
  if (runningMean && hostMean && hostMean !== runningMean) runningMean.copy_(hostMean);
  if (runningVar && hostVar && hostVar !== runningVar) runningVar.copy_(hostVar);
  return r;
}

function view(input: Tensor): [NativeShape, boolean] {
  return [batchView(input.shape), input.memoryFormat === 'channelsLast'];
}

/** Values per channel: N times the spatial size. */
export function valuesPerChannel(shape: readonly number[]): number {
  let n = shape[0];
  for (let i = 2; i < shape.length; i++) n *= shape[i];
  return n;
}

/** Throws PyTorch's error when training would see a single value per channel. */
export function verifyBatchSize(shape: readonly number[]): void {
  if (valuesPerChannel(shape) === 1) {
    throw new RangeError(`Expected more than 1 value per channel when training, got input size ${describeShape(shape)}`);
  }
}

export interface NativeBatchNormResult {
  output: Tensor;
  /** Batch mean per channel (training), empty otherwise. */
  saveMean: Tensor;
  /** 1/sqrt(biased batch var + eps) per channel (training), empty otherwise. */
  saveInvstd: Tensor;
}

/**
 * Batch normalization returning the statistics backward needs. In training,
 * running stats (when given) move by `momentum` towards the batch mean and
 * unbiased variance. Cf. `torch.native_batch_norm`.
 *
 * @example
 * const { output, saveMean, saveInvstd } = F.nativeBatchNorm(x, w, b, rm, rv, true, 0.1, 1e-5);
 */
export function nativeBatchNorm(
  input: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  training: boolean,
  momentum: number,
  eps: number,
): NativeBatchNormResult {
  const where = 'batch_norm';
  checkInput(input, where);
  checkNumber(eps, 'eps', where, 0);
  if (training) checkNumber(momentum, 'momentum', where);
  if (input.isCuda) return cuda.nativeBatchNorm(input, weight, bias, runningMean, runningVar, training, momentum, eps, where);
  const C = input.shape[1];
  // ATen checks the running stats first; the first mismatch names its tensor.
  const rm = channelData(runningMean, 'running_mean', C, input.dtype, where, !training, input);
  const rv = channelData(runningVar, 'running_var', C, input.dtype, where, !training, input);
  const w = channelData(weight, 'weight', C, input.dtype, where, false, input);
  const b = channelData(bias, 'bias', C, input.dtype, where, false, input);
  const [shape, cl] = view(input);
  const output = like(input);
  if (training) {
    const saveMean = like(input, [C]);
    const saveInvstd = like(input, [C]);
    native.batchNormForwardTraining(host(input), shape, cl, w, b, eps, momentum, rm, rv, output.data, saveMean.data, saveInvstd.data);
    return { output, saveMean, saveInvstd };
  }
  native.batchNormForwardInference(host(input), shape, cl, rm!, rv!, w, b, eps, output.data);
  return { output, saveMean: like(input, [0]), saveInvstd: like(input, [0]) };
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Use batch statistics (and update running stats when given). Default false. */
  training?: boolean;
  /** Running-stat factor. Default 0.1. */
  momentum?: number;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
}

/**
 * Batch normalization over dim 1. Cf. `torch.nn.functional.batch_norm`.
 *
 * @example
 * const y = F.batchNorm(x, runningMean, runningVar, { training: true, momentum: 0.1 });
 */
export function batchNorm(
  input: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  opts: BatchNormOptions = {},
): Tensor {
  const training = opts.training ?? false;
  if (training && input instanceof Tensor) verifyBatchSize(input.shape);
  return nativeBatchNorm(input, opts.weight ?? null, opts.bias ?? null, runningMean, runningVar,
    training, opts.momentum ?? 0.1, opts.eps ?? 1e-5).output;
}

export interface BatchNormBackwardOptions {
  weight?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  saveMean?: Tensor | null;
  saveInvstd?: Tensor | null;
  /** Whether the forward used batch statistics. */
  training: boolean;
  eps?: number;
  /** Which of (gradInput, gradWeight, gradBias) to compute. Default all. */
  outputMask?: [boolean, boolean, boolean];
  /** Add gradWeight / gradBias into these tensors instead of allocating new ones. */
  accumulateInto?: { weight?: Tensor | null; bias?: Tensor | null };
}

export interface BatchNormBackwardResult {
  gradInput: Tensor | null;
  gradWeight: Tensor | null;
  gradBias: Tensor | null;
}

/**
 * Gradients of batch normalization. In training the statistics are
 * `saveMean`/`saveInvstd` and gradInput flows through them; otherwise the
 * running stats are constants. Cf. `torch.ops.aten.native_batch_norm_backward`.
 *
 * @example
 * const { gradInput, gradWeight, gradBias } =
 *   F.batchNormBackward(dy, x, { weight, saveMean, saveInvstd, training: true });
 */
export function batchNormBackward(gradOutput: Tensor, input: Tensor, opts: BatchNormBackwardOptions): BatchNormBackwardResult {
  const where = 'batch_norm_backward';
  checkInput(input, where);
  const dy = matchGrad(gradOutput, input, where);
  const C = input.shape[1];
  const dtype = input.dtype;
  const training = opts.training;
  if (typeof training !== 'boolean') throw new TypeError(`${where}: training must be a boolean`);
  const eps = checkNumber(opts.eps ?? 1e-5, 'eps', where, 0);
  const [wantInput, wantWeight, wantBias] = opts.outputMask ?? [true, true, true];
  const into = opts.accumulateInto ?? {};
  const accumulate = into.weight != null || into.bias != null;
  if (accumulate && ((wantWeight && into.weight == null) || (wantBias && into.bias == null))) {
    throw new TypeError(`${where}: accumulateInto needs both weight and bias for the grads in outputMask`);
  }
  if (input.isCuda) {
    return cuda.batchNormBackward(dy, input, {
      weight: opts.weight, training, eps, mean: (training ? opts.saveMean : opts.runningMean)!,
      second: (training ? opts.saveInvstd : opts.runningVar)!, want: [wantInput, wantWeight, wantBias], into, accumulate,
    }, where);
  }
  const w = channelData(opts.weight, 'weight', C, dtype, where, false, input);
  const mean = training
    ? channelData(opts.saveMean, 'save_mean', C, dtype, where, true, input)!
    : channelData(opts.runningMean, 'running_mean', C, dtype, where, true, input)!;
  const second = training
    ? channelData(opts.saveInvstd, 'save_invstd', C, dtype, where, true, input)!
    : channelData(opts.runningVar, 'running_var', C, dtype, where, true, input)!;
  const gradInput = wantInput ? like(input) : null;
  const gradWeight = wantWeight ? (accumulate ? into.weight! : like(input, [C])) : null;
  const gradBias = wantBias ? (accumulate ? into.bias! : like(input, [C])) : null;
  const gw = gradWeight ? channelData(gradWeight, 'grad_weight', C, dtype, where, false, input) : null;
  const gb = gradBias ? channelData(gradBias, 'grad_bias', C, dtype, where, false, input) : null;
  const [shape, cl] = view(input);
  native.batchNormBackward(host(dy), host(input), shape, cl, w, mean, second, training, eps,
    gradInput ? gradInput.data : null, gw, gb, accumulate);
  return { gradInput, gradWeight, gradBias };
}

/**
 * Per-channel batch mean and invstd = 1/sqrt(biased var + eps).
 * Cf. `torch.batch_norm_stats`.
 *
 * @example const { mean, invstd } = F.batchNormStats(x, 1e-5);
 */
export function batchNormStats(input: Tensor, eps: number): { mean: Tensor; invstd: Tensor } {
  const where = 'batch_norm_stats';
  checkInput(input, where);
  checkNumber(eps, 'eps', where, 0);
  if (input.isCuda) return cuda.batchNormStats(input, eps);
  const C = input.shape[1];
  const mean = like(input, [C]);
  const invstd = like(input, [C]);
  const [shape, cl] = view(input);
  native.batchNormStats(host(input), shape, cl, eps, mean.data, invstd.data);
  return { mean, invstd };
}

/**
 * Merges per-worker statistics (`mean` and `invstd` of shape [world, C],
 * `counts` of length world) into global mean and invstd, updating running
 * stats with the global unbiased variance. Cf.
 * `torch.batch_norm_gather_stats_with_counts`.
 *
 * @example
 * const g = F.batchNormGatherStatsWithCounts(means, invstds, rm, rv, { momentum: 0.1, eps: 1e-5, counts: [8, 5] });
 */
export function batchNormGatherStatsWithCounts(
  mean: Tensor,
  invstd: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  opts: { momentum: number; eps: number; counts: ArrayLike<number> | Tensor },
): { mean: Tensor; invstd: Tensor } {
  const where = 'batch_norm_gather_stats_with_counts';
  if (mean instanceof Tensor && mean.isCuda) {
    // world x C statistics: small; merged on the host, returned to the device.
    const r = withHostRunningStats(runningMean, runningVar, (rm, rv) => batchNormGatherStatsWithCounts(mean.cpu(), invstd.cpu(), rm, rv, opts));
    return { mean: r.mean.to(mean.device), invstd: r.invstd.to(mean.device) };
  }
  checkInput(mean, where, 'mean');
  if (mean.ndim !== 2) throw new RangeError(`${where}: mean must have shape [world, C], got ${describeShape(mean.shape)}`);
  const [world, C] = mean.shape;
  if (!(invstd instanceof Tensor) || invstd.ndim !== 2 || invstd.shape[0] !== world || invstd.shape[1] !== C) {
    throw new RangeError(`${where}: invstd must be a Tensor of shape ${describeShape(mean.shape)}`);
  }
  if (invstd.dtype !== mean.dtype) throw new TypeError(`${where}: expected invstd to have dtype ${mean.dtype}, got ${invstd.dtype}`);
  if (world < 1) throw new RangeError(`${where}: need statistics of at least one worker`);
  const countValues = opts.counts instanceof Tensor ? opts.counts.toArray() : opts.counts;
  if (!countValues || countValues.length !== world) {
    throw new RangeError(`${where}: counts must have ${world} entries, one per worker`);
  }
  const counts = Float64Array.from(countValues as ArrayLike<number>, (c) => {
    const v = Number(c);
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${where}: counts must be finite and >= 0`);
    return v;
  });
  const rm = channelData(runningMean, 'running_mean', C, mean.dtype, where);
  const rv = channelData(runningVar, 'running_var', C, mean.dtype, where);
  const momentum = checkNumber(opts.momentum, 'momentum', where);
  const eps = checkNumber(opts.eps, 'eps', where, 0);
  const outMean = like(mean, [C]);
  const outInvstd = like(mean, [C]);
  native.batchNormGatherStatsWithCounts(host(mean), host(invstd), counts, world, C,
    momentum, eps, outMean.data, outInvstd.data, rm, rv);
  return { mean: outMean, invstd: outInvstd };
}

/**
 * y = (x - mean) * invstd * weight + bias. Cf. `torch.batch_norm_elemt`.
 *
 * @example const y = F.batchNormElemt(x, weight, bias, mean, invstd);
 */
export function batchNormElemt(input: Tensor, weight: Tensor | null, bias: Tensor | null, mean: Tensor, invstd: Tensor): Tensor {
  const where = 'batch_norm_elemt';
  checkInput(input, where);
  if (input.isCuda) return cuda.batchNormElemt(input, weight, bias, mean, invstd, where);
  const C = input.shape[1];
  const dt = input.dtype;
  const out = like(input);
  const [shape, cl] = view(input);
  native.batchNormElemt(host(input), shape, cl, channelData(mean, 'mean', C, dt, where, true, input)!,
    channelData(invstd, 'invstd', C, dt, where, true, input)!, channelData(weight, 'weight', C, dt, where, false, input),
    channelData(bias, 'bias', C, dt, where, false, input), out.data);
  return out;
}

export interface BackwardReduceResult {
  sumDy: Tensor | null;
  sumDyXmu: Tensor | null;
  gradWeight: Tensor | null;
  gradBias: Tensor | null;
}

/**
 * Per-channel sum(dy), sum(dy * (x - mean)), grad weight and grad bias.
 * Cf. `torch.batch_norm_backward_reduce`.
 *
 * @example const r = F.batchNormBackwardReduce(dy, x, mean, invstd, weight);
 */
export function batchNormBackwardReduce(
  gradOutput: Tensor,
  input: Tensor,
  mean: Tensor,
  invstd: Tensor,
  weight: Tensor | null,
  mask: { inputG?: boolean; weightG?: boolean; biasG?: boolean } = {},
): BackwardReduceResult {
  const where = 'batch_norm_backward_reduce';
  checkInput(input, where);
  const dy = matchGrad(gradOutput, input, where);
  const C = input.shape[1];
  const dt = input.dtype;
  const inputG = mask.inputG ?? true;
  const weightG = (mask.weightG ?? true) && weight !== null;
  const biasG = (mask.biasG ?? true) && weight !== null;
  if (input.isCuda) return cuda.batchNormBackwardReduce(dy, input, mean, invstd, weight, { inputG, weightG, biasG }, where);
  channelData(weight, 'weight', C, dt, where, false, input);
  const sumDy = inputG ? like(input, [C]) : null;
  const sumDyXmu = inputG ? like(input, [C]) : null;
  const gradWeight = weightG ? like(input, [C]) : null;
  const gradBias = biasG ? like(input, [C]) : null;
  const [shape, cl] = view(input);
  native.batchNormBackwardReduce(host(dy), host(input), shape, cl,
    channelData(mean, 'mean', C, dt, where, true, input)!, channelData(invstd, 'invstd', C, dt, where, true, input)!,
    sumDy?.data ?? null, sumDyXmu?.data ?? null, gradWeight?.data ?? null, gradBias?.data ?? null);
  return { sumDy, sumDyXmu, gradWeight, gradBias };
}

/**
 * Grad input from globally reduced sums; `count` is the total number of
 * values per channel over all workers (or their per-worker counts).
 * Cf. `torch.batch_norm_backward_elemt`.
 *
 * @example const dx = F.batchNormBackwardElemt(dy, x, mean, invstd, weight, sumDy, sumDyXmu, 64);
 */
export function batchNormBackwardElemt(
  gradOutput: Tensor,
  input: Tensor,
  mean: Tensor,
  invstd: Tensor,
  weight: Tensor | null,
  sumDy: Tensor,
  sumDyXmu: Tensor,
  count: number | ArrayLike<number> | Tensor,
): Tensor {
  const where = 'batch_norm_backward_elemt';
  checkInput(input, where);
  const dy = matchGrad(gradOutput, input, where);
  const C = input.shape[1];
  const dt = input.dtype;
  let total: number;
  if (typeof count === 'number') total = count;
  else {
    const values = count instanceof Tensor ? count.toArray() : count;
    total = 0;
    for (let i = 0; i < values.length; i++) total += Number(values[i]);
  }
  checkNumber(total, 'count', where, 0);
  if (input.isCuda) return cuda.batchNormBackwardElemt(dy, input, mean, invstd, weight, sumDy, sumDyXmu, total, where);
  const out = like(input);
  const [shape, cl] = view(input);
  native.batchNormBackwardElemt(host(dy), host(input), shape, cl,
    channelData(mean, 'mean', C, dt, where, true, input)!, channelData(invstd, 'invstd', C, dt, where, true, input)!,
    channelData(weight, 'weight', C, dt, where, false, input), channelData(sumDy, 'sum_dy', C, dt, where, true, input)!,
    channelData(sumDyXmu, 'sum_dy_xmu', C, dt, where, true, input)!, total, out.data);
  return out;
}

/**
 * Per-channel batch mean and unbiased variance (divisor n - 1). Cf.
 * `torch.var_mean(x, dims, unbiased=True)` over every dim but 1.
 *
 * @example const { mean, variance } = F.batchNormMoments(x);
 */
export function batchNormMoments(input: Tensor): { mean: Tensor; variance: Tensor } {
  const where = 'batch_norm_moments';
  checkInput(input, where);
  const C = input.shape[1];
  if (input.isCuda) {
    // C values: from the device's Welford summary, finished on the host.
    const s = batchNormWelfordStats(input);
    const mean = new Float64Array(C);
    const variance = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      mean[c] = s[3 * c + 1];
      variance[c] = s[3 * c] > 1 ? s[3 * c + 2] / (s[3 * c] - 1) : NaN;
    }
    const dtype = paramDtype(input.dtype);
    return { mean: tensor(mean, [C], { dtype, device: input.device }), variance: tensor(variance, [C], { dtype, device: input.device }) };
  }
  const mean = like(input, [C]);
  const variance = like(input, [C]);
  const [shape, cl] = view(input);
  native.batchNormMoments(host(input), shape, cl, mean.data, variance.data);
  return { mean, variance };
}

export interface BlendStatsOptions {
  /** Weight of the new statistics; the running ones get 1 - momentum. */
  momentum: number;
  /** A second batch whose statistics are averaged with the first. */
  other?: { mean: Tensor; variance: Tensor } | null;
  /** Factor on the (averaged) variance before blending. Default 1. */
  varScale?: number;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  /** Write into these (may be the running stats themselves) instead of new tensors. */
  out?: { mean: Tensor; variance: Tensor };
}

/**
 * Blends batch statistics with running ones, per channel:
 * mean' = m * mean + (1 - m) * runningMean, var' = m * var * varScale + (1 - m) * runningVar,
 * where mean and var are averaged with `other` when it is given. The
 * momentum-teacher layers use it; PyTorch has no single op for it.
 *
 * @example const tmp = F.blendStats(mean, variance, { momentum: 0.9, runningMean, runningVar });
 */
export function blendStats(mean: Tensor, variance: Tensor, opts: BlendStatsOptions): { mean: Tensor; variance: Tensor } {
  const where = 'blend_stats';
  if (!(mean instanceof Tensor) || (mean.dtype !== 'float32' && mean.dtype !== 'float64')) {
    throw new TypeError(`${where}: mean must be a float32 or float64 Tensor`);
  }
  if (mean.isCuda) {
    // C values: blended on the host, written back to the device tensors.
    const cpu = (t: Tensor | null | undefined) => (t ? t.cpu() : t);
    const out = opts.out;
    const r = blendStats(mean.cpu(), variance.cpu(), {
      momentum: opts.momentum, varScale: opts.varScale,
      other: opts.other ? { mean: opts.other.mean.cpu(), variance: opts.other.variance.cpu() } : opts.other,
      runningMean: cpu(opts.runningMean), runningVar: cpu(opts.runningVar),
    });
    if (out) return { mean: out.mean.copy_(r.mean), variance: out.variance.copy_(r.variance) };
    return { mean: r.mean.to(mean.device), variance: r.variance.to(mean.device) };
  }
  const C = mean.numel();
  const dt = mean.dtype;
  if (C < 1) throw new RangeError(`${where}: need at least one channel`);
  const m = checkNumber(opts.momentum, 'momentum', where);
  const scale = checkNumber(opts.varScale ?? 1, 'varScale', where);
  const out = opts.out ?? { mean: like(mean, [C]), variance: like(mean, [C]) };
  native.blendStats(C, m, mean.data as FloatStorage, channelData(variance, 'variance', C, dt, where, true)!,
    channelData(opts.other?.mean, 'other mean', C, dt, where), channelData(opts.other?.variance, 'other variance', C, dt, where),
    scale, channelData(opts.runningMean, 'running_mean', C, dt, where), channelData(opts.runningVar, 'running_var', C, dt, where),
    channelData(out.mean, 'out mean', C, dt, where, true)!, channelData(out.variance, 'out variance', C, dt, where, true)!);
  return out;
}

/**
 * Per-channel summary (count, mean, m2 = sum of squared deviations) of the
 * local batch, in float64, as triples: what SyncBatchNorm all-reduces, so
 * ranks merge their statistics exactly in one O(C) collective.
 *
 * @example const summary = F.batchNormWelfordStats(x); // Float64Array(3 * C)
 */
export function batchNormWelfordStats(input: Tensor): Float64Array {
  const where = 'batch_norm_welford_stats';
  checkInput(input, where);
  const out = new Float64Array(3 * input.shape[1]);
  if (input.isCuda) {
    const summary = emptyCuda([3 * input.shape[1]], 'float64', input.device);
    native.cuda.welfordStats(input.dtype as CudaDType, input.cudaStorage().index, batchView(input.shape),
      input.memoryFormat === 'channelsLast', input.cudaStorage().buffer, summary.cudaStorage().buffer);
    summary.cudaStorage().buffer.copyToHost(out);
    return out;
  }
  const [shape, cl] = view(input);
  native.batchNormWelfordStats(host(input), shape, cl, out);
  return out;
}

/**
 * Mean and invstd from merged (count, mean, m2) triples; running stats (when
 * given) move by `momentum` towards the mean and the unbiased variance.
 *
 * @example const { mean, invstd } = F.batchNormWelfordFinalize(summary, rm, rv, { eps: 1e-5, momentum: 0.1, dtype: 'float32' });
 */
export function batchNormWelfordFinalize(
  summary: Float64Array,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  opts: { eps: number; momentum: number; dtype: 'float32' | 'float64'; device?: Device },
): { mean: Tensor; invstd: Tensor } {
  const where = 'batch_norm_welford_finalize';
  if ((opts.device ?? 'cpu') !== 'cpu' || runningMean?.isCuda || runningVar?.isCuda) {
    // C values, merged on the host; results and running stats back on the device.
    const r = withHostRunningStats(runningMean, runningVar, (rm, rv) => batchNormWelfordFinalize(summary, rm, rv, { ...opts, device: 'cpu' }));
    const device = opts.device ?? runningMean?.device ?? 'cpu';
    return { mean: r.mean.to(device), invstd: r.invstd.to(device) };
  }
  if (storageDtype(summary) !== 'float64' || summary.length === 0 || summary.length % 3 !== 0) {
    throw new TypeError(`${where}: summary must be a Float64Array of (count, mean, m2) triples`);
  }
  const C = summary.length / 3;
  const eps = checkNumber(opts.eps, 'eps', where, 0);
  const momentum = checkNumber(opts.momentum, 'momentum', where);
  const data = (n: number) => (opts.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));
  const mean = new Tensor(data(C), [C]) as FloatTensor;
  const invstd = new Tensor(data(C), [C]) as FloatTensor;
  native.batchNormWelfordFinalize(summary, C, eps, momentum, mean.data, invstd.data,
    channelData(runningMean, 'running_mean', C, opts.dtype, where), channelData(runningVar, 'running_var', C, opts.dtype, where));
  return { mean, invstd };
}
