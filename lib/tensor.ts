// Tensor: storage + shape + dtype + device + memory format. No general strides:
// a tensor is laid out either N,C,... ("contiguous") or N,...,C ("channelsLast").
import { native, NativeShape } from './native';
import { adopt, recycle, smallArray } from './storage';

/**
 * Element types. `int64` exists for counters such as `num_batches_tracked`;
 * `float16` and `bfloat16` (held on the host as Uint16Array bits) are
 * computed on CUDA only.
 */
export type DType = 'float32' | 'float64' | 'int64' | 'float16' | 'bfloat16';
/** The dtypes of parameters and of CPU batch norm. */
export type FloatDType = 'float32' | 'float64';
export type MemoryFormat = 'contiguous' | 'channelsLast';
/** 'cpu' or 'cuda:N' ('cuda' alone means the current CUDA device when given as an option). */
export type Device = 'cpu' | `cuda:${number}`;
export type Storage = Float32Array | Float64Array | BigInt64Array | Uint16Array;
export type FloatStorage = Float32Array | Float64Array;

export interface TensorOptions {
  dtype?: DType;
  device?: Device | 'cuda';
  memoryFormat?: MemoryFormat;
}

const DTYPES: readonly DType[] = ['float32', 'float64', 'int64', 'float16', 'bfloat16'];

/** Bytes per element. */
export function dtypeSize(dtype: DType): number {
  return dtype === 'float64' || dtype === 'int64' ? 8 : dtype === 'float32' ? 4 : 2;
}

/** A zeroed host array of `n` elements in `dtype`'s storage type (half floats as Uint16Array). */
export function allocate(dtype: DType, n: number): Storage {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(n);
  }
}

// float32 <-> float16 / bfloat16 bits, round to nearest even.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toHalfBits(v: number, dtype: 'float16' | 'bfloat16'): number {
  f32[0] = v;
  const x = u32[0];
  if (dtype === 'bfloat16') {
    if ((x & 0x7fffffff) > 0x7f800000) return 0x7fc0;
    return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

function fromHalfBits(h: number, dtype: 'float16' | 'bfloat16'): number {
  if (dtype === 'bfloat16') {
    u32[0] = h << 16;
    return f32[0];
  }
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function isHalf(dtype: DType): dtype is 'float16' | 'bfloat16' {
  return dtype === 'float16' || dtype === 'bfloat16';
}

/** Where a CUDA tensor's storage lives. @internal */
export interface CudaStorage {
  buffer: import('./native').DeviceBuffer;
  index: number;
}

/**
 * The dtype of a TypedArray, read from its tag, so it works across realms
 * (jest's vm contexts, arrays made by the addon), where instanceof does not;
 * null for any other value.
 */
export function storageDtype(a: unknown): DType | null {
  // This realm's arrays, the usual case, skip the tag: reading it costs
  // about 85 ns, which every tensor an op returns paid (bench/NOTES.md 29).
  // isView rules out objects that merely inherit from the prototypes.
  if (ArrayBuffer.isView(a)) {
    if (a instanceof Float32Array) return 'float32';
    if (a instanceof Float64Array) return 'float64';
  }
  switch (Object.prototype.toString.call(a)) {
    case '[object Float32Array]':
      return 'float32';
    case '[object Float64Array]':
      return 'float64';
    case '[object BigInt64Array]':
      return 'int64';
    default:
      return null;
  }
}

/** Throws unless `shape` is a list of non-negative integers. */
export function checkShape(shape: readonly number[], where: string): void {
  if (!Array.isArray(shape)) throw new TypeError(`${where}: shape must be an array of integers`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`${where}: shape must hold non-negative integers, got [${shape.join(', ')}]`);
    }
  }
}

function product(dims: readonly number[]): number {
  let p = 1;
  for (const d of dims) p *= d;
  return p;
}

/** The (N, C, inner) view of a shape of rank >= 2. */
export function batchView(shape: readonly number[]): NativeShape {
  return [shape[0], shape[1], product(shape.slice(2))];
}

function checkDtype(dtype: unknown, where: string): DType {
  if (!DTYPES.includes(dtype as DType)) {
    throw new TypeError(`${where}: unsupported dtype ${String(dtype)}; expected one of ${DTYPES.join(', ')}`);
  }
  return dtype as DType;
}

