// F.batchNorm and the ATen-level ops below it. Every op checks its arguments
// here, then one call to the backend of the input's device
// (lib/backends/: cpu or cuda) allocates the outputs and runs the kernel.
import { backendOf, backendWhere, BackwardReduceResult, BatchNormBackwardResult, NativeBatchNormResult } from './backends/backend';
import { halfChannels, narrowed, WidenedChannels } from './half_params';
import { channelTensor, checkInput, checkNumber, describeShape, matchGrad, paramDtype } from './op_checks';
import { Device, Tensor, storageDtype } from './tensor';

export type { BackwardReduceResult, BatchNormBackwardResult, NativeBatchNormResult } from './backends/backend';

/** A checked per-channel tensor of the input's parameter dtype, on its device. */
function channel(t: Tensor | null | undefined, name: string, input: Tensor, where: string, required = false): Tensor | null {
  return channelTensor(t, name, input.shape[1], paramDtype(input.dtype), where, input, required);
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

/**
 * Batch normalization returning the statistics backward needs. In training,
 * running stats (when given) move by `momentum` towards the batch mean and
 * unbiased variance. A float16 or bfloat16 input takes float32 weight, bias
 * and running stats (its statistics come back in float32), or, as PyTorch 2
 * on the CPU, all of them in its own dtype (and its statistics too).
 * Cf. `torch.native_batch_norm`.
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
  if (halfChannels(input, { running_mean: runningMean, running_var: runningVar, weight, bias }, where)) {
    return halfBatchNorm(input, weight, bias, runningMean, runningVar, training, momentum, eps, where);
  }
  checkNumber(eps, 'eps', where, 0);
  if (training) checkNumber(momentum, 'momentum', where);
  // ATen checks the running stats first; the first mismatch names its tensor.
  const rm = channel(runningMean, 'running_mean', input, where, !training);
  const rv = channel(runningVar, 'running_var', input, where, !training);
  const w = channel(weight, 'weight', input, where);
  const b = channel(bias, 'bias', input, where);
  const backend = backendOf(input);
  if (training) return backend.forwardTraining(input, w, b, rm, rv, momentum, eps);
  return backend.forwardInference(input, w, b, rm!, rv!, eps);
}

/**
 * nativeBatchNorm with every per-channel tensor in the input's 16-bit dtype,
 * as PyTorch 2 runs it on the CPU (Normalization.cpp, batch_norm_cpu, not
 * mixed): through float32 copies; in training the batch statistics are
 * stored in that dtype, the running ones moved in float32 and stored so too,
 * and the batch is normalized with the stored statistics, as PyTorch's
 * transform of the input reads them back.
 */
function halfBatchNorm(input: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null,
  runningVar: Tensor | null, training: boolean, momentum: number, eps: number, where: string): NativeBatchNormResult {
  const w = new WidenedChannels();
  const rm = channel(w.wide(runningMean, training), 'running_mean', input, where, !training);
  const rv = channel(w.wide(runningVar, training), 'running_var', input, where, !training);
  const wt = channel(w.wide(weight), 'weight', input, where);
  const b = channel(w.wide(bias), 'bias', input, where);
  checkNumber(eps, 'eps', where, 0);
  const backend = backendOf(input);
  if (!training) return backend.forwardInference(input, wt, b, rm!, rv!, eps);
  checkNumber(momentum, 'momentum', where);
  const stats = backend.welfordFinalize(backend.welfordStats(input), rm, rv, eps, momentum, 'float32', input.device);
  w.restore();
  const saveMean = narrowed(stats.mean, input.dtype);
  const saveInvstd = narrowed(stats.invstd, input.dtype);
  return { output: backend.elemt(input, wt, b, w.wide(saveMean)!, w.wide(saveInvstd)!), saveMean, saveInvstd };
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
  const training = opts.training;
  if (typeof training !== 'boolean') throw new TypeError(`${where}: training must be a boolean`);
  const eps = checkNumber(opts.eps ?? 1e-5, 'eps', where, 0);
  const [wantInput, wantWeight, wantBias] = opts.outputMask ?? [true, true, true];
  const into = opts.accumulateInto ?? {};
  const accumulate = into.weight != null || into.bias != null;
  if (accumulate && ((wantWeight && into.weight == null) || (wantBias && into.bias == null))) {
    throw new TypeError(`${where}: accumulateInto needs both weight and bias for the grads in outputMask`);
  }
  const stats = training ? { save_mean: opts.saveMean, save_invstd: opts.saveInvstd } : { running_mean: opts.runningMean, running_var: opts.runningVar };
  if (halfChannels(input, { weight: opts.weight, ...stats, grad_weight: into.weight, grad_bias: into.bias }, where)) {
    // All in the input's 16-bit dtype: through float32 copies; grads come back in that dtype.
    const w = new WidenedChannels();
    const r = batchNormBackward(gradOutput, input, {
      ...opts, weight: w.wide(opts.weight), saveMean: w.wide(opts.saveMean), saveInvstd: w.wide(opts.saveInvstd),
      runningMean: w.wide(opts.runningMean), runningVar: w.wide(opts.runningVar),
      accumulateInto: accumulate ? { weight: w.wide(into.weight, true), bias: w.wide(into.bias, true) } : undefined,
    });
    w.restore();
    const back = (g: Tensor | null, dst: Tensor | null | undefined) => (g === null ? null : accumulate ? dst! : narrowed(g, input.dtype));
    return { gradInput: r.gradInput, gradWeight: back(r.gradWeight, into.weight), gradBias: back(r.gradBias, into.bias) };
  }
  const weight = channel(opts.weight, 'weight', input, where);
  const mean = training
    ? channel(opts.saveMean, 'save_mean', input, where, true)!
    : channel(opts.runningMean, 'running_mean', input, where, true)!;
  const invstdOrVar = training
    ? channel(opts.saveInvstd, 'save_invstd', input, where, true)!
    : channel(opts.runningVar, 'running_var', input, where, true)!;
  const intoWeight = accumulate && wantWeight ? channel(into.weight, 'grad_weight', input, where) : null;
  const intoBias = accumulate && wantBias ? channel(into.bias, 'grad_bias', input, where) : null;
  return backendOf(input).backward(dy, input, {
    weight, mean, invstdOrVar, training, eps, want: [wantInput, wantWeight, wantBias],
    into: { weight: intoWeight, bias: intoBias }, accumulate,
  });
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
  return backendOf(input).stats(input, eps);
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
    const got = invstd instanceof Tensor ? `shape ${describeShape(invstd.shape)}` : String(invstd);
    throw new RangeError(`${where}: invstd must be a Tensor of mean's shape ${describeShape(mean.shape)}, got ${got}`);
  }
  if (invstd.dtype !== mean.dtype) throw new TypeError(`${where}: expected invstd to have dtype ${mean.dtype}, got ${invstd.dtype}`);
  if (world < 1) throw new RangeError(`${where}: need statistics of at least one worker`);
  const countValues = opts.counts instanceof Tensor ? opts.counts.toArray() : opts.counts;
  if (!countValues || countValues.length !== world) {
    throw new RangeError(`${where}: counts must have ${world} entries, one per worker, got ${countValues ? countValues.length : String(countValues)}`);
  }
  const counts = Float64Array.from(countValues as ArrayLike<number>, (c, i) => {
    const v = Number(c);
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${where}: counts must be finite and >= 0, got ${String(c)} for worker ${i}`);
    return v;
  });
  const rm = channelTensor(runningMean, 'running_mean', C, mean.dtype, where, mean);
  const rv = channelTensor(runningVar, 'running_var', C, mean.dtype, where, mean);
  const momentum = checkNumber(opts.momentum, 'momentum', where);
  const eps = checkNumber(opts.eps, 'eps', where, 0);
  return backendOf(mean).gatherStatsWithCounts(mean, invstd, counts, rm, rv, momentum, eps);
}

/**
 * y = (x - mean) * invstd * weight + bias. Cf. `torch.batch_norm_elemt`.
 *
 * @example const y = F.batchNormElemt(x, weight, bias, mean, invstd);
 */
export function batchNormElemt(input: Tensor, weight: Tensor | null, bias: Tensor | null, mean: Tensor, invstd: Tensor): Tensor {
  const where = 'batch_norm_elemt';
  checkInput(input, where);
  return backendOf(input).elemt(input, channel(weight, 'weight', input, where), channel(bias, 'bias', input, where),
    channel(mean, 'mean', input, where, true)!, channel(invstd, 'invstd', input, where, true)!);
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
  const inputG = mask.inputG ?? true;
  const weightG = (mask.weightG ?? true) && weight !== null;
  const biasG = (mask.biasG ?? true) && weight !== null;
  channel(weight, 'weight', input, where);
  return backendOf(input).backwardReduce(dy, input, channel(mean, 'mean', input, where, true)!,
    channel(invstd, 'invstd', input, where, true)!, { inputG, weightG, biasG });
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
  let total: number;
  if (typeof count === 'number') total = count;
  else {
    const values = count instanceof Tensor ? count.toArray() : count;
    total = 0;
    for (let i = 0; i < values.length; i++) total += Number(values[i]);
  }
  checkNumber(total, 'count', where, 0);
  return backendOf(input).backwardElemt(dy, input, channel(mean, 'mean', input, where, true)!,
    channel(invstd, 'invstd', input, where, true)!, channel(weight, 'weight', input, where),
    channel(sumDy, 'sum_dy', input, where, true)!, channel(sumDyXmu, 'sum_dy_xmu', input, where, true)!, total);
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
  return backendOf(input).moments(input);
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
  if (C < 1) throw new RangeError(`${where}: need at least one channel`);
  const momentum = checkNumber(opts.momentum, 'momentum', where);
  const varScale = checkNumber(opts.varScale ?? 1, 'varScale', where);
  const check = (t: Tensor | null | undefined, name: string, required = false) =>
    channelTensor(t, name, C, mean.dtype, where, mean, required);
  check(variance, 'variance', true);
  const other = opts.other ? { mean: check(opts.other.mean, 'other mean')!, variance: check(opts.other.variance, 'other variance')! } : null;
  const runningMean = check(opts.runningMean, 'running_mean');
  const runningVar = check(opts.runningVar, 'running_var');
  const out = opts.out ? { mean: check(opts.out.mean, 'out mean', true)!, variance: check(opts.out.variance, 'out variance', true)! } : null;
  return backendOf(mean).blendStats(mean, variance, { momentum, varScale, other, runningMean, runningVar, out });
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
  return backendOf(input).welfordStats(input);
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
  if (storageDtype(summary) !== 'float64' || summary.length === 0 || summary.length % 3 !== 0) {
    const got = storageDtype(summary) === 'float64' ? `${summary.length} values` : String(storageDtype(summary) ?? typeof summary);
    throw new TypeError(`${where}: summary must be a Float64Array of (count, mean, m2) triples (a non-zero multiple of 3 values), got ${got}`);
  }
  const C = summary.length / 3;
  const eps = checkNumber(opts.eps, 'eps', where, 0);
  const momentum = checkNumber(opts.momentum, 'momentum', where);
  const rm = runningMean ? channelTensor(runningMean, 'running_mean', C, opts.dtype, where, runningMean) : null;
  const rv = runningVar ? channelTensor(runningVar, 'running_var', C, opts.dtype, where, runningVar) : null;
  // The results go to opts.device, else the running stats'; the statistics
  // are computed where any of them is (C values: the host does it for CUDA).
  const device = opts.device ?? runningMean?.device ?? 'cpu';
  return backendWhere(device, rm?.device, rv?.device).welfordFinalize(summary, rm, rv, eps, momentum, opts.dtype, device);
}
