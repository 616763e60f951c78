// The BatchNorm family: policy (modes, momentum, running stats, the counter)
// lives here; the math is one functional call. Cf. torch/nn/modules/batchnorm.py.
import { ones, zeros } from '../factories';
import * as F from '../functional';
import { Parameter } from '../parameter';
import { Device, FloatingDType, Tensor, checkDevice } from '../tensor';
import { Module, StateDictLoad } from './module';
import type { DType } from '../tensor';

export interface BatchNormOptions {
  /** Added to the variance for stability. Default 1e-5. */
  eps?: number;
  /** Running-stat factor; null = cumulative average. Default 0.1. */
  momentum?: number | null;
  /** Learnable per-channel weight and bias. Default true. */
  affine?: boolean;
  /** Keep running mean/var (used in eval). Default true. */
  trackRunningStats?: boolean;
  /**
   * dtype of parameters and buffers, which inputs must share; a float32
   * layer also takes float16 and bfloat16 inputs (mixed precision, as in
   * PyTorch). Default float32.
   */
  dtype?: FloatingDType;
  /** Where parameters and running statistics live: 'cpu' (default), 'cuda' or 'cuda:N'; CUDA must be available. */
  device?: Device | 'cuda';
}

/** What forward keeps for backward. */
export interface SavedForward {
  input: Tensor;
  training: boolean;
  saveMean: Tensor;
  saveInvstd: Tensor;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
}

/** Python's repr() of a float, so `toString()` matches PyTorch's (1e-05, 0.1, 1.0). */
export function pyFloat(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  const [mantissa, expText] = v.toExponential().split('e');
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const sign = exp < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

function pyBool(b: boolean): string {
  return b ? 'True' : 'False';
}

function checkOptions(numFeatures: number, opts: BatchNormOptions, where: string, lazy: boolean): Required<Omit<BatchNormOptions, 'device'>> {
  if (typeof numFeatures !== 'number' || !Number.isSafeInteger(numFeatures) || numFeatures < (lazy ? 0 : 1)) {
    throw new RangeError(`${where}: numFeatures must be a positive integer, got ${String(numFeatures)}`);
  }
  const o = {
    eps: opts.eps ?? 1e-5,
    momentum: opts.momentum === undefined ? 0.1 : opts.momentum,
    affine: opts.affine ?? true,
    trackRunningStats: opts.trackRunningStats ?? true,
    dtype: opts.dtype ?? 'float32',
  };
  if (typeof o.eps !== 'number' || !Number.isFinite(o.eps) || o.eps < 0) throw new RangeError(`${where}: eps must be a finite number >= 0, got ${String(o.eps)}`);
  if (o.momentum !== null && (typeof o.momentum !== 'number' || !Number.isFinite(o.momentum))) {
    throw new RangeError(`${where}: momentum must be a finite number or null, got ${String(o.momentum)}`);
  }
  if (typeof o.affine !== 'boolean') throw new TypeError(`${where}: affine must be a boolean`);
  if (typeof o.trackRunningStats !== 'boolean') throw new TypeError(`${where}: trackRunningStats must be a boolean`);
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(o.dtype)) {
    throw new TypeError(`${where}: dtype must be 'float32', 'float64', 'float16' or 'bfloat16', got ${String(o.dtype)}`);
  }
  return o;
}

/** The 1d, 2d or 3d of a layer class: which input ranks it takes. */
export type SpatialDims = 1 | 2 | 3;

// The input ranks of 1d, 2d and 3d layers, and PyTorch's words for them.
const INPUT_RANKS: Record<SpatialDims, { ranks: readonly number[]; words: string }> = {
  1: { ranks: [2, 3], words: '2D or 3D' },
  2: { ranks: [4], words: '4D' },
  3: { ranks: [5], words: '5D' },
};