/** Parses 'cpu', 'cuda' or 'cuda:N'; CUDA must be usable. */
export function checkDevice(device: unknown, where: string): Device {
  if (device === undefined || device === 'cpu') return 'cpu';
  const m = typeof device === 'string' ? /^cuda(?::(\d+))?$/.exec(device) : null;
  if (!m) throw new TypeError(`${where}: unsupported device ${String(device)}; expected 'cpu', 'cuda' or 'cuda:N'`);
  if (!native.cuda.isAvailable()) {
    throw new Error(`${where}: device '${device}' was asked for, but CUDA is not available: ${native.cuda.unavailableReason()}`);
  }
  const index = m[1] === undefined ? 0 : Number(m[1]);
  const count = native.cuda.deviceCount();
  if (index >= count) throw new RangeError(`${where}: CUDA device ${index} does not exist (this machine has ${count})`);
  return `cuda:${index}`;
}

function cudaIndex(device: Device): number {
  return Number(device.slice(5));
}

function checkFormat(format: unknown, rank: number, where: string): MemoryFormat {
  if (format === undefined || format === 'contiguous') return 'contiguous';
  if (format !== 'channelsLast') {
    throw new TypeError(`${where}: unsupported memoryFormat ${String(format)}; expected 'contiguous' or 'channelsLast'`);
  }
  if (rank < 3) {
    throw new RangeError(`${where}: memoryFormat 'channelsLast' needs a tensor of rank >= 3, got rank ${rank}`);
  }
  return 'channelsLast';
}

/** Re-lays `src` (shape, from one format) into a new storage of the other. */
function relayout(src: Storage, shape: readonly number[], toChannelsLast: boolean): Storage {
  const kind = storageDtype(src);
  const dst = kind === null ? new Uint16Array(src.length) : allocate(kind, src.length);
  native.convertMemoryFormat(src, dst, batchView(shape), toChannelsLast);
  return dst;
}

