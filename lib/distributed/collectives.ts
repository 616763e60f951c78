// Tensor collectives on a process group (the default one unless given).
// Synchronous for the calling thread, like torch.distributed's with
// async_op=False; every wait is bounded by the group's timeout.
import { Parameter } from '../parameter';
import { CommArray, CommDtype } from '../native';
import { zeros } from '../factories';
import { dtypeSize, emptyCuda, Tensor } from '../tensor';
import { ProcessGroup, ReduceOp } from './process_group';
import { defaultGroup, worldGroup } from './init';

export interface GroupOption {
  group?: ProcessGroup;
}

/**
 * What the model-wide collectives read: a Module (its parameters and
 * buffers, registered tensors in a fixed order), or anything with the same
 * two methods.
 */
export interface ParameterSource {
  parameters(): Iterable<Parameter>;
  buffers?(): Iterable<Tensor>;
}

/** Every parameter (or, with `buffers`, tensor) of `source`, checked as a ParameterSource. */
function tensorsOf(source: ParameterSource, where: string, buffers: boolean): Tensor[] {
  if (source === null || typeof source !== 'object' || typeof source.parameters !== 'function') {
    throw new TypeError(`${where}: module must be a Module (or have parameters() and buffers())`);
  }
  const params = [...source.parameters()];
  for (const p of params) if (!(p instanceof Parameter)) throw new TypeError(`${where}: parameters() must give Parameters`);
  if (!buffers) return params;
  const bufs = typeof source.buffers === 'function' ? [...source.buffers()] : [];
  for (const b of bufs) if (!(b instanceof Tensor)) throw new TypeError(`${where}: buffers() must give Tensors`);
  return [...params, ...bufs];
}

function groupOf(opts: GroupOption | undefined, where: string): ProcessGroup {
  const g = opts?.group ?? worldGroup(where);
  if (!(g instanceof ProcessGroup)) throw new TypeError(`${where}: group must be a ProcessGroup`);
  return g;
}