/**
 * Shared implementation of BatchNorm1d/2d/3d (PyTorch's `_BatchNorm`).
 * The twelve 1d/2d/3d classes of the families (plain, lazy, synchronized,
 * momentum) differ only in static data: `spatialDims`, and for the lazy
 * forms `becomes`; test/layer_classes.test.ts checks all twelve.
 */
export abstract class BatchNorm extends Module {
  /** 2 since PyTorch 0.4.1 added num_batches_tracked. */
  static override readonly stateDictVersion: number = 2;
  /** Input ranks: 1 takes (N, C) or (N, C, L), 2 (N, C, H, W), 3 (N, C, D, H, W); null any rank >= 2. */
  static readonly spatialDims: SpatialDims | null = null;
  /**
   * A lazy class names the class its layers become once numFeatures is
   * known (PyTorch's `cls_to_become`): from then on the layer is an instance
   * of that class and no longer of the lazy one, as in PyTorch, whose
   * `__class__` changes. Null for the others.
   */
  static readonly becomes: (abstract new (...args: never[]) => BatchNorm) | null = null;
  numFeatures: number;
  eps: number;
  momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  /** dtype of parameters and running statistics (changed by `to(dtype)`, `double()`, `float()`). */
  dtype: FloatingDType;
  /** Learnable per-channel scale (null without `affine`). Assigning a Parameter replaces it. */
  declare weight: Parameter | null;
  /** Learnable per-channel shift (null without `affine`). */
  declare bias: Parameter | null;
  /** Running mean buffer (null without `trackRunningStats`); PyTorch's name, also `runningMean`. */
  declare running_mean: Tensor | null;
  /** Running variance buffer; also `runningVar`. */
  declare running_var: Tensor | null;
  /** int64 scalar counter of training forwards; also `numBatchesTracked`. */
  declare num_batches_tracked: Tensor | null;
  /** Set by forward, consumed by backward. */
  protected saved: SavedForward | null = null;
  private uninitialized: boolean;
  private device: Device;
  // numFeatures a lazy layer takes from the state dict being loaded.
  private loadingFeatures: number | null = null;

  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super();
    const lazy = (new.target as typeof BatchNorm).becomes !== null;
    const o = checkOptions(numFeatures, opts, new.target.name, lazy);
    this.numFeatures = numFeatures;
    this.eps = o.eps;
    this.momentum = o.momentum;
    this.affine = o.affine;
    this.trackRunningStats = o.trackRunningStats;
    this.dtype = o.dtype;
    this.device = checkDevice(opts.device, new.target.name);
    this.uninitialized = lazy;
    this.allocate(numFeatures);
  }

  /** True for a lazy module until numFeatures is known; its tensors are empty until then. */
  hasUninitializedParams(): boolean {
    return this.uninitialized;
  }

  private materialize(c: number): void {
    this.numFeatures = c;
    this.allocate(c);
    this.uninitialized = false;
    const becomes = (this.constructor as typeof BatchNorm).becomes;
    if (becomes !== null) Object.setPrototypeOf(this, becomes.prototype);
  }

  /** (Re)creates parameters and buffers for `c` channels with their initial values. */
  protected allocate(c: number): void {
    const dtype = this.dtype;
    const device = this.device;
    if (this.affine) {
      this.registerParameter('weight', new Parameter(ones([c], { dtype, device })));
      this.registerParameter('bias', new Parameter(zeros([c], { dtype, device })));
    } else {
      this.registerParameter('weight', null);
      this.registerParameter('bias', null);
    }
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', zeros([c], { dtype, device }));
      this.registerBuffer('running_var', ones([c], { dtype, device }));
      // The counter stays on the host, where the layer reads it (as Module.to keeps it).
      this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int64' }));
    } else {
      this.registerBuffer('running_mean', null);
      this.registerBuffer('running_var', null);
      this.registerBuffer('num_batches_tracked', null);
    }
  }

  /** The `running_mean` buffer. */
  get runningMean(): Tensor | null {
    return this.running_mean;
  }

  set runningMean(t: Tensor | null) {
    this.running_mean = t;
  }

  /** The `running_var` buffer. */
  get runningVar(): Tensor | null {
    return this.running_var;
  }

  set runningVar(t: Tensor | null) {
    this.running_var = t;
  }

  /** Counter of training forwards (int64 scalar tensor), null without tracking: the `num_batches_tracked` buffer. */
  get numBatchesTracked(): Tensor | null {
    return this.num_batches_tracked;
  }

  set numBatchesTracked(t: Tensor | null) {
    this.num_batches_tracked = t;
  }

  protected override dtypeChanged(dtype: FloatingDType): void {
    this.dtype = dtype;
  }

  protected override deviceChanged(device: Device): void {
    this.device = device;
  }

  /** Running mean 0, running var 1, counter 0. Cf. `reset_running_stats`. */
  resetRunningStats(): void {
    this.runningMean?.zero_();
    this.runningVar?.fill_(1);
    this.numBatchesTracked?.zero_();
  }

  /** Running stats reset, weight 1, bias 0. Cf. `reset_parameters`. */
  resetParameters(): void {
    this.resetRunningStats();
    this.weight?.fill_(1);
    this.bias?.fill_(0);
  }

  /** Throws PyTorch's "expected 4D input (got 3D input)" for a wrong rank. */
  protected checkInputDim(input: Tensor): void {
    const dims = (this.constructor as typeof BatchNorm).spatialDims;
    if (dims === null) {
      if (input.ndim < 2) throw new RangeError(`expected at least 2D input (got ${input.ndim}D input)`);
      return;
    }
    const { ranks, words } = INPUT_RANKS[dims];
    if (!ranks.includes(input.ndim)) throw new RangeError(`expected ${words} input (got ${input.ndim}D input)`);
  }

  /** Checks a forward input before any state changes. */
  protected checkInput(input: unknown): asserts input is Tensor {
    if (!(input instanceof Tensor)) throw new TypeError(`${this.typeName()}.forward: input must be a Tensor`);
    this.checkInputDim(input);
    // Half inputs also run with float32 parameters and statistics (mixed precision), as in PyTorch.
    const mixed = (input.dtype === 'float16' || input.dtype === 'bfloat16') && this.dtype === 'float32';
    if (input.dtype !== this.dtype && !mixed) {
      throw new TypeError(`${this.typeName()}.forward: expected input of dtype ${this.dtype} (the layer's dtype` +
        `${this.dtype === 'float32' ? ', or float16 or bfloat16' : ''}), got ${input.dtype}`);
    }
  }

  /**
   * PyTorch's exponential_average_factor for this forward: `momentum`, or
   * 1 / (batches seen, this one included) for a cumulative average; and
   * whether this forward counts (training with tracked statistics).
   */
  protected runningFactor(): { tracking: boolean; factor: number } {
    const counter = this.numBatchesTracked;
    const tracking = this.training && this.trackRunningStats && counter !== null;
    const batches = tracking ? Number(counter.data[0]) + 1 : 0;
    return { tracking, factor: tracking && this.momentum === null ? 1 / batches : (this.momentum ?? 0) };
  }

  /** Adds this forward to num_batches_tracked. */
  protected countBatch(): void {
    (this.numBatchesTracked!.data as BigInt64Array)[0] += 1n;
  }

  /**
   * Normalizes `input` ([N, C, ...]) per channel. In training, with batch
   * statistics (and moves the running stats); in eval, with running stats
   * when tracked.
   */
  forward(input: Tensor): Tensor {
    this.checkInput(input);
    if (this.uninitialized) this.materialize(input.shape[1]);
    const { tracking, factor } = this.runningFactor();
    const useBatchStats = this.training || (this.runningMean === null && this.runningVar === null);
    const useRunning = !this.training || this.trackRunningStats;
    if (useBatchStats) F.verifyBatchSize(input.shape);
    const runningMean = useRunning ? this.runningMean : null;
    const runningVar = useRunning ? this.runningVar : null;
    const r = F.nativeBatchNorm(input, this.weight, this.bias, runningMean, runningVar, useBatchStats, factor, this.eps);
    // The counter moves only after the op succeeded, so a bad input changes nothing.
    if (tracking) this.countBatch();
    this.saved = {
      input,
      training: useBatchStats,
      saveMean: r.saveMean,
      saveInvstd: r.saveInvstd,
      // Eval-mode backward uses the statistics this forward used.
      runningMean: useBatchStats ? null : runningMean!.clone(),
      runningVar: useBatchStats ? null : runningVar!.clone(),
    };
    return r.output;
  }

  /**
   * Gradient with respect to the last forward's input; adds this batch's
   * gradients into `weight.grad` and `bias.grad`. Each forward allows one backward.
   */
  override backward(gradOutput: Tensor): Tensor {
    const s = this.saved;
    if (s === null) {
      throw new Error(`${this.typeName()}.backward() called before forward(): there is no saved forward to differentiate`);
    }
    const weight = this.weight;
    const bias = this.bias;
    const wantParams = weight !== null && bias !== null && (weight.requiresGrad || bias.requiresGrad);
    const gradWeight = wantParams ? weight.grad ?? zeros(weight.shape, { dtype: weight.dtype, device: weight.device }) : null;
    const gradBias = wantParams ? bias.grad ?? zeros(bias.shape, { dtype: bias.dtype, device: bias.device }) : null;
    const r = F.batchNormBackward(gradOutput, s.input, {
      weight,
      training: s.training,
      saveMean: s.saveMean,
      saveInvstd: s.saveInvstd,
      runningMean: s.runningMean,
      runningVar: s.runningVar,
      eps: this.eps,
      outputMask: [true, wantParams, wantParams],
      accumulateInto: wantParams ? { weight: gradWeight, bias: gradBias } : undefined,
    });
    if (wantParams) {
      if (weight.requiresGrad) weight.grad = gradWeight;
      if (bias.requiresGrad) bias.grad = gradBias;
    }
    this.saved = null;
    return r.gradInput!;
  }

  /** A lazy layer expects the shapes it will have with the state dict's channel count; it materializes only if the whole load checks out. */
  protected override stateSlots(stateDict: Record<string, Tensor>, prefix: string): Array<{ name: string; shape: readonly number[]; dtype: DType }> {
    this.loadingFeatures = null;
    if (!this.uninitialized) return super.stateSlots(stateDict, prefix);
    const source = [stateDict[`${prefix}weight`], stateDict[`${prefix}running_mean`]].find((t) => t instanceof Tensor && t.ndim === 1);
    if (!source) return super.stateSlots(stateDict, prefix);
    const c = source.shape[0];
    this.loadingFeatures = c;
    const slots: Array<{ name: string; shape: readonly number[]; dtype: DType }> = [];
    if (this.affine) slots.push({ name: 'weight', shape: [c], dtype: this.dtype }, { name: 'bias', shape: [c], dtype: this.dtype });
    if (this.trackRunningStats) {
      slots.push({ name: 'running_mean', shape: [c], dtype: this.dtype }, { name: 'running_var', shape: [c], dtype: this.dtype });
      slots.push({ name: 'num_batches_tracked', shape: [], dtype: 'int64' });
    }
    return slots;
  }

  protected override beforeLoadCopies(): void {
    if (this.uninitialized && this.loadingFeatures !== null) this.materialize(this.loadingFeatures);
  }

  protected override loadFromStateDict(stateDict: Record<string, Tensor>, prefix: string, load: StateDictLoad, localMetadata: Record<string, unknown> = {}): void {
    const key = `${prefix}num_batches_tracked`;
    const version = localMetadata.version;
    const old = typeof version !== 'number' || version < 2;
    if (old && this.numBatchesTracked !== null && !Object.prototype.hasOwnProperty.call(stateDict, key)) {
      // PyTorch 2's rule (torch/nn/modules/batchnorm.py, _NormBase._load_from_state_dict): a dict older than
      // version 2, or without versions, predates the counter, and the layer keeps its own (1.13 reset it to 0).
      super.loadFromStateDict({ ...stateDict, [key]: this.numBatchesTracked.clone() }, prefix, load, localMetadata);
      return;
    }
    super.loadFromStateDict(stateDict, prefix, load, localMetadata);
  }

  override extraRepr(): string {
    const m = this.momentum === null ? 'None' : pyFloat(this.momentum);
    return `${this.numFeatures}, eps=${pyFloat(this.eps)}, momentum=${m}, affine=${pyBool(this.affine)}, track_running_stats=${pyBool(this.trackRunningStats)}`;
  }
}