/**
 * A dense CPU tensor. Cf. `torch.Tensor`, restricted to the two memory
 * formats batch norm uses.
 *
 * @example
 * const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * x.shape;       // [2, 3]
 * x.toArray();   // Float32Array [1, 2, 3, 4, 5, 6]
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly memoryFormat: MemoryFormat;
  #data: Storage;
  #cuda: CudaStorage | null = null;
  #disposed = false;
  // Whether this tensor's storage came from the output pool and is its alone.
  #recyclable = false;

  /**
   * Wraps `data` (memory order) without copying. Prefer the factories.
   * `dtype` is needed only for Uint16Array storage (float16 / bfloat16).
   */
  constructor(data: Storage, shape: readonly number[], memoryFormat: MemoryFormat = 'contiguous', dtype?: DType, cuda?: CudaStorage) {
    checkShape(shape, 'Tensor');
    const kind = storageDtype(data);
    if (kind === null && !(Object.prototype.toString.call(data) === '[object Uint16Array]' && dtype !== undefined && isHalf(dtype))) {
      throw new TypeError('Tensor: data must be a Float32Array, Float64Array or BigInt64Array (or a Uint16Array with dtype float16/bfloat16)');
    }
    const n = product(shape);
    if (cuda === undefined && data.length !== n) {
      throw new RangeError(`Tensor: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
    }
    this.shape = Object.freeze([...shape]);
    this.dtype = kind ?? dtype!;
    this.memoryFormat = checkFormat(memoryFormat, shape.length, 'Tensor');
    this.#data = data;
    this.#cuda = cuda ?? null;
    this.#recyclable = cuda === undefined && adopt(data);
  }

  /** 'cpu' or 'cuda:N'. */
  get device(): Device {
    return this.#cuda ? `cuda:${this.#cuda.index}` : 'cpu';
  }

  /** True on a CUDA device. */
  get isCuda(): boolean {
    return this.#cuda !== null;
  }

  /**
   * Throws when this tensor was disposed: its storage may already hold a
   * later output, so reading or writing it would touch someone else's values.
   */
  #live(where: string, role = 'tensor'): void {
    if (this.#disposed) {
      throw new Error(`${where}: the ${role} (shape [${this.shape.join(', ')}], ${this.dtype}) was disposed; ` +
        'dispose() handed its storage to later outputs, so it can no longer be read or written');
    }
  }

  /** The storage in memory order (N,...,C for channelsLast). Shared, not copied. CPU tensors only. */
  get data(): Storage {
    this.#live('Tensor.data');
    if (this.#cuda) throw new Error(`Tensor.data: this tensor is on ${this.device}; use toArray() or cpu() to read it`);
    return this.#data;
  }

  /** @internal The device storage of a CUDA tensor. */
  cudaStorage(): CudaStorage {
    if (!this.#cuda) throw new Error('Tensor: not a CUDA tensor');
    return this.#cuda;
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  dim(): number {
    return this.shape.length;
  }

  numel(): number {
    return product(this.shape);
  }

  /** True after `dispose()`. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Hands an op output's storage back for the next output of its size at
   * once, instead of when the garbage collector finds it dead. Optional:
   * outputs that are never disposed are not zeroed and their memory is
   * reused after a collection; disposing keeps a loop's outputs warm in
   * cache (as PyTorch's reference counting frees a tensor at once). Using
   * the tensor afterwards is an error that names it. Tensors that are not
   * unshared op outputs are left to the garbage collector (and stay
   * usable). Cf. `tf.dispose`.
   *
   * @example
   * const y = bn.forward(x);
   * // ... use y ...
   * y.dispose();
   */
  dispose(): void {
    if (!this.#recyclable) return;
    this.#recyclable = false;
    if (!recycle(this.#data as FloatStorage)) return;
    this.#data = this.dtype === 'float64' ? new Float64Array(0) : new Float32Array(0);
    this.#disposed = true;
  }

  size(dim?: number): number | readonly number[] {
    if (dim === undefined) return this.shape;
    const d = dim < 0 ? dim + this.shape.length : dim;
    if (d < 0 || d >= this.shape.length) {
      throw new RangeError(`Dimension out of range (expected to be in range of [${-this.shape.length}, ${this.shape.length - 1}], but got ${dim})`);
    }
    return this.shape[d];
  }

  isContiguous(memoryFormat: MemoryFormat = 'contiguous'): boolean {
    return this.memoryFormat === memoryFormat;
  }

  /** The storage in memory order on the host: the CPU array, or a copy from the device. */
  #hostStorage(): Storage {
    if (!this.#cuda) return this.#data;
    const host = allocate(this.dtype, this.numel());
    if (host.length > 0) this.#cuda.buffer.copyToHost(host);
    return host;
  }

  /**
   * A copy of the values in logical (N, C, ...) order, as numbers: int64
   * tensors come back as a Float64Array (exact below 2^53), float16 and
   * bfloat16 as a Float32Array. CUDA tensors are copied to the host.
   */
  toArray(): FloatStorage {
    this.#live('Tensor.toArray');
    const stored = this.#hostStorage();
    const values = this.memoryFormat === 'contiguous' ? (this.#cuda ? stored : stored.slice()) : relayout(stored, this.shape, false);
    if (this.dtype === 'int64') return Float64Array.from(values as BigInt64Array, Number);
    if (isHalf(this.dtype)) {
      const d = this.dtype;
      return Float32Array.from(values as Uint16Array, (h) => fromHalfBits(h, d));
    }
    return values as FloatStorage;
  }

  /** The single value of a one-element tensor, as a number. */
  item(): number {
    this.#live('Tensor.item');
    if (this.numel() !== 1) {
      throw new RangeError(`a Tensor with ${this.numel()} elements cannot be converted to a scalar`);
    }
    return this.#cuda ? this.toArray()[0] : Number(this.#data[0]);
  }

  clone(): Tensor {
    this.#live('Tensor.clone');
    if (this.#cuda) {
      const buffer = newDeviceBuffer(this.#cuda.index, this.numel() * dtypeSize(this.dtype));
      if (this.numel() > 0) buffer.copyFrom(this.#cuda.buffer);
      return new Tensor(emptyOf(this.dtype), this.shape, this.memoryFormat, this.dtype, { buffer, index: this.#cuda.index });
    }
    if (this.dtype === 'float32' || this.dtype === 'float64') {
      // A slab slice for small tensors (an eval forward clones the running stats each call).
      const copy = smallArray(this.dtype, this.numel());
      copy.set(this.#data as FloatStorage);
      return new Tensor(copy, this.shape, this.memoryFormat, this.dtype);
    }
    return new Tensor(this.#data.slice(), this.shape, this.memoryFormat, this.dtype);
  }

  /** This tensor if already in `memoryFormat`, else a re-laid copy. Cf. `Tensor.contiguous(memory_format=...)`. */
  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor {
    const fmt = checkFormat(memoryFormat, this.shape.length, 'Tensor.contiguous');
    this.#live('Tensor.contiguous');
    if (fmt === this.memoryFormat) return this;
    // On CUDA the relayout goes through the host: batch norm never needs it on a hot path.
    if (this.#cuda) return this.cpu().contiguous(fmt).to(this.device);
    return new Tensor(relayout(this.#data, this.shape, fmt === 'channelsLast'), this.shape, fmt, this.dtype);
  }

  /**
   * This tensor on `device` ('cpu', 'cuda', 'cuda:N'): itself when already
   * there, else a copy. Cf. `Tensor.to`.
   *
   * @example const g = x.to('cuda');
   */
  to(device: Device | 'cuda'): Tensor {
    const target = checkDevice(device, 'Tensor.to');
    this.#live('Tensor.to');
    if (target === this.device) return this;
    if (target === 'cpu') return new Tensor(this.#hostStorage(), this.shape, this.memoryFormat, this.dtype);
    const index = cudaIndex(target);
    const host = this.#cuda ? this.#hostStorage() : this.#data;
    const buffer = newDeviceBuffer(index, this.numel() * dtypeSize(this.dtype));
    if (this.numel() > 0) buffer.copyFromHost(host);
    return new Tensor(emptyOf(this.dtype), this.shape, this.memoryFormat, this.dtype, { buffer, index });
  }

  /** Cf. `Tensor.cuda`. @example const g = x.cuda(); */
  cuda(device = 0): Tensor {
    return this.to(`cuda:${device}`);
  }

  /** Cf. `Tensor.cpu`. @example const h = g.cpu(); */
  cpu(): Tensor {
    return this.isCuda ? this.to('cpu') : this;
  }

  /** @internal Moves this tensor's storage to `device` in place (Module.to keeps parameter identity). */
  moveTo_(device: Device | 'cuda'): this {
    const moved = this.to(device);
    if (moved === this) return this;
    this.#data = moved.#data;
    this.#cuda = moved.#cuda;
    this.#recyclable = false;
    return this;
  }

  /** @internal Converts this tensor's values to `dtype` in place (Module.to(dtype) keeps parameter identity). */
  retype_(dtype: DType): this {
    if (checkDtype(dtype, 'Tensor.retype_') === this.dtype) return this;
    const converted = new Tensor(allocate(dtype, this.numel()), this.shape, this.memoryFormat, dtype).copy_(this).to(this.device);
    this.#data = converted.#data;
    this.#cuda = converted.#cuda;
    this.#recyclable = false;
    (this as { dtype: DType }).dtype = dtype;
    return this;
  }

  /** Fills in place. */
  fill_(value: number): this {
    this.#live('Tensor.fill_');
    if (this.#cuda) return this.copy_(full(this.shape, value, { dtype: this.dtype, memoryFormat: this.memoryFormat }));
    if (this.dtype === 'int64') (this.#data as BigInt64Array).fill(BigInt(Math.trunc(value)));
    else if (isHalf(this.dtype)) (this.#data as Uint16Array).fill(toHalfBits(value, this.dtype));
    else (this.#data as FloatStorage).fill(value);
    return this;
  }

  zero_(): this {
    return this.fill_(0);
  }

  /**
   * Copies `src`'s values into this tensor in place, converting dtype,
   * device and memory format as needed. Cf. `Tensor.copy_`.
   */
  copy_(src: Tensor): this {
    if (!(src instanceof Tensor)) throw new TypeError('copy_: source must be a Tensor');
    this.#live('copy_', 'destination tensor');
    src.#live('copy_', 'source tensor');
    if (src.shape.length !== this.shape.length || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new RangeError(`copy_: shape [${src.shape.join(', ')}] does not match [${this.shape.join(', ')}]`);
    }
    if (this.#cuda) {
      const staged = (src.isCuda ? src.cpu() : src).contiguous(this.memoryFormat);
      const host = staged.dtype === this.dtype ? staged.data : tensor(staged.toArray(), staged.shape, { dtype: this.dtype }).contiguous(this.memoryFormat).data;
      if (this.numel() > 0) this.#cuda.buffer.copyFromHost(host);
      return this;
    }
    const source = src.isCuda ? src.cpu() : src;
    const values: Storage = source.memoryFormat === this.memoryFormat ? source.data : source.contiguous(this.memoryFormat).data;
    if (this.dtype === source.dtype) {
      (this.#data as Float32Array).set(values as Float32Array);
    } else if (this.dtype === 'int64') {
      const numbers = source.dtype === 'int64' ? (values as BigInt64Array) : logicalNumbers(values, source.dtype);
      (this.#data as BigInt64Array).set(BigInt64Array.from(numbers as ArrayLike<number>, (v) => BigInt(Math.trunc(Number(v)))));
    } else if (isHalf(this.dtype)) {
      const d = this.dtype;
      const numbers = logicalNumbers(values, source.dtype);
      (this.#data as Uint16Array).set(Uint16Array.from(numbers, (v) => toHalfBits(v, d)));
    } else {
      (this.#data as FloatStorage).set(logicalNumbers(values, source.dtype));
    }
    return this;
  }

  toString(): string {
    if (this.#disposed) return `tensor(<disposed>, shape=[${this.shape.join(', ')}], dtype=${this.dtype})`;
    const head = Array.from(this.toArray().subarray(0, 8), String).join(', ');
    const more = this.numel() > 8 ? ', ...' : '';
    const fmt = this.memoryFormat === 'channelsLast' ? ", memoryFormat='channelsLast'" : '';
    const dev = this.#cuda ? `, device='${this.device}'` : '';
    return `tensor([${head}${more}], shape=[${this.shape.join(', ')}], dtype=${this.dtype}${dev}${fmt})`;
  }
}

/** Values of a storage of `dtype` as plain numbers (same order). */
function logicalNumbers(values: Storage, dtype: DType): Float64Array {
  if (dtype === 'int64') return Float64Array.from(values as BigInt64Array, Number);
  if (isHalf(dtype)) return Float64Array.from(values as Uint16Array, (h) => fromHalfBits(h, dtype));
  return Float64Array.from(values as FloatStorage);
}

function emptyOf(dtype: DType): Storage {
  return allocate(dtype, 0);
}

function newDeviceBuffer(index: number, bytes: number): import('./native').DeviceBuffer {
  const Ctor = native.cuda.DeviceBuffer;
  if (!Ctor) throw new Error(`CUDA is not available: ${native.cuda.unavailableReason()}`);
  return new Ctor(index, bytes);
}

/** @internal A new CUDA tensor with uninitialized storage. */
export function emptyCuda(shape: readonly number[], dtype: DType, device: Device, memoryFormat: MemoryFormat = 'contiguous'): Tensor {
  const index = cudaIndex(device);
  const buffer = newDeviceBuffer(index, product(shape) * dtypeSize(dtype));
  return new Tensor(emptyOf(dtype), shape, memoryFormat, dtype, { buffer, index });
}

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
    if (t.isCuda) super(emptyOf(t.dtype), t.shape, t.memoryFormat, t.dtype, t.cudaStorage());
    else super(t.data, t.shape, t.memoryFormat, t.dtype);
    this.requiresGrad = requiresGrad;
  }
}

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

function filled(shape: readonly number[], value: number, opts: TensorOptions, where: string): Tensor {
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

// xoshiro128** seeded through splitmix32: small, fast and well distributed.
class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;
  private seed = 0;

  constructor(seed: number) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): void {
    this.seed = seed;
    let z = (Math.trunc(seed) >>> 0) ^ Math.trunc(seed / 4294967296);
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (t ^ (t >>> 16)) >>> 0;
    }
    this.spare = null;
  }

  initialSeed(): number {
    return this.seed;
  }

  private nextU32(): number {
    const s = this.s;
    const result = Math.imul(((Math.imul(s[1], 5) << 7) | (Math.imul(s[1], 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ((s[3] << 11) | (s[3] >>> 21)) >>> 0;
    return result;
  }

  /** Uniform in (0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

// PyTorch's default generator also starts from a fixed seed.
const defaultGenerator = new Generator(67280421310721);

/** Seeds the generator behind `randn`/`rand`. Cf. `torch.manual_seed`. @example manualSeed(0); */
export function manualSeed(seed: number): void {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new TypeError('manualSeed: seed must be a finite number');
  defaultGenerator.manualSeed(seed);
}

/** Cf. `torch.initial_seed`. */
export function initialSeed(): number {
  return defaultGenerator.initialSeed();
}

function sampled(shape: readonly number[], opts: TensorOptions, where: string, draw: () => number): Tensor {
  const dtype = opts.dtype ?? 'float32';
  if (dtype === 'int64') throw new TypeError(`${where}: dtype must be a floating dtype`);
  const host = filled(shape, 0, { ...opts, device: 'cpu', dtype: 'float64' }, where);
  const d = host.data as Float64Array;
  for (let i = 0; i < d.length; i++) d[i] = draw();
  const t = filled(shape, 0, { ...opts, device: 'cpu' }, where);
  t.copy_(host);
  return t.to(checkDevice(opts.device, where));
}

/** Standard normal samples. Cf. `torch.randn`. @example manualSeed(1); const x = randn([8, 4]); */
export function randn(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return sampled(shape, opts, 'randn', () => defaultGenerator.normal());
}

/** Uniform samples in [0, 1). Cf. `torch.rand`. @example const u = rand([3]); */
export function rand(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return sampled(shape, opts, 'rand', () => defaultGenerator.uniform());
}
