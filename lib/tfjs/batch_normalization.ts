// The tfjs layers. Both extend tfjs's own BatchNormalization: its
// constructor reads the config (defaults, initializers, regularizers,
// constraints), its build() adds gamma, beta, moving_mean and
// moving_variance in tfjs's order and with tfjs's names, and its getConfig()
// writes the config back, so all of that is tfjs's exactly. Only call() is
// syncbn's: the same semantics (tfjs-layers' normalization.ts: batch mean and
// biased variance in training, moving = moving - (moving - batch) * (1 -
// momentum), the moving statistics in inference), computed by syncbn's
// kernels, with exact gradients (tf.customGrad) and, for
// SyncBatchNormalization, statistics and gradient sums over every rank.
import type { BatchNormalization as TfBatchNormalizationType, BatchNormalizationLayerArgs } from '@tensorflow/tfjs-layers/dist/layers/normalization';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import type { GradSaveFunc, Tensor as TfTensor } from '@tensorflow/tfjs-core';
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import type { Fingerprint, ProcessGroup } from '../distributed/process_group';
import { registerSyncSite, SyncSite } from '../distributed/sync_sites';
import * as F from '../functional';
import { Tensor } from '../tensor';
import { ValueError } from './errors';
import { checkGroup, groupOf } from './groups';
import { tensorOf, valuesOf } from './tensor_bridge';
import { tfc } from './tf';

function registeredLayer(className: string): typeof TfBatchNormalizationType {
  const entry = tfc.serialization.SerializationMap.getMap().classNameMap[className];
  if (entry === undefined) throw new Error(`syncbn/tfjs: @tensorflow/tfjs-layers registered no '${className}' layer`);
  return entry[0] as unknown as typeof TfBatchNormalizationType;
}

const TfBatchNormalization = registeredLayer('BatchNormalization');

/** The fields of tfjs's BatchNormalization that call() reads (private in its typings). */
interface Fields {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma?: LayerVariable;
  beta?: LayerVariable;
  movingMean: LayerVariable;
  movingVariance: LayerVariable;
}

/** The configuration of `SyncBatchNormalization`: tfjs's BatchNormalization's, plus the group. */
export interface SyncBatchNormalizationArgs extends BatchNormalizationLayerArgs {
  /** The ranks whose batches the statistics cover; default: the world group at call time (none: a world of one). */
  processGroup?: ProcessGroup | null;
}

export type { BatchNormalizationLayerArgs };

/** What one training forward leaves for its backward. */
interface Saved {
  /** Batch mean and 1/sqrt(biased var + eps) per channel. */
  mean: Tensor;
  invstd: Tensor;
  /** Values per channel over every rank. */
  count: number;
}

/** The batch statistics a training forward moves the moving ones towards (biased variance). */
interface Moving {
  mean: Float64Array;
  variance: Float64Array;
}

/** The kernels' (N, C, inner) view of a tfjs shape normalized over `axis`. */
function kernelShape(shape: readonly number[], axis: number): number[] {
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i];
  let inner = 1;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i];
  return inner === 1 ? [outer, shape[axis]] : [outer, shape[axis], inner];
}

/**
 * Batch normalization as `tf.layers.batchNormalization` computes it (the
 * same config, defaults, weights and semantics), computed by syncbn's
 * kernels: any axis, inputs of rank 2 and up, and gradients exact for every
 * config, `center`/`scale` off included. Registered with
 * `tf.serialization.registerClass` as 'SyncbnBatchNormalization'.
 *
 * @example
 * import * as tf from '@tensorflow/tfjs';
 * import { batchNormalization } from 'syncbn/tfjs';
 * const model = tf.sequential({ layers: [
 *   tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3 }),
 *   batchNormalization(),                // instead of tf.layers.batchNormalization()
 *   tf.layers.reLU(),
 * ] });
 */
export class BatchNormalization extends TfBatchNormalization {
  /** @nocollapse */
  static override className = 'SyncbnBatchNormalization';

