// SyncBatchNorm: one BatchNorm layer whose statistics cover every rank's
// batch. Cf. torch/nn/modules/batchnorm.py (SyncBatchNorm) and
// torch/nn/modules/_functions.py (SyncBatchNorm.forward/backward).
//
// Forward syncs once, O(C): each rank's (count, mean, m2) per channel,
// merged exactly by a Welford all-reduce (PyTorch all-gathers world x C
// statistics). Backward syncs once: the all-reduce of (sum_dy, sum_dy_xmu).
// Grad weight and bias stay local, as in PyTorch. CUDA tensors on NCCL keep
// all of it on the device (sync_batchnorm_cuda.ts); the threads and Gloo
// backends reduce host memory, so their syncs go through the host.
import { defaultGroup } from '../distributed/init';
import { Fingerprint, ProcessGroup } from '../distributed/process_group';
import { registeredSites, registerSyncSite, SyncSite } from '../distributed/sync_sites';
import * as F from '../functional';
import { tensor, zeros } from '../factories';
import { Parameter } from '../parameter';
import { narrowed, WidenedChannels } from '../half_params';
import { paramDtype } from '../op_checks';
import { Tensor } from '../tensor';
import { BatchNorm, BatchNormOptions } from './batchnorm';
import { Module } from './module';
import { accumulateOnDevice, syncGradSumsOnDevice, syncStatsOnDevice, syncsOnDevice } from './sync_batchnorm_cuda';

export interface SyncBatchNormOptions extends BatchNormOptions {
  /** The ranks to sync across; default: the default (world) group at forward time. */
  processGroup?: ProcessGroup | null;
  /**
   * Check at every sync that all ranks are at the same layer, channel count
   * and call (see README for its measured cost). Default true.
   */
  checkDivergence?: boolean;
}

interface SyncSaved {
  input: Tensor;
  mean: Tensor;
  invstd: Tensor;
  count: number;
  group: ProcessGroup;
}

/** @internal How many sync sites the divergence registry holds (for its test). */
export function registeredLayers(): number {
  return registeredSites();
}

/** p.grad += g, as autograd accumulates; g is float32 for a float16 or bfloat16 parameter, whose grad keeps its dtype. */
function accumulate(p: Parameter, g: Tensor, where: string): void {
  if (p.grad === null) {
    p.grad = narrowed(g, p.dtype);
    return;
  }
  if (p.grad.isCuda && p.grad.dtype === g.dtype) {
    accumulateOnDevice(p.grad, g, where);
    return;
  }
  // C values per parameter.
  const sum = p.grad.toArray();
  const add = g.toArray();
  for (let i = 0; i < sum.length; i++) sum[i] += add[i];
  p.grad.copy_(tensor(sum, p.grad.shape, { dtype: p.grad.dtype }));
}

/**
 * The running statistics after a step in which every rank's batch was
 * empty, as PyTorch 2 leaves them: its SyncBatchNorm drops the ranks of count
 * 0 (torch/nn/modules/_functions.py, SyncBatchNorm.forward), and merging no
 * rank at all gives mean 0 and unbiased variance 0 / -1 = -0
 * (aten/src/ATen/native/cuda/Normalization.cuh,
 * batch_norm_reduce_statistics_kernel), towards which both statistics move by
 * `factor` as after any batch.
 */
function emptyWorldStep(rm: Tensor, rv: Tensor, factor: number): void {
  const zero = zeros(rm.shape, { dtype: rm.dtype, device: rm.device });
  F.blendStats(zero, zero, { momentum: factor, runningMean: rm, runningVar: rv, out: { mean: rm, variance: rv } });
}

const PLAIN: ReadonlySet<string> = new Set(['BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d']);

/**
 * Batch normalization with statistics over every rank of a process group.
 * Input of any rank >= 2. Training with more than one rank syncs; eval, a
 * single rank or no process group use the plain kernels, as PyTorch does.
 * Cf. `torch.nn.SyncBatchNorm`.
 *
 * @example
 * await dist.initProcessGroup({ backend: 'gloo' });
 * const bn = new nn.SyncBatchNorm(64);
 * const y = bn.forward(x);       // mean/var of every rank's x together
 * const dx = bn.backward(dy);
 */
