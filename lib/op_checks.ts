// Argument checks shared by the CPU and CUDA paths of the functional ops,
// with PyTorch's wording where PyTorch has one.
import { DType, Tensor } from './tensor';

export function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The dtype of weight, bias and statistics for an input of `dtype` (float32 for half inputs, as in PyTorch). */
export function paramDtype(dtype: DType): 'float32' | 'float64' {
  return dtype === 'float64' ? 'float64' : 'float32';
}

/** Throws unless `input` is a floating tensor of rank >= 2 with at least one channel. */
export function checkInput(input: unknown, where: string, name = 'input'): asserts input is Tensor {
  if (!(input instanceof Tensor)) throw new TypeError(`${where}: ${name} must be a Tensor`);
  if (input.disposed) throw new TypeError(`${where}: ${name} was disposed`);
  if (input.dtype === 'int64') {
    throw new TypeError(`${where}: ${name} must have a floating dtype (float32, float64, float16 or bfloat16), got int64`);
  }
  if (input.ndim < 2) {
    throw new RangeError(`${where}: ${name} must have at least 2 dimensions (N, C, ...), got shape ${describeShape(input.shape)}`);
  }
  if (input.shape[1] < 1) {
    throw new RangeError(`${where}: ${name} must have at least one channel, got shape ${describeShape(input.shape)}`);
  }
}

/** Throws PyTorch's error when two tensors of one call are on different devices. */
export function checkSameDevice(a: Tensor, b: Tensor): void {
  if (a.device !== b.device) {
    throw new Error(`Expected all tensors to be on the same device, but found at least two devices, ${a.device} and ${b.device}!`);
  }
}

/**
 * A per-channel tensor: `channels` elements of `dtype` on the input's
 * device, or null when optional and absent.
 */
export function channelTensor(
  t: Tensor | null | undefined,
  name: string,
  channels: number,
  dtype: string,
  where: string,
  input: Tensor,
  required = false,
): Tensor | null {
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
    throw new TypeError(`${where}: expected ${name} to have dtype ${dtype} (for the input's ${input.dtype}), got ${t.dtype}`);
  }
  checkSameDevice(input, t);
  return t;
}

export function checkNumber(v: unknown, name: string, where: string, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw new RangeError(`${where}: ${name} must be a finite number${min > -Infinity ? ` >= ${min}` : ''}, got ${String(v)}`);
  }
  return v;
}

/** gradOutput checked against the input and laid out like it. */
export function matchGrad(gradOutput: unknown, input: Tensor, where: string): Tensor {
  checkInput(gradOutput, where, 'gradOutput');
  if (gradOutput.ndim !== input.ndim || gradOutput.shape.some((d, i) => d !== input.shape[i])) {
    throw new RangeError(`${where}: gradOutput shape ${describeShape(gradOutput.shape)} does not match input shape ${describeShape(input.shape)}`);
  }
  if (gradOutput.dtype !== input.dtype) {
    throw new TypeError(`${where}: expected gradOutput to have the input's dtype ${input.dtype}, got ${gradOutput.dtype}`);
  }
  checkSameDevice(input, gradOutput);
  return gradOutput.contiguous(input.memoryFormat);
}