  constructor(args: BatchNormalizationLayerArgs = {}) {
    super(args);
    const f = this.fields();
    if (!Number.isInteger(f.axis)) throw new ValueError(`${this.where}: axis must be an integer, got ${JSON.stringify(f.axis)}`);
    if (typeof f.epsilon !== 'number' || !(f.epsilon >= 0) || !Number.isFinite(f.epsilon)) {
      throw new ValueError(`${this.where}: epsilon must be a finite number >= 0, got ${String(f.epsilon)}`);
    }
    if (typeof f.momentum !== 'number' || !Number.isFinite(f.momentum)) {
      throw new ValueError(`${this.where}: momentum must be a finite number, got ${String(f.momentum)}`);
    }
  }

  override call(inputs: TfTensor | TfTensor[], kwargs: Kwargs): TfTensor {
    return tfc.tidy(() => {
      const input = this.single(inputs);
      const f = this.fields();
      const axis = this.checkInput(input, f);
      const training = kwargs['training'] == null ? false : Boolean(kwargs['training']);
      const shape = kernelShape(input.shape, axis);
      const group = training ? this.syncGroup() : null;
      const gamma = f.scale ? f.gamma!.read() : null;
      const beta = f.center ? f.beta!.read() : null;
      const params = [gamma, beta].filter((p): p is NonNullable<typeof p> => p !== null);
      // Per-channel values are copied (C floats): the backward then sees the
      // forward's, also where a wasm heap view would not outlive a later allocation.
      const perChannel = (t: TfTensor | null) => (t === null ? null : new Tensor(Float32Array.from(valuesOf(t)), [shape[1]]));
      let moving: Moving | null = null;
      const op = tfc.customGrad((...args: (TfTensor | GradSaveFunc)[]) => {
        const save = args[args.length - 1] as GradSaveFunc;
        const x = args[0] as TfTensor;
        save([x]);
        const weight = perChannel(gamma);
        const bias = perChannel(beta);
        const run = training ? this.trainForward(x, shape, weight, bias, f, group) : this.inferForward(x, shape, weight, bias, f);
        moving = run.moving;
        return {
          value: run.output,
          gradFunc: (dy: TfTensor, saved: TfTensor[]) => {
            const g = run.backward(dy, saved[0], weight);
            return [g.dx, ...(f.scale ? [g.dgamma!] : []), ...(f.center ? [g.dbeta!] : [])];
          },
        };
      });
      const output = op(input, ...params) as TfTensor;
      // After the op, as tfjs does: an empty batch (over every rank) moves nothing.
      const m = moving as Moving | null;
      if (m !== null) {
        this.moveAverage(f.movingMean, m.mean, f.momentum);
        this.moveAverage(f.movingVariance, m.variance, f.momentum);
      }
      return output;
    });
  }

  /** The group a training forward syncs over, or null for the plain path. */
  protected syncGroup(): ProcessGroup | null {
    return null;
  }

  /** How errors name this layer, as tfjs's do. */
  protected get where(): string {
    return `layer ${this.name} (${this.getClassName()})`;
  }

  private fields(): Fields {
    return this as unknown as Fields;
  }

  private single(inputs: TfTensor | TfTensor[]): TfTensor {
    if (Array.isArray(inputs)) {
      if (inputs.length !== 1) throw new ValueError(`${this.where} expects 1 input tensor, got ${inputs.length}`);
      return inputs[0];
    }
    return inputs;
  }