/**
 * Batch normalization over (N, C) or (N, C, L) input. Cf. `torch.nn.BatchNorm1d`.
 *
 * @example
 * const bn = new nn.BatchNorm1d(16);
 * const y = bn.forward(randn([32, 16]));
 */
export class BatchNorm1d extends BatchNorm {
  static override readonly spatialDims = 1;
}

/**
 * Batch normalization over (N, C, H, W) input. Cf. `torch.nn.BatchNorm2d`.
 *
 * @example
 * const bn = new nn.BatchNorm2d(64, { momentum: 0.1, eps: 1e-5 });
 * const y = bn.forward(randn([8, 64, 14, 14]));
 * const dx = bn.backward(randn([8, 64, 14, 14]));
 */
export class BatchNorm2d extends BatchNorm {
  static override readonly spatialDims = 2;
}

/**
 * Batch normalization over (N, C, D, H, W) input. Cf. `torch.nn.BatchNorm3d`.
 *
 * @example
 * const bn = new nn.BatchNorm3d(8);
 * const y = bn.forward(randn([2, 8, 4, 4, 4]));
 */
export class BatchNorm3d extends BatchNorm {
  static override readonly spatialDims = 3;
}

/**
 * BatchNorm1d that takes numFeatures from its first input (or a loaded
 * state dict), then becomes a BatchNorm1d (no longer an instance of this
 * class, as PyTorch's `cls_to_become`). Cf. `torch.nn.LazyBatchNorm1d`.
 *
 * @example
 * const bn = new nn.LazyBatchNorm1d();
 * bn.forward(randn([4, 3]));
 * bn.numFeatures; // 3
 */
