// F.batchNorm and the ATen-level ops below it. Every op validates in
// TypeScript, allocates its outputs, and makes one call into the addon.
import { native, NativeShape } from './native';
import { outputArray } from './storage';
import { Tensor, FloatStorage, batchView, storageDtype } from './tensor';

type FloatTensor = Tensor & { data: FloatStorage };

function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Throws unless `input` is a float tensor of rank >= 2 with at least one channel. */
function checkInput(input: unknown, where: string, name = 'input'): asserts input is FloatTensor {
  if (!(input instanceof Tensor)) throw new TypeError(`${where}: ${name} must be a Tensor`);
  if (input.disposed) throw new TypeError(`${where}: ${name} was disposed`);
  if (input.dtype !== 'float32' && input.dtype !== 'float64') {
    throw new TypeError(`${where}: ${name} must have dtype float32 or float64, got ${input.dtype}`);
  }
  if (input.ndim < 2) {
    throw new RangeError(`${where}: ${name} must have at least 2 dimensions (N, C, ...), got shape ${describeShape(input.shape)}`);
  }
  if (input.shape[1] < 1) {
    throw new RangeError(`${where}: ${name} must have at least one channel, got shape ${describeShape(input.shape)}`);
  }
}

/** A per-channel tensor: `channels` elements of the input's dtype, or null/undefined when optional. */
function channelData(
  t: Tensor | null | undefined,
  name: string,
  channels: number,
  dtype: string,
  where: string,
  required = false,
): FloatStorage | null {
  if (t === null || t === undefined) {
    if (required) throw new TypeError(`${where}: ${name} is required`);
    return null;
  }
  if (!(t instanceof Tensor)) throw new TypeError(`${where}: ${name} must be a Tensor or null`);
  if (t.disposed) throw new TypeError(`${where}: ${name} was disposed`);
  if (t.numel() !== channels) {
    // PyTorch's wording (check_dims_match_num_input_features).
    throw new RangeError(`${name} should contain ${channels} elements not ${t.numel()}`);
  }
  if (t.dtype !== dtype) {
    throw new TypeError(`${where}: expected ${name} to have the input's dtype ${dtype}, got ${t.dtype}`);
  }
  return t.data as FloatStorage;
}

function checkNumber(v: unknown, name: string, where: string, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw new RangeError(`${where}: ${name} must be a finite number${min > -Infinity ? ` >= ${min}` : ''}, got ${String(v)}`);
  }
  return v;
}

/** An output tensor of `input`'s dtype, from the recycled storage; every op writes all of it. */
function like(input: Tensor, shape: readonly number[] = input.shape): FloatTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = outputArray(input.dtype === 'float64' ? 'float64' : 'float32', n);
  return new Tensor(data, shape, shape === input.shape ? input.memoryFormat : 'contiguous') as FloatTensor;
}

function view(input: Tensor): [NativeShape, boolean] {
  return [batchView(input.shape), input.memoryFormat === 'channelsLast'];
}