  /** tfjs's checks of an input against the built layer, and the dtype; returns the normalized axis. */
  private checkInput(x: TfTensor, f: Fields): number {
    if (!(x instanceof tfc.Tensor)) throw new ValueError(`${this.where} expects a tf.Tensor, got ${Object.prototype.toString.call(x)}`);
    if (!this.built) throw new ValueError(`${this.where} was called before it was built: apply() builds it from the input's shape`);
    if (x.dtype !== 'float32') throw new ValueError(`${this.where} expects float32 input, got ${x.dtype}`);
    const ndim = x.rank;
    const axis = f.axis >= 0 ? f.axis : f.axis + ndim;
    if (!Number.isInteger(axis) || axis < 0 || axis >= ndim) {
      throw new ValueError(`Axis ${f.axis} is out of range for the input of ${this.where}, of shape [${x.shape.join(',')}]`);
    }
    if (ndim < 2) throw new ValueError(`Input 0 is incompatible with ${this.where}: expected ndim>=2, found ndim=${ndim}`);
    const spec = this.inputSpec?.[0];
    if (spec?.ndim != null && spec.ndim !== ndim) {
      throw new ValueError(`Input 0 is incompatible with ${this.where}: expected ndim=${spec.ndim}, found ndim=${ndim}`);
    }
    const channels = f.movingMean.shape[0];
    if (x.shape[axis] !== channels) {
      throw new ValueError(`Input 0 is incompatible with ${this.where}: expected axis ${axis} of input shape to have ` +
        `value ${channels} but got shape [${x.shape.join(',')}]`);
    }
    return axis;
  }

  private inferForward(x: TfTensor, shape: number[], weight: Tensor | null, bias: Tensor | null, f: Fields) {
    const C = shape[1];
    const runningMean = new Tensor(Float32Array.from(valuesOf(f.movingMean.read())), [C]);
    const runningVar = new Tensor(Float32Array.from(valuesOf(f.movingVariance.read())), [C]);
    const eps = f.epsilon;
    const output = F.nativeBatchNorm(new Tensor(valuesOf(x), shape), weight, bias, runningMean, runningVar, false, 0, eps).output;
    return {
      output: tensorOf(output.data as Float32Array, x.shape),
      moving: null,
      backward: (dy: TfTensor, xs: TfTensor, w: Tensor | null) => {
        const r = F.batchNormBackward(new Tensor(valuesOf(dy), shape), new Tensor(valuesOf(xs), shape), {
          weight: w, runningMean, runningVar, training: false, eps, outputMask: [true, f.scale, f.center],
        });
        return this.grads(xs, r.gradInput!, r.gradWeight, r.gradBias);
      },
    };
  }

  private trainForward(x: TfTensor, shape: number[], weight: Tensor | null, bias: Tensor | null, f: Fields, group: ProcessGroup | null) {
    const input = new Tensor(valuesOf(x), shape);
    const { output, saved, mean, variance } = group === null
      ? this.localStatistics(input, weight, bias, f.epsilon)
      : this.syncedStatistics(input, weight, bias, f.epsilon, group);
    return {
      output: tensorOf(output.data as Float32Array, x.shape),
      moving: saved.count > 0 ? { mean, variance } : null,
      backward: (dy: TfTensor, xs: TfTensor, w: Tensor | null) => {
        const dyT = new Tensor(valuesOf(dy), shape);
        const xT = new Tensor(valuesOf(xs), shape);
        if (group === null) {
          const r = F.batchNormBackward(dyT, xT, {
            weight: w, saveMean: saved.mean, saveInvstd: saved.invstd, training: true, eps: f.epsilon,
            outputMask: [true, f.scale, f.center],
          });
          return this.grads(xs, r.gradInput!, r.gradWeight, r.gradBias);
        }
        return this.syncedBackward(dyT, xT, w, saved, group, xs);
      },
    };
  }

  /** One process: the fused kernel, which also yields the batch mean and unbiased variance. */
  private localStatistics(input: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number) {
    const C = input.shape[1];
    // Momentum 1 makes the kernel's running-stat update write the batch's own statistics.
    const batchMean = new Tensor(new Float32Array(C), [C]);
    const batchVar = new Tensor(new Float32Array(C), [C]);
    const r = F.nativeBatchNorm(input, weight, bias, batchMean, batchVar, true, 1, eps);
    const count = F.valuesPerChannel(input.shape);
    const unbiased = batchVar.data as Float32Array;
    // tfjs moves the moving variance towards the biased batch variance.
    const variance = new Float64Array(C);
    if (count > 1) for (let c = 0; c < C; c++) variance[c] = unbiased[c] * ((count - 1) / count);
    return {
      output: r.output,
      saved: { mean: r.saveMean, invstd: r.saveInvstd, count },
      mean: Float64Array.from(batchMean.data as Float32Array),
      variance,
    };
  }

