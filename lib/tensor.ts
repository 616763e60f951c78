// Tensor: storage + shape + dtype + device + memory format. No general strides:
// a tensor is laid out either N,C,... ("contiguous") or N,...,C ("channelsLast").
// Beside it: the half-float codec (half_float.ts), Parameter (parameter.ts),
// the factories (factories.ts) and random numbers (random.ts).
import { fromHalfBits, isHalf, toHalfBits } from './half_float';
import { native, NativeShape } from './native';
import { adopt, recycle, smallArray } from './storage';

/**
 * Element types. `int64` exists for counters such as `num_batches_tracked`;
 * `float16` and `bfloat16` are held on the host as Uint16Array bits and
 * computed in float32, on the CPU and on CUDA.
 */
export type DType = 'float32' | 'float64' | 'int64' | 'float16' | 'bfloat16';
/** The dtypes whose host storage is a Float32Array or Float64Array. */
export type FloatDType = 'float32' | 'float64';
/** The floating dtypes: what batch norm and its layers take. */
export type FloatingDType = Exclude<DType, 'int64'>;
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

/** @internal The number of elements of a shape. */
export function product(dims: readonly number[]): number {
  let p = 1;
  for (const d of dims) p *= d;
  return p;
}

/** The (N, C, inner) view of a shape of rank >= 2. */
export function batchView(shape: readonly number[]): NativeShape {
  return [shape[0], shape[1], product(shape.slice(2))];
}

/** @internal Throws unless `dtype` is one of the five dtypes. */
export function checkDtype(dtype: unknown, where: string): DType {
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

/** @internal Parses a memoryFormat option for a tensor of `rank` dimensions. */
export function checkFormat(format: unknown, rank: number, where: string): MemoryFormat {
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
    if (!recycle(this.#data as FloatStorage | Uint16Array)) return;
    this.#data = emptyOf(this.dtype);
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
    if (this.#cuda) return this.copy_(new Tensor(allocate(this.dtype, this.numel()), this.shape, this.memoryFormat, this.dtype).fill_(value));
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
      const host = staged.dtype === this.dtype ? staged.data : new Tensor(allocate(this.dtype, staged.numel()), staged.shape, this.memoryFormat, this.dtype).copy_(staged).data;
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

