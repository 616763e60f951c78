// The tensor factories: torch.tensor, zeros, ones, full, empty. Each checks
// its options, fills host storage, then moves it to the device asked for.
import { isHalf, toHalfBits } from './half_float';
import {
  allocate, checkDevice, checkDtype, checkFormat, checkShape, DType, FloatStorage, product, storageDtype, Tensor, TensorOptions,
} from './tensor';

type NestedNumbers = number | NestedNumbers[];

function inferShape(data: NestedNumbers[]): number[] {
  const shape: number[] = [];
  let level: NestedNumbers = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  return shape;
}

/**
 * Creates a tensor from values in logical order, copying them. `data` may be
 * a flat array or TypedArray with `shape`, or nested arrays (shape inferred).
 * Cf. `torch.tensor`.
 *
 * @example
 * const x = tensor([[1, 2], [3, 4]]);                  // shape [2, 2], float32
 * const y = tensor(new Float64Array(6), [1, 2, 3], { dtype: 'float64' });
 */
export function tensor(
  data: ArrayLike<number> | ArrayLike<bigint> | NestedNumbers[],
  shape?: readonly number[],
  opts: TensorOptions = {},
): Tensor {
  const device = checkDevice(opts.device, 'tensor');
  let flat: ArrayLike<number> | ArrayLike<bigint>;
  let dims: readonly number[];
  if (Array.isArray(data) && data.some((v) => Array.isArray(v))) {
    dims = inferShape(data as NestedNumbers[]);
    flat = (data as unknown[]).flat(Infinity as 1) as number[];
    if (flat.length !== product(dims)) throw new RangeError(`tensor: nested arrays are ragged; expected shape [${dims.join(', ')}]`);
    if (shape !== undefined && (shape.length !== dims.length || shape.some((d, i) => d !== dims[i]))) {
      throw new RangeError(`tensor: nested data has shape [${dims.join(', ')}] but shape [${shape.join(', ')}] was given`);
    }
  } else {
    if (data === null || typeof data !== 'object' || typeof (data as ArrayLike<number>).length !== 'number') {
      throw new TypeError('tensor: data must be an array, a nested array or a TypedArray');
    }
    flat = data as ArrayLike<number>;
    dims = shape ?? [flat.length];
  }
  checkShape(dims, 'tensor');
  const n = product(dims);
  if (flat.length !== n) {
    throw new RangeError(`tensor: data has ${flat.length} elements but shape [${dims.join(', ')}] needs ${n}`);
  }
  const given = storageDtype(data);
  const defaultDtype: DType = given === 'float64' || given === 'int64' ? given : 'float32';
  const dtype = checkDtype(opts.dtype ?? defaultDtype, 'tensor');
  const storage = allocate(dtype, n);
  // Float arrays into float storage: one native copy (rounding to float32
  // as an element-wise assignment would) instead of a loop of checks.
  const floats = given === 'float32' || given === 'float64';
  if (floats && (dtype === 'float32' || dtype === 'float64')) {
    (storage as FloatStorage).set(flat as FloatStorage);
  } else {
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== 'number' && typeof v !== 'bigint') {
        throw new TypeError(`tensor: element ${i} is ${typeof v}, expected a number`);
      }
      if (dtype === 'int64') (storage as BigInt64Array)[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
      else if (isHalf(dtype)) (storage as Uint16Array)[i] = toHalfBits(Number(v), dtype);
      else (storage as FloatStorage)[i] = Number(v);
    }
  }
  const t = new Tensor(storage, dims, 'contiguous', dtype);
  const laid = opts.memoryFormat ? t.contiguous(checkFormat(opts.memoryFormat, dims.length, 'tensor')) : t;
  return laid.to(device);
}

/** @internal A new tensor of `shape` holding `value`; `where` names the caller in errors. */
export function filled(shape: readonly number[], value: number, opts: TensorOptions, where: string): Tensor {
  checkShape(shape, where);
  const device = checkDevice(opts.device, where);
  const dtype = checkDtype(opts.dtype ?? 'float32', where);
  const fmt = checkFormat(opts.memoryFormat, shape.length, where);
  const t = new Tensor(allocate(dtype, product(shape)), shape, fmt, dtype);
  if (value !== 0) t.fill_(value);
  return t.to(device);
}

/** Cf. `torch.zeros`. @example const z = zeros([2, 3]); */
export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return filled(shape, 0, opts, 'zeros');
}

/** Cf. `torch.ones`. @example const o = ones([4], { dtype: 'float64' }); */
export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return filled(shape, 1, opts, 'ones');
}

/** Cf. `torch.full`. @example const f = full([3], 0.5); */
export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  return filled(shape, value, opts, 'full');
}

/**
 * Cf. `torch.empty`. JavaScript zero-fills new memory, so the values are 0;
 * do not rely on that.
 *
 * @example const e = empty([8, 3]);
 */
export function empty(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return filled(shape, 0, opts, 'empty');
}