  /** Several ranks: each rank's (count, mean, m2) per channel, merged exactly by one all-reduce. */
  private syncedStatistics(input: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number, group: ProcessGroup) {
    const C = input.shape[1];
    const summary = F.batchNormWelfordStats(input);
    const fingerprint: Fingerprint = [this.syncId() * 2, C, group.nextSync()];
    group.syncAllReduce(fingerprint, summary, 'welford', { check: true, where: `${this.where} forward` });
    const count = summary[0];
    const mean = new Float64Array(C);
    const variance = new Float64Array(C);
    const meanT = new Tensor(new Float32Array(C), [C]);
    const invstdT = new Tensor(new Float32Array(C), [C]);
    const m = meanT.data as Float32Array;
    const s = invstdT.data as Float32Array;
    // An empty global batch normalizes nothing; invstd 0 keeps its gradients 0, not NaN.
    for (let c = 0; c < C; c++) {
      mean[c] = count > 0 ? summary[3 * c + 1] : 0;
      variance[c] = count > 0 ? summary[3 * c + 2] / count : 0;
      m[c] = mean[c];
      s[c] = count > 0 ? 1 / Math.sqrt(variance[c] + eps) : 0;
    }
    const output = F.batchNormElemt(input, weight, bias, meanT, invstdT);
    return { output, saved: { mean: meanT, invstd: invstdT, count }, mean, variance };
  }

  /** The backward's one sync: sum_dy and sum_dy_xmu over every rank; gamma and beta grads stay local. */
  private syncedBackward(dy: Tensor, x: Tensor, weight: Tensor | null, saved: Saved, group: ProcessGroup, xs: TfTensor) {
    const C = x.shape[1];
    const r = F.batchNormBackwardReduce(dy, x, saved.mean, saved.invstd, weight, { weightG: false, biasG: false });
    const sumDy = r.sumDy!.data as Float32Array;
    const sumDyXmu = r.sumDyXmu!.data as Float32Array;
    // The local sums are the local grads: beta's is sum(dy), gamma's sum(dy * (x - mean)) * invstd.
    const invstd = saved.invstd.data as Float32Array;
    const dgamma = new Float32Array(C);
    for (let c = 0; c < C; c++) dgamma[c] = sumDyXmu[c] * invstd[c];
    const dbeta = Float32Array.from(sumDy);
    const sums = new Float64Array(2 * C);
    sums.set(sumDy, 0);
    sums.set(sumDyXmu, C);
    const fingerprint: Fingerprint = [this.syncId() * 2 + 1, C, group.nextSync()];
    group.syncAllReduce(fingerprint, sums, 'sum', { check: true, where: `${this.where} backward` });
    sumDy.set(sums.subarray(0, C));
    sumDyXmu.set(sums.subarray(C));
    const dx = F.batchNormBackwardElemt(dy, x, saved.mean, saved.invstd, weight, r.sumDy!, r.sumDyXmu!, saved.count);
    return this.grads(xs, dx, new Tensor(dgamma, [C]), new Tensor(dbeta, [C]));
  }

  /** @internal The sync-site id of SyncBatchNormalization (the plain layer never syncs). */
  protected syncId(): number {
    throw new Error(`${this.where} does not sync`);
  }

  private grads(x: TfTensor, dx: Tensor, dgamma: Tensor | null, dbeta: Tensor | null) {
    const C = x.shape[this.axisOf(x)];
    return {
      dx: tensorOf(dx.data as Float32Array, x.shape),
      dgamma: dgamma ? tensorOf(dgamma.data as Float32Array, [C]) : null,
      dbeta: dbeta ? tensorOf(dbeta.data as Float32Array, [C]) : null,
    };
  }