export class LazyBatchNorm1d extends BatchNorm1d {
  static override readonly becomes = BatchNorm1d;
  constructor(opts: BatchNormOptions = {}) {
    super(0, opts);
  }
}

/**
 * BatchNorm2d that takes numFeatures from its first input (or a loaded
 * state dict), then becomes a BatchNorm2d (no longer an instance of this
 * class, as PyTorch's `cls_to_become`). Cf. `torch.nn.LazyBatchNorm2d`.
 *
 * @example
 * const bn = new nn.LazyBatchNorm2d();
 * bn.forward(randn([2, 5, 3, 3]));
 * bn.numFeatures; // 5
 */
export class LazyBatchNorm2d extends BatchNorm2d {
  static override readonly becomes = BatchNorm2d;
  constructor(opts: BatchNormOptions = {}) {
    super(0, opts);
  }
}

/**
 * BatchNorm3d that takes numFeatures from its first input (or a loaded
 * state dict), then becomes a BatchNorm3d (no longer an instance of this
 * class, as PyTorch's `cls_to_become`). Cf. `torch.nn.LazyBatchNorm3d`.
 *
 * @example
 * const bn = new nn.LazyBatchNorm3d();
 * bn.forward(randn([2, 5, 2, 2, 2]));
 * bn.numFeatures; // 5
 */
export class LazyBatchNorm3d extends BatchNorm3d {
  static override readonly becomes = BatchNorm3d;
  constructor(opts: BatchNormOptions = {}) {
    super(0, opts);
  }
}
