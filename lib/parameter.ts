// Parameter: a tensor a module trains. It shares the storage (host or
// device) of the tensor it wraps.
import { allocate, Tensor } from './tensor';

/**
 * A tensor that a module trains, with the gradient that `backward` accumulates.
 * Cf. `torch.nn.Parameter`.
 *
 * @example
 * const w = new Parameter(ones([4]));
 * w.grad; // null until a backward pass
 */
export class Parameter extends Tensor {
  grad: Tensor | null = null;
  requiresGrad: boolean;

  constructor(t: Tensor, requiresGrad = true) {
    if (t.isCuda) super(allocate(t.dtype, 0), t.shape, t.memoryFormat, t.dtype, t.cudaStorage());
    else super(t.data, t.shape, t.memoryFormat, t.dtype);
    this.requiresGrad = requiresGrad;
  }
}