  private axisOf(x: TfTensor): number {
    const axis = this.fields().axis;
    return axis >= 0 ? axis : axis + x.rank;
  }

  /** tfjs's update: moving = moving - (moving - value) * (1 - momentum). */
  private moveAverage(variable: LayerVariable, value: Float64Array, momentum: number): void {
    const old = valuesOf(variable.read());
    const next = new Float32Array(old.length);
    const decay = 1 - momentum;
    for (let c = 0; c < old.length; c++) next[c] = old[c] - (old[c] - value[c]) * decay;
    variable.write(tensorOf(next, [old.length]));
  }
}

/**
 * Batch normalization whose training statistics cover every rank's batch: a
 * drop-in for `tf.layers.batchNormalization` (the same config, weights and
 * semantics) in data-parallel training. In training it all-reduces each
 * rank's per-channel (count, mean, m2) once in the forward and (sum_dy,
 * sum_dy_xmu) once in the backward, so outputs, moving statistics and
 * gradients equal one process on the concatenated batch; ranks may hold
 * uneven or empty batches. Inference uses the moving statistics and does not
 * sync. Without an initialized process group, or in a group of one, it is
 * plain batch normalization, as PyTorch's SyncBatchNorm. Registered with
 * `tf.serialization.registerClass` as 'SyncBatchNormalization'.
 *
 * @example
 * import * as tf from '@tensorflow/tfjs';
 * import { distributed as dist } from 'syncbn';
 * import { syncBatchNormalization } from 'syncbn/tfjs';
 * await dist.initProcessGroup({ backend: 'gloo' });   // under syncbn-run
 * const model = tf.sequential({ layers: [
 *   tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 16, kernelSize: 3 }),
 *   syncBatchNormalization(),           // statistics of every rank's batch
 *   tf.layers.reLU(),
 * ] });
 */
export class SyncBatchNormalization extends BatchNormalization implements SyncSite {
  /** @nocollapse */
  static override className = 'SyncBatchNormalization';
  /** The ranks to sync across; null: the world group at call time. Not part of the config. */
  processGroup: ProcessGroup | null;
  readonly #syncId: number;

  constructor(args: SyncBatchNormalizationArgs = {}) {
    const { processGroup, ...config } = args;
    super(config);
    this.processGroup = checkGroup(processGroup, this.where, 'processGroup');
    this.#syncId = registerSyncSite(this);
  }

  /** @internal How divergence errors name one of this layer's syncs. */
  describeSync(pass: number, channels: number, seq: number): string {
    return `${this.getClassName()} '${this.name}' ${pass === 0 ? 'forward' : 'backward'} (${channels} channels, sync #${seq})`;
  }

  protected override syncId(): number {
    return this.#syncId;
  }

  protected override syncGroup(): ProcessGroup | null {
    const group = groupOf(this.processGroup, this.where);
    return group !== null && group.size > 1 ? group : null;
  }
}

/**
 * A `BatchNormalization` layer (syncbn's kernels, tfjs's semantics): takes
 * `tf.layers.batchNormalization`'s config. Cf. `tf.layers.batchNormalization`.
 *
 * @example
 * const bn = batchNormalization({ axis: -1, momentum: 0.99, epsilon: 1e-3 });
 */
export function batchNormalization(config?: BatchNormalizationLayerArgs): BatchNormalization {
  return new BatchNormalization(config);
}

/**
 * A `SyncBatchNormalization` layer: `tf.layers.batchNormalization`'s config
 * plus `processGroup`.
 *
 * @example
 * const bn = syncBatchNormalization({ momentum: 0.9 });
 */
export function syncBatchNormalization(config?: SyncBatchNormalizationArgs): SyncBatchNormalization {
  return new SyncBatchNormalization(config);
}

tfc.serialization.registerClass(BatchNormalization);
tfc.serialization.registerClass(SyncBatchNormalization);
