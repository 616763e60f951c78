// Data-parallel training of tfjs models over syncbn's process groups, in
// Horovod's pattern: every rank runs the same model on its shard of each
// batch; the optimizer all-reduces the gradients before it applies them
// (DistributedOptimizer), every rank starts from rank 0's variables
// (broadcastVariables, or its callback at the start of fit), and the logged
// metrics are averaged over the ranks (MetricAverageCallback).
import type { NamedTensorMap, Optimizer, Tensor as TfTensor, Variable } from '@tensorflow/tfjs-core';
import type { NamedTensor } from '@tensorflow/tfjs-core/dist/tensor_types';
import type { LayersModel, LayerVariable, Logs } from '@tensorflow/tfjs-layers';
import { defaultGroup } from '../distributed/init';
import { Fingerprint, ProcessGroup } from '../distributed/process_group';
import { registerSyncSite, SyncSite } from '../distributed/sync_sites';
import { ValueError } from './errors';
import { tensorOf, valuesOf } from './tensor_bridge';
import { tfc, tfl } from './tf';

/** The process group option of the data-parallel helpers. */
export interface GroupOptions {
  /** The ranks that train together; default: the world group (none initialized: a world of one). */
  group?: ProcessGroup | null;
}

/** Options of `distributedOptimizer`. */
export interface DistributedOptimizerOptions extends GroupOptions {
  /** 'avg' (default: the gradient of the mean loss over the global batch, as DDP and Horovod) or 'sum'. */
  op?: 'avg' | 'sum';
  /** Check at every step that all ranks are at the same sync (default true). */
  checkDivergence?: boolean;
}

function groupOf(group: ProcessGroup | null | undefined, where: string): ProcessGroup | null {
  if (group != null && !(group instanceof ProcessGroup)) throw new ValueError(`${where}: group must be a syncbn ProcessGroup`);
  const g = group ?? defaultGroup();
  if (g !== null && !g.isMember()) {
    throw new ValueError(`${where}: rank ${g.globalRank} is not a member of ${g.label} (ranks [${g.ranks.join(', ')}])`);
  }
  return g;
}

function float32(t: TfTensor, name: string, where: string): Float32Array {
  if (t.dtype !== 'float32') throw new ValueError(`${where}: ${name} has dtype ${t.dtype}; only float32 values are reduced`);
  return valuesOf(t);
}

/**
 * An optimizer that all-reduces the gradients over the ranks before the
 * wrapped optimizer applies them: one collective per step over one flat
 * float32 bucket, in the order the gradients come (the model's variable
 * order, the same on every rank). A rank that runs another number of steps,
 * or reaches a synchronized layer instead, gets the divergence error naming
 * where each rank is. Serializes and saves as the wrapped optimizer. Cf.
 * Horovod's `DistributedOptimizer`.
 */
export class DistributedOptimizer extends tfc.Optimizer implements SyncSite {
  /** @nocollapse */
  static className = 'DistributedOptimizer';
  readonly #syncId: number;

  constructor(
    /** The optimizer that applies the reduced gradients. */
    readonly optimizer: Optimizer,
    readonly group: ProcessGroup | null,
    readonly op: 'avg' | 'sum',
    readonly checkDivergence: boolean,
  ) {
    super();
    this.#syncId = registerSyncSite(this);
  }

  /** @internal How divergence errors name one of this optimizer's syncs. */
  describeSync(_pass: number, size: number, seq: number): string {
    return `distributedOptimizer(${this.optimizer.getClassName()}).applyGradients (${size} gradient values, sync #${seq})`;
  }

