// Data-parallel training of tfjs models over syncbn's process groups, in
// Horovod's pattern: every rank runs the same model on its shard of each
// batch; the optimizer all-reduces the gradients before it applies them
// (distributedOptimizer), every rank starts from the root's weights and
// optimizer state (broadcastVariables, broadcastOptimizerState, or the
// callback that runs both when fit starts), and the logged metrics are
// averaged over the ranks (metricAverageCallback).
import type { NamedTensorMap, Optimizer, Tensor as TfTensor, Variable } from '@tensorflow/tfjs-core';
import type { NamedTensor } from '@tensorflow/tfjs-core/dist/tensor_types';
import type { LayersModel, LayerVariable, Logs } from '@tensorflow/tfjs-layers';
import { Fingerprint, ProcessGroup } from '../distributed/process_group';
import { registerSyncSite, SyncSite } from '../distributed/sync_sites';
import { ValueError } from './errors';
import { checkGroup, groupOf } from './groups';
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

function float32(t: TfTensor, name: string, where: string): Float32Array {
  if (t.dtype !== 'float32') throw new ValueError(`${where}: ${name} has dtype ${t.dtype}; only float32 values are reduced`);
  return valuesOf(t);
}

function checkBoolean(v: unknown, name: string, where: string): boolean {
  if (typeof v !== 'boolean') throw new ValueError(`${where}: ${name} must be a boolean, got ${String(v)}`);
  return v;
}

function rootIndexOf(group: ProcessGroup, root: number, where: string): number {
  const index = group.ranks.indexOf(root);
  if (index < 0) throw new ValueError(`${where}: root ${String(root)} is not a rank of ${group.label} (ranks [${group.ranks.join(', ')}])`);
  return index;
}

// The wrapper's own state, reachable from it (to refuse wrapping twice).
const REDUCTION = Symbol('syncbn.distributedOptimizer');

/** The all-reduce a distributed optimizer adds before its optimizer applies the gradients: a sync site. */
class GradientReduction implements SyncSite {
  readonly id = registerSyncSite(this);

  constructor(
    readonly optimizer: Optimizer,
    readonly group: ProcessGroup | null,
    readonly op: 'avg' | 'sum',
    readonly check: boolean,
  ) {}

  private get where(): string {
    return `distributedOptimizer(${this.optimizer.getClassName()}).applyGradients`;
  }

  describeSync(_pass: number, size: number, seq: number): string {
    return `${this.where} (${size} gradient values, sync #${seq})`;
  }

  /** One all-reduce of every gradient in one flat bucket, in the order given (the model's variable order). */
  apply(variableGradients: NamedTensorMap | NamedTensor[]): void {
    const group = groupOf(this.group, this.where);
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
      bucket.set(float32(g.tensor, `the gradient of '${g.name}'`, this.where), offset);
      offset += g.tensor.size;
    }
    const fingerprint: Fingerprint = [this.id * 2, total, group.nextSync()];
    group.syncAllReduce(fingerprint, bucket, this.op, { check: this.check, where: this.where });
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
}

/**
 * Wraps `optimizer` so that `model.fit`, `optimizer.minimize` and
 * `applyGradients` all-reduce the gradients over the ranks of `group`
 * before applying them: one collective per step over one flat float32
 * bucket. The result is the optimizer itself in every other respect (its
 * class, `learningRate`, `setLearningRate`, weights, config, saving with the
 * model). With `metricAverageCallback` in `fit`, a rank that runs more
 * steps than another gets the divergence error naming where each rank is.
 * Cf. Horovod's `hvd.DistributedOptimizer`.
 *
 * @example
 * await dist.initProcessGroup({ backend: 'gloo' });
 * model.compile({ optimizer: distributedOptimizer(tf.train.adam(1e-3)), loss: 'categoricalCrossentropy' });
 */
export function distributedOptimizer<T extends Optimizer>(optimizer: T, opts: DistributedOptimizerOptions = {}): T {
  const where = 'distributedOptimizer';
  if (!(optimizer instanceof tfc.Optimizer)) throw new ValueError(`${where}: optimizer must be a tf.Optimizer (e.g. tf.train.sgd(0.1))`);
  if ((optimizer as unknown as Record<symbol, unknown>)[REDUCTION]) throw new ValueError(`${where}: optimizer is a distributedOptimizer already`);
  const op = opts.op ?? 'avg';
  if (op !== 'avg' && op !== 'sum') throw new ValueError(`${where}: op must be 'avg' or 'sum', got ${String(op)}`);
  const reduction = new GradientReduction(optimizer, checkGroup(opts.group, where), op, checkBoolean(opts.checkDivergence ?? true, 'checkDivergence', where));
  const applyGradients = (g: NamedTensorMap | NamedTensor[]) => reduction.apply(g);
  // Every other property, read or written, is the optimizer's own: its
  // methods run with the wrapper as `this`, so minimize() calls the
  // all-reducing applyGradients.
  return new Proxy(optimizer, {
    get(target, prop, receiver) {
      if (prop === 'applyGradients') return applyGradients;
      if (prop === REDUCTION) return reduction;
      return Reflect.get(target, prop, receiver);
    },
  });
}

