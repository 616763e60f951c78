// Per-channel tensors in a 16-bit dtype. A float16 or bfloat16 input runs
// with float32 weight, bias and statistics (PyTorch's mixed precision, the
// kernels' own convention), or, as PyTorch 2 allows on the CPU, with all of
// them in the input's dtype (a layer after `to('bfloat16')`). The kernels take
// the first kind only: the second is widened to float32 copies here (C values
// each), and what an op updates in place is rounded back after it.
import { isHalf } from './half_float';
import { describeShape } from './op_checks';
import { Tensor } from './tensor';

/**
 * The float32 copies of one op's half per-channel tensors, and the copies
 * back of those it updates.
 */
export class WidenedChannels {
  private readonly back: Array<[Tensor, Tensor]> = [];

  /**
   * `t` itself unless it is a float16 or bfloat16 tensor; then a float32
   * copy on its device, copied back into `t` by restore() when `updated`.
   */
  wide(t: Tensor | null | undefined, updated = false): Tensor | null {
    if (t === null || t === undefined || !(t instanceof Tensor) || !isHalf(t.dtype) || t.disposed) return t ?? null;
    const w = new Tensor(new Float32Array(t.numel()), t.shape, 'contiguous', 'float32').copy_(t).to(t.device);
    if (updated) this.back.push([t, w]);
    return w;
  }

  /** Rounds the updated copies back into their 16-bit tensors. */
  restore(): void {
    for (const [t, w] of this.back.splice(0)) t.copy_(w);
  }
}

/**
 * Whether the per-channel tensors of an op on `input` are in the input's
 * 16-bit dtype (PyTorch 2's all-half batch norm) rather than float32: all of
 * those given, and, as in PyTorch (is_mixed_type), also when none is given;
 * throws when some are and some are not, as PyTorch does.
 */
export function halfChannels(input: Tensor, named: Record<string, Tensor | null | undefined>, where: string): boolean {
  if (!isHalf(input.dtype)) return false;
  const given = Object.entries(named).filter((e): e is [string, Tensor] => e[1] instanceof Tensor);
  const half = given.filter(([, t]) => t.dtype === input.dtype);
  if (half.length === given.length) return true;
  if (half.length === 0) return false;
  const other = given.find(([, t]) => t.dtype !== input.dtype)!;
  throw new TypeError(`${where}: the per-channel tensors of a ${input.dtype} input must all be float32 (mixed precision) ` +
    `or all ${input.dtype}, got ${half[0][0]} ${input.dtype} and ${other[0]} ${other[1].dtype} ${describeShape(other[1].shape)}`);
}

/** A float32 per-channel result of an op as the input's 16-bit dtype (all-half calls return their statistics so). */
export function narrowed(t: Tensor, dtype: string): Tensor {
  if (!isHalf(dtype) || t.dtype === dtype) return t;
  return new Tensor(new Uint16Array(t.numel()), t.shape, 'contiguous', dtype).copy_(t).to(t.device);
}