  override applyGradients(variableGradients: NamedTensorMap | NamedTensor[]): void {
    const where = `distributedOptimizer(${this.optimizer.getClassName()}).applyGradients`;
    const group = groupOf(this.group, where);
    if (group === null || group.size === 1) {
      this.optimizer.applyGradients(variableGradients);
      return;
    }
    const named: NamedTensor[] = Array.isArray(variableGradients)
      ? variableGradients
      : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name] }));
    let total = 0;
    for (const g of named) if (g.tensor != null) total += g.tensor.size;
    const bucket = new Float32Array(total);
    let offset = 0;
    for (const g of named) {
      if (g.tensor == null) continue;
      bucket.set(float32(g.tensor, `the gradient of '${g.name}'`, where), offset);
      offset += g.tensor.size;
    }
    const fingerprint: Fingerprint = [this.#syncId * 2, total, group.nextSync()];
    group.syncAllReduce(fingerprint, bucket, this.op, { check: this.checkDivergence, where });
    tfc.tidy(() => {
      let at = 0;
      const reduced = named.map((g) => {
        if (g.tensor == null) return g;
        const tensor = tensorOf(bucket.subarray(at, at + g.tensor.size), g.tensor.shape);
        at += g.tensor.size;
        return { name: g.name, tensor };
      });
      if (Array.isArray(variableGradients)) {
        this.optimizer.applyGradients(reduced);
      } else {
        const map: NamedTensorMap = {};
        for (const g of reduced) map[g.name] = g.tensor;
        this.optimizer.applyGradients(map);
      }
    });
  }

  override get iterations(): number {
    return this.optimizer.iterations;
  }

  override getClassName(): string {
    return this.optimizer.getClassName();
  }

  override getConfig() {
    return this.optimizer.getConfig();
  }

  override getWeights(): Promise<NamedTensor[]> {
    return this.optimizer.getWeights();
  }

  override setWeights(weightValues: NamedTensor[]): Promise<void> {
    return this.optimizer.setWeights(weightValues);
  }

  override dispose(): void {
    this.optimizer.dispose();
  }
}

/**
 * Wraps `optimizer` so that `model.fit`, `optimizer.minimize` and
 * `applyGradients` all-reduce the gradients over the ranks of `group`
 * before applying them. Cf. Horovod's `hvd.DistributedOptimizer`.
 *
 * @example
 * await dist.initProcessGroup({ backend: 'gloo' });
 * model.compile({ optimizer: distributedOptimizer(tf.train.adam(1e-3)), loss: 'categoricalCrossentropy' });
 */
export function distributedOptimizer(optimizer: Optimizer, opts: DistributedOptimizerOptions = {}): DistributedOptimizer {
  const where = 'distributedOptimizer';
  if (!(optimizer instanceof tfc.Optimizer)) throw new ValueError(`${where}: optimizer must be a tf.Optimizer (e.g. tf.train.sgd(0.1))`);
  const op = opts.op ?? 'avg';
  if (op !== 'avg' && op !== 'sum') throw new ValueError(`${where}: op must be 'avg' or 'sum', got ${String(op)}`);
  const check = opts.checkDivergence ?? true;
  if (typeof check !== 'boolean') throw new ValueError(`${where}: checkDivergence must be a boolean`);
  if (opts.group != null && !(opts.group instanceof ProcessGroup)) throw new ValueError(`${where}: group must be a syncbn ProcessGroup`);
  return new DistributedOptimizer(optimizer, opts.group ?? null, op, check);
}

type Variables = LayersModel | ReadonlyArray<Variable | LayerVariable>;

function isModel(v: unknown): v is LayersModel {
  return v instanceof tfl.LayersModel;
}

/**
 * Copies rank `root`'s values of `variablesOrModel` (a model's weights,
 * trainable or not, or a list of variables) to every rank, in place: one
 * broadcast over a flat float32 bucket. Every rank must hold the same
 * variables in the same order. Cf. Horovod's `broadcast_variables`.
 *
 * @example
 * broadcastVariables(model);        // every rank starts from rank 0's weights
 */