type Variables = LayersModel | ReadonlyArray<Variable | LayerVariable>;

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
  const variables: ReadonlyArray<Variable | LayerVariable> = variablesOrModel instanceof tfl.LayersModel ? variablesOrModel.weights : variablesOrModel;
  if (!Array.isArray(variables)) throw new ValueError(`${where}: expected a tf.LayersModel or an array of variables`);
  if (group === null) {
    if (root !== 0) throw new ValueError(`${where}: root ${root} is not a rank: no process group is initialized (a world of one)`);
    return;
  }
  const rootIndex = rootIndexOf(group, root, where);
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
 * Copies rank `root`'s optimizer state (its weights: the iteration count,
 * Adam's moments...) to every rank, which may hold none yet: what a run that
 * resumes from rank 0's checkpoint needs. Every rank, the root too, then
 * holds the state `setWeights` makes of it, the same to the bit. Optimizers
 * whose `getWeights` is not implemented have no state to copy. Every rank
 * must call it.
 *
 * @example
 * await broadcastOptimizerState(model.optimizer);
 */
export async function broadcastOptimizerState(optimizer: Optimizer, root = 0, opts: GroupOptions = {}): Promise<void> {
  const where = 'broadcastOptimizerState';
  if (!(optimizer instanceof tfc.Optimizer)) throw new ValueError(`${where}: optimizer must be a tf.Optimizer`);
  const group = groupOf(opts.group, where);
  if (group === null || group.size === 1) return;
  const rootIndex = rootIndexOf(group, root, where);
  const isRoot = group.rank === rootIndex;
  let weights: NamedTensor[] = [];
  if (isRoot) {
    try {
      weights = await optimizer.getWeights();
    } catch {
      weights = []; // tf.Optimizer's default getWeights throws: no state
    }
  }
  // The names, shapes and dtypes first (as UTF-8 bytes, their count before them), then the values in float64.
  const spec = Buffer.from(JSON.stringify(weights.map((w) => ({ name: w.name, shape: w.tensor.shape, dtype: w.tensor.dtype }))), 'utf8');
  const length = new Float64Array([spec.length]);
  group.broadcastArray(length, rootIndex, where);
  const bytes = isRoot ? Float64Array.from(spec) : new Float64Array(length[0]);
  group.broadcastArray(bytes, rootIndex, where);
  const specs = JSON.parse(Buffer.from(Uint8Array.from(bytes)).toString('utf8')) as { name: string; shape: number[]; dtype: 'float32' | 'int32' }[];
  if (specs.length === 0) return;
  const sizes = specs.map((s) => s.shape.reduce((a, b) => a * b, 1));
  const values = new Float64Array(sizes.reduce((a, b) => a + b, 0));
  if (isRoot) {
    let at = 0;
    weights.forEach((w, i) => {
      values.set(w.tensor.dataSync(), at);
      at += sizes[i];
    });
  }
  group.broadcastArray(values, rootIndex, where);
  // The root sets its state from the same values as the others: setWeights
  // derives more (Adam's bias-correction powers) than getWeights holds, and
  // the replicas must agree to the bit. Its old state variables go.
  let at = 0;
  const state = specs.map((s, i) => {
    const part = values.subarray(at, at + sizes[i]);
    const tensor = tfc.tensor(s.dtype === 'int32' ? Int32Array.from(part) : Float32Array.from(part), s.shape, s.dtype);
    at += sizes[i];
    return { name: s.name, tensor };
  });
  await optimizer.setWeights(state);
  tfc.dispose(state.map((s) => s.tensor));
  if (isRoot) tfc.dispose(weights.map((w) => w.tensor));
}

/**
 * A callback that starts `fit` on every rank from rank `root`'s model
 * weights and optimizer state, so replicas built with other random initial
 * weights, or resumed on one rank only, train as one. Cf. Horovod's
 * `BroadcastGlobalVariablesCallback`.
 *
 * @example
 * await model.fit(xs, ys, { callbacks: [new BroadcastVariablesCallback(0)] });
 */
export class BroadcastVariablesCallback extends tfl.Callback {
  constructor(readonly root = 0, readonly group: ProcessGroup | null = null) {
    super();
    checkGroup(group, 'BroadcastVariablesCallback');
  }

  override async onTrainBegin(): Promise<void> {
    broadcastVariables(this.model, this.root, { group: this.group });
    const optimizer = this.model.optimizer;
    if (optimizer != null) await broadcastOptimizerState(optimizer, this.root, { group: this.group });
  }
}

/**
 * A callback for `model.fit` that starts training from rank `root`'s weights
 * and optimizer state.
 *
 * @example
 * await model.fit(xs, ys, { callbacks: [broadcastVariablesCallback()] });
 */
export function broadcastVariablesCallback(root = 0, opts: GroupOptions = {}): BroadcastVariablesCallback {
  return new BroadcastVariablesCallback(root, checkGroup(opts.group, 'broadcastVariablesCallback'));
}

/**
 * A callback that replaces each epoch's logged metrics (loss, accuracy, ...)
 * by their mean over the ranks, before `fit`'s history records them; with
 * equal shards that is the metric of the global batch. It also makes a rank
 * that ran fewer steps than another fail at the end of its epoch with the
 * divergence error, instead of leaving the other waiting. Cf. Horovod's
 * `MetricAverageCallback`.
 *
 * @example
 * await model.fit(xs, ys, { callbacks: [new MetricAverageCallback()] });
 */
export class MetricAverageCallback extends tfl.Callback implements SyncSite {
  readonly #syncId = registerSyncSite(this);

  constructor(readonly group: ProcessGroup | null = null, readonly checkDivergence = true) {
    super();
    checkGroup(group, 'MetricAverageCallback');
    checkBoolean(checkDivergence, 'checkDivergence', 'MetricAverageCallback');
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
    group.syncAllReduce([this.#syncId * 2, keys.length, group.nextSync()], values, 'avg', { check: this.checkDivergence, where });
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
export function metricAverageCallback(opts: GroupOptions & { checkDivergence?: boolean } = {}): MetricAverageCallback {
  return new MetricAverageCallback(checkGroup(opts.group, 'metricAverageCallback'), opts.checkDivergence ?? true);
}