export class SyncBatchNorm extends BatchNorm implements SyncSite {
  processGroup: ProcessGroup | null;
  checkDivergence: boolean;
  /** Identity of this layer in sync fingerprints. */
  readonly layerId: number;
  private syncSaved: SyncSaved | null = null;
  #layerName: string;

  constructor(numFeatures: number, opts: SyncBatchNormOptions = {}) {
    super(numFeatures, opts);
    const group = opts.processGroup ?? null;
    if (group !== null && !(group instanceof ProcessGroup)) throw new TypeError(`${this.typeName()}: processGroup must be a ProcessGroup`);
    this.processGroup = group;
    this.checkDivergence = opts.checkDivergence ?? true;
    if (typeof this.checkDivergence !== 'boolean') throw new TypeError(`${this.typeName()}: checkDivergence must be a boolean`);
    this.layerId = registerSyncSite(this);
    this.#layerName = `${this.typeName()}#${this.layerId}`;
  }

  /** @internal How divergence errors name one of this layer's syncs. */
  describeSync(pass: number, channels: number, seq: number): string {
    return `'${this.layerName}' ${pass === 0 ? 'forward' : 'backward'} (${channels} channels, sync #${seq})`;
  }

  /** How divergence errors name this layer; convertSyncBatchnorm uses the module path. */
  get layerName(): string {
    return this.#layerName;
  }

  set layerName(name: string) {
    this.#layerName = String(name);
  }

  override forward(input: Tensor): Tensor {
    this.checkInput(input);
    if (input.shape[1] === 0) throw new RangeError('SyncBatchNorm number of input channels should be non-zero');
    const group = this.processGroup ?? defaultGroup();
    const useBatchStats = this.training || (this.runningMean === null && this.runningVar === null);
    if (group !== null && this.processGroup !== null && !group.isMember()) {
      throw new Error(`${this.typeName()}.forward: rank ${group.globalRank} is not a member of the layer's process group (ranks [${group.ranks.join(', ')}])`);
    }
    this.syncSaved = null;
    if (!(useBatchStats && this.training && group !== null && group.size > 1)) return super.forward(input);

    const where = `${this.typeName()} '${this.layerName}' forward`;
    const { tracking, factor } = this.runningFactor();
    // A float16 or bfloat16 layer (after to('bfloat16')) syncs through float32 copies of its parameters and
    // running statistics, the kernels' per-channel dtype for half inputs.
    const wide = new WidenedChannels();
    const rm = wide.wide(tracking ? this.runningMean : null, true);
    const rv = wide.wide(tracking ? this.runningVar : null, true);
    const stats = syncsOnDevice(input, group) ? this.statsOnDevice(input, group, where, rm, rv, factor)
      : this.statsOnHost(input, group, where, rm, rv, factor);
    const output = F.batchNormElemt(input, wide.wide(this.weight), wide.wide(this.bias), stats.mean, stats.invstd);
    if (stats.count === 0 && rm !== null && rv !== null) emptyWorldStep(rm, rv, factor);
    wide.restore();
    if (tracking) this.countBatch();
    this.saved = null;
    this.syncSaved = { input, mean: stats.mean, invstd: stats.invstd, count: stats.count, group };
    return output;
  }

  /**
   * The group's statistics of `input` through the host: each rank's Welford
   * summary, all-reduced (merged exactly), finished into mean and invstd; the
   * running stats move by `factor`.
   */
  private statsOnHost(input: Tensor, group: ProcessGroup, where: string, rm: Tensor | null, rv: Tensor | null,
    factor: number): { mean: Tensor; invstd: Tensor; count: number } {
    const summary = F.batchNormWelfordStats(input);
    group.syncAllReduce([this.layerId * 2, input.shape[1], group.nextSync()], summary, 'welford', {
      check: this.checkDivergence, where,
    });
    // The global count decides, so a rank with one value (or none) still trains.
    const count = summary[0];
    this.checkGlobalCount(count, group, input);
    const stats = F.batchNormWelfordFinalize(summary, rm, rv, {
      eps: this.eps, momentum: factor, dtype: paramDtype(input.dtype), device: input.device,
    });
    return { ...stats, count };
  }