export function broadcastVariables(variablesOrModel: Variables, root = 0, opts: GroupOptions = {}): void {
  const where = 'broadcastVariables';
  const group = groupOf(opts.group, where);
  const variables: ReadonlyArray<Variable | LayerVariable> = isModel(variablesOrModel) ? variablesOrModel.weights : variablesOrModel;
  if (!Array.isArray(variables)) throw new ValueError(`${where}: expected a tf.LayersModel or an array of variables`);
  if (group === null) {
    if (root !== 0) throw new ValueError(`${where}: root ${root} is not a rank: no process group is initialized (a world of one)`);
    return;
  }
  const rootIndex = group.ranks.indexOf(root);
  if (rootIndex < 0) throw new ValueError(`${where}: root ${String(root)} is not a rank of ${group.label} (ranks [${group.ranks.join(', ')}])`);
  if (group.size === 1) return;
  const tensors = variables.map((v) => (v instanceof tfc.Variable ? v : (v as LayerVariable).read()));
  const total = tensors.reduce((n, t) => n + t.size, 0);
  const bucket = new Float32Array(total);
  let offset = 0;
  tensors.forEach((t, i) => {
    bucket.set(float32(t, `variable '${variables[i].name}'`, where), offset);
    offset += t.size;
  });
  group.broadcastArray(bucket, rootIndex, where);
  offset = 0;
  tfc.tidy(() => {
    variables.forEach((v, i) => {
      const value = tensorOf(bucket.slice(offset, offset + tensors[i].size), tensors[i].shape);
      offset += tensors[i].size;
      if (v instanceof tfc.Variable) v.assign(value);
      else (v as LayerVariable).write(value);
    });
  });
}

/**
 * A callback that broadcasts rank `root`'s model weights to every rank when
 * `fit` starts, so replicas built with different random initial weights
 * train as one. Cf. Horovod's `BroadcastGlobalVariablesCallback`.
 */
export class BroadcastVariablesCallback extends tfl.Callback {
  constructor(readonly root = 0, readonly group: ProcessGroup | null = null) {
    super();
  }

  override async onTrainBegin(): Promise<void> {
    broadcastVariables(this.model, this.root, { group: this.group });
  }
}

/**
 * A callback for `model.fit` that starts training from rank `root`'s weights.
 *
 * @example
 * await model.fit(xs, ys, { callbacks: [broadcastVariablesCallback()] });
 */
export function broadcastVariablesCallback(root = 0, opts: GroupOptions = {}): BroadcastVariablesCallback {
  groupOf(opts.group, 'broadcastVariablesCallback');
  return new BroadcastVariablesCallback(root, opts.group ?? null);
}

/**
 * A callback that replaces each epoch's logged metrics (loss, accuracy, ...)
 * by their mean over the ranks, before `fit`'s history records them; with
 * equal shards that is the metric of the global batch. Cf. Horovod's
 * `MetricAverageCallback`.
 */
export class MetricAverageCallback extends tfl.Callback implements SyncSite {
  readonly #syncId = registerSyncSite(this);

  constructor(readonly group: ProcessGroup | null = null) {
    super();
  }

  /** @internal How divergence errors name one of this callback's syncs. */
  describeSync(_pass: number, size: number, seq: number): string {
    return `metricAverageCallback at the end of an epoch (${size} metric${size === 1 ? '' : 's'}, sync #${seq})`;
  }

  override async onEpochEnd(_epoch: number, logs?: Logs): Promise<void> {
    const where = 'metricAverageCallback';
    const group = groupOf(this.group, where);
    if (group === null || group.size === 1 || logs == null) return;
    // fit's own logger leaves an epoch's metrics as scalar tensors until a callback reads them.
    const value = (v: unknown) => (typeof v === 'number' ? v : v instanceof tfc.Tensor && v.size === 1 ? v.dataSync()[0] : null);
    const keys = Object.keys(logs).filter((k) => value(logs[k]) !== null).sort();
    const values = Float64Array.from(keys, (k) => value(logs[k])!);
    group.syncAllReduce([this.#syncId * 2, keys.length, group.nextSync()], values, 'avg', { check: true, where });
    keys.forEach((k, i) => {
      const old = logs[k] as unknown;
      if (old instanceof tfc.Tensor) old.dispose();
      logs[k] = values[i];
    });
  }
}

/**
 * A callback for `model.fit` that averages each epoch's metrics over the ranks.
 *
 * @example
 * const history = await model.fit(xs, ys, { callbacks: [metricAverageCallback()] });
 */
export function metricAverageCallback(opts: GroupOptions = {}): MetricAverageCallback {
  groupOf(opts.group, 'metricAverageCallback');
  return new MetricAverageCallback(opts.group ?? null);
}