/** gradOutput checked against the input and laid out like it. */
function matchGrad(gradOutput: unknown, input: Tensor, where: string): FloatTensor {
  checkInput(gradOutput, where, 'gradOutput');
  if (gradOutput.ndim !== input.ndim || gradOutput.shape.some((d, i) => d !== input.shape[i])) {
    throw new RangeError(`${where}: gradOutput shape ${describeShape(gradOutput.shape)} does not match input shape ${describeShape(input.shape)}`);
  }
  if (gradOutput.dtype !== input.dtype) {
    throw new TypeError(`${where}: expected gradOutput to have the input's dtype ${input.dtype}, got ${gradOutput.dtype}`);
  }
  return gradOutput.contiguous(input.memoryFormat) as FloatTensor;
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
  const C = input.shape[1];
  // ATen checks the running stats first; the first mismatch names its tensor.
  const rm = channelData(runningMean, 'running_mean', C, input.dtype, where, !training);
  const rv = channelData(runningVar, 'running_var', C, input.dtype, where, !training);
  const w = channelData(weight, 'weight', C, input.dtype, where);
  const b = channelData(bias, 'bias', C, input.dtype, where);
  checkNumber(eps, 'eps', where, 0);
  const [shape, cl] = view(input);
  const output = like(input);
  if (training) {
    checkNumber(momentum, 'momentum', where);
    const saveMean = like(input, [C]);
    const saveInvstd = like(input, [C]);
    native.batchNormForwardTraining(input.data, shape, cl, w, b, eps, momentum, rm, rv, output.data, saveMean.data, saveInvstd.data);
    return { output, saveMean, saveInvstd };
  }
  native.batchNormForwardInference(input.data, shape, cl, rm!, rv!, w, b, eps, output.data);
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
  const w = channelData(opts.weight, 'weight', C, dtype, where);
  const mean = training
    ? channelData(opts.saveMean, 'save_mean', C, dtype, where, true)!
    : channelData(opts.runningMean, 'running_mean', C, dtype, where, true)!;
  const second = training
    ? channelData(opts.saveInvstd, 'save_invstd', C, dtype, where, true)!
    : channelData(opts.runningVar, 'running_var', C, dtype, where, true)!;
  const [wantInput, wantWeight, wantBias] = opts.outputMask ?? [true, true, true];
  const into = opts.accumulateInto ?? {};
  const accumulate = into.weight != null || into.bias != null;
  if (accumulate && ((wantWeight && into.weight == null) || (wantBias && into.bias == null))) {
    throw new TypeError(`${where}: accumulateInto needs both weight and bias for the grads in outputMask`);
  }
  const gradInput = wantInput ? like(input) : null;
  const gradWeight = wantWeight ? (accumulate ? into.weight! : like(input, [C])) : null;
  const gradBias = wantBias ? (accumulate ? into.bias! : like(input, [C])) : null;
  const gw = gradWeight ? channelData(gradWeight, 'grad_weight', C, dtype, where) : null;
  const gb = gradBias ? channelData(gradBias, 'grad_bias', C, dtype, where) : null;
  const [shape, cl] = view(input);
  native.batchNormBackward(dy.data, input.data, shape, cl, w, mean, second, training, eps,
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
  const C = input.shape[1];
  const mean = like(input, [C]);
  const invstd = like(input, [C]);
  const [shape, cl] = view(input);
  native.batchNormStats(input.data, shape, cl, eps, mean.data, invstd.data);
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
  native.batchNormGatherStatsWithCounts(mean.data, invstd.data as FloatStorage, counts, world, C,
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
  const C = input.shape[1];
  const dt = input.dtype;
  const out = like(input);
  const [shape, cl] = view(input);
  native.batchNormElemt(input.data, shape, cl, channelData(mean, 'mean', C, dt, where, true)!,
    channelData(invstd, 'invstd', C, dt, where, true)!, channelData(weight, 'weight', C, dt, where),
    channelData(bias, 'bias', C, dt, where), out.data);
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
  channelData(weight, 'weight', C, dt, where);
  const inputG = mask.inputG ?? true;
  const weightG = (mask.weightG ?? true) && weight !== null;
  const biasG = (mask.biasG ?? true) && weight !== null;
  const sumDy = inputG ? like(input, [C]) : null;
  const sumDyXmu = inputG ? like(input, [C]) : null;
  const gradWeight = weightG ? like(input, [C]) : null;
  const gradBias = biasG ? like(input, [C]) : null;
  const [shape, cl] = view(input);
  native.batchNormBackwardReduce(dy.data, input.data, shape, cl,
    channelData(mean, 'mean', C, dt, where, true)!, channelData(invstd, 'invstd', C, dt, where, true)!,
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
  const out = like(input);
  const [shape, cl] = view(input);
  native.batchNormBackwardElemt(dy.data, input.data, shape, cl,
    channelData(mean, 'mean', C, dt, where, true)!, channelData(invstd, 'invstd', C, dt, where, true)!,
    channelData(weight, 'weight', C, dt, where), channelData(sumDy, 'sum_dy', C, dt, where, true)!,
    channelData(sumDyXmu, 'sum_dy_xmu', C, dt, where, true)!, total, out.data);
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
  const mean = like(input, [C]);
  const variance = like(input, [C]);
  const [shape, cl] = view(input);
  native.batchNormMoments(input.data, shape, cl, mean.data, variance.data);
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
  const [shape, cl] = view(input);
  native.batchNormWelfordStats(input.data, shape, cl, out);
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
  opts: { eps: number; momentum: number; dtype: 'float32' | 'float64' },
): { mean: Tensor; invstd: Tensor } {
  const where = 'batch_norm_welford_finalize';
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