  /** The same for CUDA tensors on NCCL: statistics, merge and running stats stay on the device. */
  private statsOnDevice(input: Tensor, group: ProcessGroup, where: string, rm: Tensor | null, rv: Tensor | null,
    factor: number): { mean: Tensor; invstd: Tensor; count: number } {
    const fingerprint: Fingerprint = [this.layerId * 2, input.shape[1], group.nextSync()];
    const stats = syncStatsOnDevice(input, group, { fingerprint, check: this.checkDivergence, where }, {
      runningMean: rm, runningVar: rv, momentum: factor, eps: this.eps,
    });
    // As on the host: the global count decides; the merge left the running stats alone below 2.
    this.checkGlobalCount(stats.count, group, input);
    return stats;
  }

  /**
   * One value per channel over the whole group cannot be normalized
   * (PyTorch's message, with the group's count). None at all is a step every
   * rank takes with an empty batch, as PyTorch 2 does (a data loader's last
   * batch): empty outputs, zero gradients, the running statistics as
   * emptyWorldStep leaves them.
   */
  private checkGlobalCount(count: number, group: ProcessGroup, input: Tensor): void {
    if (count !== 1) return;
    throw new RangeError(`Expected more than 1 value per channel when training, got ${count} value(s) per channel ` +
      `over the ${group.size} ranks of ${group.label} (local input size [${input.shape.join(', ')}])`);
  }

  override backward(gradOutput: Tensor): Tensor {
    const s = this.syncSaved;
    if (s === null) return super.backward(gradOutput);
    const weight = this.weight;
    const bias = this.bias;
    const wantParams = weight !== null && bias !== null && (weight.requiresGrad || bias.requiresGrad);
    const C = s.input.shape[1];
    const w32 = new WidenedChannels().wide(weight);
    const r = F.batchNormBackwardReduce(gradOutput, s.input, s.mean, s.invstd, w32, { weightG: wantParams, biasG: wantParams });
    const where = `${this.typeName()} '${this.layerName}' backward`;
    const fingerprint: Fingerprint = [this.layerId * 2 + 1, C, s.group.nextSync()];
    if (syncsOnDevice(s.input, s.group)) {
      syncGradSumsOnDevice(r.sumDy!, r.sumDyXmu!, s.group, { fingerprint, check: this.checkDivergence, where });
    } else {
      const sums = new Float64Array(2 * C);
      sums.set(r.sumDy!.toArray(), 0);
      sums.set(r.sumDyXmu!.toArray(), C);
      s.group.syncAllReduce(fingerprint, sums, 'sum', { check: this.checkDivergence, where });
      const dtype = r.sumDy!.dtype as 'float32' | 'float64';
      r.sumDy!.copy_(tensor(sums.subarray(0, C), [C], { dtype }));
      r.sumDyXmu!.copy_(tensor(sums.subarray(C), [C], { dtype }));
    }
    const gradInput = F.batchNormBackwardElemt(gradOutput, s.input, s.mean, s.invstd, w32, r.sumDy!, r.sumDyXmu!, s.count);
    if (wantParams) {
      if (weight.requiresGrad) accumulate(weight, r.gradWeight!, where);
      if (bias.requiresGrad) accumulate(bias, r.gradBias!, where);
    }
    this.syncSaved = null;
    return gradInput;
  }