function checkTensor(t: unknown, where: string, name = 'tensor'): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${where}: ${name} must be a Tensor`);
}

/** The CPU storage the gloo and threads communicators reduce. */
function commDtype(t: Tensor, where: string, name: string): CommDtype {
  if (t.dtype !== 'float32' && t.dtype !== 'float64' && t.dtype !== 'int64') {
    throw new TypeError(`${where}: ${name} has dtype ${t.dtype}; collectives take float32, float64 or int64`);
  }
  return t.dtype;
}

function commArray(t: Tensor, where: string, name = 'tensor'): CommArray {
  if (t.isCuda) throw new TypeError(`${where}: ${name} is on ${t.device}; the gloo and threads backends reduce CPU tensors`);
  commDtype(t, where, name);
  return t.data as CommArray;
}

// The nccl backend reduces CUDA tensors in place, as in PyTorch; the others
// reduce CPU tensors.
function onDevice(g: ProcessGroup, t: Tensor, where: string, name = 'tensor'): boolean {
  if (g.backend !== 'nccl') return false;
  if (!t.isCuda) throw new TypeError(`${where}: ${name} is on ${t.device}; the nccl backend reduces CUDA tensors`);
  commDtype(t, where, name);
  return true;
}

/** This rank in `group` (default: the world), -1 when not a member. Cf. `get_rank`. @example dist.getRank(); */
export function getRank(group?: ProcessGroup): number {
  return (group ?? worldGroup('getRank')).rank;
}

/** Ranks in `group` (default: the world). Cf. `get_world_size`. @example dist.getWorldSize(); */
export function getWorldSize(group?: ProcessGroup): number {
  return (group ?? worldGroup('getWorldSize')).size;
}

/** Cf. `get_backend`. @example dist.getBackend(); // 'gloo' */
export function getBackend(group?: ProcessGroup): string {
  return (group ?? worldGroup('getBackend')).backend;
}

/**
 * Reduces `tensor` across the group, in place: every rank ends with the
 * result. Cf. `torch.distributed.all_reduce`.
 *
 * @example
 * const t = tensor([dist.getRank() + 1]);
 * dist.allReduce(t);            // every rank holds 1 + 2 + ... + worldSize
 */
export function allReduce(tensor: Tensor, opts: GroupOption & { op?: ReduceOp } = {}): void {
  const where = 'allReduce';
  checkTensor(tensor, where);
  const op = opts.op ?? 'sum';
  if (!['sum', 'avg', 'min', 'max'].includes(op)) throw new TypeError(`${where}: op must be 'sum', 'avg', 'min' or 'max', got ${String(op)}`);
  const g = groupOf(opts, where);
  if (onDevice(g, tensor, where)) {
    g.allReduceDevice(tensor.cudaStorage().buffer, tensor.numel(), tensor.dtype as CommDtype, op, where);
    return;
  }
  g.allReduceArray(commArray(tensor, where), op, where);
}

/**
 * Gathers every rank's `input` into `outputs` (one tensor per rank, each of
 * the input's shape and dtype). Cf. `torch.distributed.all_gather`.
 *
 * @example
 * const outs = [zeros([2]), zeros([2])];
 * dist.allGather(outs, tensor([1, 2]));
 */
export function allGather(outputs: Tensor[], input: Tensor, opts: GroupOption = {}): void {
  const where = 'allGather';
  checkTensor(input, where, 'input');
  const g = groupOf(opts, where);
  if (!Array.isArray(outputs) || outputs.length !== g.size) throw new RangeError(`${where}: outputs must hold ${g.size} tensors, one per rank`);
  for (const o of outputs) {
    checkTensor(o, where, 'outputs[i]');
    if (o.dtype !== input.dtype || o.numel() !== input.numel()) {
      throw new RangeError(`${where}: every output must match the input (${input.dtype}, ${input.numel()} elements)`);
    }
  }
  const n = input.numel();
  const nccl = onDevice(g, input, where, 'input');
  if (nccl && outputs.every((o) => o.device === input.device && o.memoryFormat === input.memoryFormat)) {
    // On the device's stream: one NCCL all-gather, then a device copy per rank.
    const flat = emptyCuda([g.size * n], input.dtype, input.device);
    const gathered = flat.cudaStorage().buffer;
    g.allGatherDevice(input.cudaStorage().buffer, gathered, n, input.dtype as CommDtype, where);
    const bytes = n * dtypeSize(input.dtype);
    outputs.forEach((o, r) => o.cudaStorage().buffer.copyFrom(gathered, bytes, 0, r * bytes));
    return;
  }
  // nccl into outputs elsewhere or in another memory format: through the host (the communicator stages it on the device).
  const host = nccl ? input.cpu() : input;
  const local = commArray(host.contiguous(), where, 'input');
  const flat = new (local.constructor as { new (n: number): CommArray })(n * g.size);
  g.allGatherArray(local, flat, where);
  outputs.forEach((o, r) => o.copy_(new Tensor(flat.subarray(r * n, (r + 1) * n), input.shape)));
}

/**
 * Copies `tensor` from global rank `src` to every rank of the group.
 * Cf. `torch.distributed.broadcast`.
 *
 * @example dist.broadcast(params, 0);
 */
export function broadcast(tensor: Tensor, src: number, opts: GroupOption = {}): void {
  const where = 'broadcast';
  checkTensor(tensor, where);
  const g = groupOf(opts, where);
  const root = g.ranks.indexOf(src);
  if (root < 0) throw new RangeError(`${where}: src ${String(src)} is not a rank of ${g.label} (ranks [${g.ranks.join(', ')}])`);
  if (onDevice(g, tensor, where)) {
    g.broadcastDevice(tensor.cudaStorage().buffer, tensor.numel(), tensor.dtype as CommDtype, root, where);
    return;
  }
  g.broadcastArray(commArray(tensor, where), root, where);
}

/** Waits until every rank of the group arrives. Cf. `torch.distributed.barrier`. @example dist.barrier(); */
export function barrier(opts: GroupOption = {}): void {
  const where = 'barrier';
  groupOf(opts, where).barrier(where);
}

/**
 * Sums (`op: 'sum'`, as DataParallel's gather of replica grads) or averages
 * (`op: 'avg'`, the default, as DDP) every parameter gradient of `module`
 * across the group: one all-reduce per dtype over a flat bucket (one
 * collective per gradient on nccl). A parameter without a gradient
 * contributes zeros. `average: false` is the older spelling of `op: 'sum'`.
 *
 * @example
 * net.backward(dy);
 * dist.allReduceGradients(net);                 // every rank steps with the mean
 * dist.allReduceGradients(net, { op: 'sum' });  // or with the sum
 */
export function allReduceGradients(module: ParameterSource, opts: GroupOption & { op?: 'sum' | 'avg'; average?: boolean } = {}): void {
  const where = 'allReduceGradients';
  const all = tensorsOf(module, where, false) as Parameter[];
  if (opts.op !== undefined && opts.op !== 'sum' && opts.op !== 'avg') throw new TypeError(`${where}: op must be 'sum' or 'avg', got ${String(opts.op)}`);
  const op: 'sum' | 'avg' = opts.op ?? (opts.average === false ? 'sum' : 'avg');
  const g = groupOf(opts, where);
  const params = all.filter((p) => p.requiresGrad);
  if (g.backend === 'nccl') {
    // CUDA gradients, reduced in place on the device, one collective each.
    for (const p of params) {
      if (!p.grad) p.grad = zeros(p.shape, { dtype: p.dtype, memoryFormat: p.memoryFormat }).to(p.device);
      onDevice(g, p.grad, where, 'a gradient');
      g.allReduceDevice(p.grad.cudaStorage().buffer, p.grad.numel(), p.grad.dtype as CommDtype, op, where);
    }
    return;
  }
  for (const dtype of ['float32', 'float64'] as const) {
    const group = params.filter((p) => p.dtype === dtype);
    if (group.length === 0) continue;
    const total = group.reduce((n, p) => n + p.numel(), 0);
    const bucket = dtype === 'float32' ? new Float32Array(total) : new Float64Array(total);
    let off = 0;
    for (const p of group) {
      if (p.grad) bucket.set(commArray(p.grad.contiguous(p.memoryFormat), where, 'a gradient') as Float32Array, off);
      off += p.numel();
    }
    g.allReduceArray(bucket, op, where);
    off = 0;
    for (const p of group) {
      const values = bucket.slice(off, off + p.numel());
      p.grad = new Tensor(values, p.shape, p.memoryFormat);
      off += p.numel();
    }
  }
}

/**
 * Copies rank `src`'s parameters and buffers (running statistics, counters)
 * into every rank's `module`, in place, as DDP does when it starts: one
 * broadcast per dtype over a flat bucket (one per tensor on nccl). Every
 * rank must hold the same architecture. Cf. DDP's `_sync_module_states`.
 *
 * @example
 * const net = nn.SyncBatchNorm.convertSyncBatchnorm(buildNet());
 * dist.broadcastParameters(net, 0);   // every rank starts from rank 0's weights
 */
export function broadcastParameters(module: ParameterSource, src = 0, opts: GroupOption = {}): void {
  const where = 'broadcastParameters';
  const tensors = tensorsOf(module, where, true);
  const g = groupOf(opts, where);
  const root = g.ranks.indexOf(src);
  if (root < 0) throw new RangeError(`${where}: src ${String(src)} is not a rank of ${g.label} (ranks [${g.ranks.join(', ')}])`);
  if (g.backend === 'nccl') {
    for (const t of tensors) broadcast(t, src, opts);
    return;
  }
  for (const dtype of ['float32', 'float64', 'int64'] as const) {
    const group = tensors.filter((t) => t.dtype === dtype);
    if (group.length === 0) continue;
    const total = group.reduce((n, t) => n + t.numel(), 0);
    const bucket = dtype === 'float32' ? new Float32Array(total) : dtype === 'float64' ? new Float64Array(total) : new BigInt64Array(total);
    let off = 0;
    // Storage in memory order: ranks of one architecture lay their tensors out alike.
    for (const t of group) {
      (bucket as Float32Array).set(commArray(t, where, 'a parameter or buffer') as Float32Array, off);
      off += t.numel();
    }
    g.broadcastArray(bucket, root, where);
    off = 0;
    for (const t of group) {
      (t.data as Float32Array).set((bucket as Float32Array).subarray(off, off + t.numel()));
      off += t.numel();
    }
  }
}

export { defaultGroup };