  /**
   * Replaces every BatchNorm1d/2d/3d in `module`'s tree by a SyncBatchNorm
   * that shares its parameters, buffers (the counter too) and training flag;
   * a BatchNorm root comes back as a new SyncBatchNorm. The replacement is
   * written to the parent's field, which is its registry entry, so the
   * `this.bn` that `forward` calls is the synced layer. A subclass of a
   * BatchNorm class (its own behaviour would be lost) throws, naming its
   * path, unless `allowSubclasses` is set. Cf. `SyncBatchNorm.convert_sync_batchnorm`.
   *
   * @example
   * const net = nn.SyncBatchNorm.convertSyncBatchnorm(new nn.Sequential(new nn.BatchNorm1d(8)));
   */
  static convertSyncBatchnorm(module: BatchNorm, processGroup?: ProcessGroup | null, opts?: { allowSubclasses?: boolean }): SyncBatchNorm;
  static convertSyncBatchnorm<T extends Module>(module: T, processGroup?: ProcessGroup | null, opts?: { allowSubclasses?: boolean }): T;
  static convertSyncBatchnorm(module: Module, processGroup: ProcessGroup | null = null, opts: { allowSubclasses?: boolean } = {}): Module {
    if (!(module instanceof Module)) throw new TypeError('convertSyncBatchnorm: module must be a Module');
    return convert(module, '', processGroup, opts.allowSubclasses ?? false);
  }
}

function convert(m: Module, path: string, group: ProcessGroup | null, allowSubclasses: boolean): Module {
  if (m instanceof BatchNorm && !(m instanceof SyncBatchNorm)) {
    const at = path === '' ? 'the root module' : `'${path}'`;
    if (m.hasUninitializedParams()) {
      throw new Error(`convertSyncBatchnorm: ${at} is a lazy module without numFeatures yet; run a forward or load a state dict first`);
    }
    // typeName() is the class PyTorch would report: a materialized lazy module counts as plain.
    if (!PLAIN.has(m.typeName()) && !allowSubclasses) {
      throw new TypeError(`convertSyncBatchnorm: ${at} is a ${m.typeName()}, a subclass of BatchNorm; replacing it by a plain ` +
        'SyncBatchNorm would drop its own behaviour. Pass { allowSubclasses: true } to convert it anyway.');
    }
    const s = new SyncBatchNorm(m.numFeatures, {
      eps: m.eps, momentum: m.momentum, affine: m.affine, trackRunningStats: m.trackRunningStats, dtype: m.dtype, processGroup: group,
    });
    s.registerParameter('weight', m.weight);
    s.registerParameter('bias', m.bias);
    s.registerBuffer('running_mean', m.runningMean);
    s.registerBuffer('running_var', m.runningVar);
    s.registerBuffer('num_batches_tracked', m.numBatchesTracked);
    s.training = m.training;
    s.layerName = path === '' ? 'root' : path;
    return s;
  }
  for (const [name, child] of m.namedChildren()) {
    const c = convert(child, path ? `${path}.${name}` : name, group, allowSubclasses);
    if (c !== child) m.registerModule(name, c);
  }
  return m;
}

/**
 * SyncBatchNorm across data-parallel replicas of one process (worker
 * threads on the 'threads' backend), with BatchNorm1d's input check.
 * Cf. `sync_batchnorm.SynchronizedBatchNorm1d`.
 *
 * @example
 * // in each worker thread:
 * await dist.initProcessGroup({ backend: 'threads', rank, worldSize: 4 });
 * const bn = new nn.SynchronizedBatchNorm1d(32);
 */
export class SynchronizedBatchNorm1d extends SyncBatchNorm {
  static override readonly spatialDims = 1;
}

/**
 * SyncBatchNorm across data-parallel replicas of one process, with
 * BatchNorm2d's input check: (N, C, H, W). Cf. `sync_batchnorm.SynchronizedBatchNorm2d`.
 *
 * @example
 * const bn = new nn.SynchronizedBatchNorm2d(64);
 */
export class SynchronizedBatchNorm2d extends SyncBatchNorm {
  static override readonly spatialDims = 2;
}

/**
 * SyncBatchNorm across data-parallel replicas of one process, with
 * BatchNorm3d's input check: (N, C, D, H, W). Cf. `sync_batchnorm.SynchronizedBatchNorm3d`.
 *
 * @example
 * const bn = new nn.SynchronizedBatchNorm3d(8);
 */
export class SynchronizedBatchNorm3d extends SyncBatchNorm {
  static override readonly spatialDims = 3;
}
