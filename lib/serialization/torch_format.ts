// torch.save's zip format (PyTorch >= 1.6): `<archive>/data.pkl` (pickle
// protocol 2 of the object, tensors as `_rebuild_tensor_v2` calls on
// persistent-id storages), `<archive>/data/<key>` (each storage's raw
// little-endian bytes), `<archive>/version`, and in newer files
// `<archive>/byteorder`. Cf. torch/serialization.py (_save, _load).
import * as os from 'node:os';
import * as path from 'node:path';
import { Parameter } from '../parameter';
import { allocate, dtypeSize, DType, Storage, Tensor } from '../tensor';
import { StateDictMetadata, getMetadata, setMetadata } from '../state_dict_metadata';
import { COST, LoadBudget, MAX_DEPTH, shown } from './budget';
import { keyString, PyDict, PyGlobal, StorageRef, STORAGE_TYPES, TensorRef, unpickle } from './pickle_reader';
import { isPlainObject, OrderedDictRecord, PickleWriter, TensorRecord } from './pickle_writer';
import { ZipReader, ZipWriter } from './zip';

const SUPPORTED: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
};

const STORAGE_CLASS: Readonly<Record<DType, string>> = {
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  int64: 'LongStorage',
};

function bytesOf(a: Storage): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function swapBytes(bytes: Uint8Array, itemSize: number): void {
  for (let i = 0; i < bytes.length; i += itemSize) bytes.subarray(i, i + itemSize).reverse();
}

function rowMajorStrides(size: readonly number[]): number[] {
  const s = new Array<number>(size.length);
  let acc = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= size[i];
  }
  return s;
}

/** Strides of (N, C, ...spatial) laid out N, ...spatial, C. */
function channelsLastStrides(size: readonly number[]): number[] {
  const s = new Array<number>(size.length);
  const c = size[1];
  s[1] = 1;
  let acc = c;
  for (let i = size.length - 1; i >= 2; i--) {
    s[i] = acc;
    acc *= size[i];
  }
  s[0] = acc;
  return s;
}

/** Equal where it matters: strides of size-1 dims are free in PyTorch. */
function stridesMatch(size: readonly number[], stride: readonly number[], want: readonly number[]): boolean {
  return size.every((d, i) => d <= 1 || stride[i] === want[i]);
}

/** Copies a strided view out of `src` into a new row-major array. */
function gather(src: Storage, dtype: DType, offset: number, size: readonly number[], stride: readonly number[]): Storage {
  const n = size.reduce((a, b) => a * b, 1);
  const out = allocate(dtype, n) as unknown as { [i: number]: number | bigint };
  const from = src as unknown as { [i: number]: number | bigint };
  const index = new Array<number>(size.length).fill(0);
  let at = offset;
  for (let i = 0; i < n; i++) {
    out[i] = from[at];
    for (let d = size.length - 1; d >= 0; d--) {
      index[d]++;
      at += stride[d];
      if (index[d] < size[d]) break;
      at -= stride[d] * size[d];
      index[d] = 0;
    }
  }
  return out as unknown as Storage;
}

/** Where a value sits in the checkpoint, for messages: kept as a chain, spelled out only when one is needed. */
class Where {
  constructor(readonly parent: Where | null, readonly key: string | number) {}

  toString(): string {
    const parts: string[] = [];
    for (let w: Where | null = this; w !== null; w = w.parent) {
      const first = w.parent === null;
      parts.push(typeof w.key === 'number' ? `${first ? 'the checkpoint' : ''}[${w.key}]` : first ? `'${shown(w.key)}'` : `['${shown(w.key)}']`);
    }
    parts.reverse();
    // Deep nesting: the first two steps and the last four.
    return parts.length > 8 ? `${parts.slice(0, 2).join('')}...${parts.slice(-4).join('')}` : parts.join('');
  }
}

function place(where: Where | null): string {
  return where === null ? 'the checkpoint' : where.toString();
}

class TorchFileLoader {
  private readonly storages = new Map<string, { dtype: DType; data: Storage }>();
  // Each parsed object converted once: what the pickle shares (memo references) stays shared, a cycle stays a cycle.
  private readonly converted = new Map<object, unknown>();
  private readonly bigEndian: boolean;

  constructor(private readonly zip: ZipReader, private readonly prefix: string, private readonly budget: LoadBudget) {
    const order = `${prefix}/byteorder`;
    let mark = 'little';
    if (zip.has(order)) {
      if (zip.sizeOf(order) > 16) budget.fail(`the byteorder record has ${zip.sizeOf(order)} bytes; expected 'little' or 'big'`);
      mark = zip.read(order).toString('latin1');
    }
    if (mark !== 'little' && mark !== 'big') budget.fail(`unknown byte order '${shown(mark)}' in ${order} (expected 'little' or 'big')`);
    this.bigEndian = mark === 'big';
  }

  private storage(ref: StorageRef, where: Where | null): { dtype: DType; data: Storage } {
    const cached = this.storages.get(ref.key);
    if (cached) return cached;
    const dtype = Object.prototype.hasOwnProperty.call(SUPPORTED, ref.storageType) ? SUPPORTED[ref.storageType] : undefined;
    if (dtype === undefined) {
      const torchDtype = STORAGE_TYPES[ref.storageType]?.torchDtype ?? ref.storageType;
      throw new TypeError(`${this.zip.path}: ${place(where)} has dtype ${torchDtype}, which syncbn tensors do not hold ` +
        '(supported: float32, float64, float16, bfloat16, int64)');
    }
    const record = `${this.prefix}/data/${ref.key}`;
    const need = ref.numel * STORAGE_TYPES[ref.storageType].itemSize;
    // Checked before allocating, so a corrupt numel cannot ask for memory the file does not back.
    if (this.zip.sizeOf(record) < need) {
      throw new RangeError(`${this.zip.path}: ${place(where)}'s storage '${shown(ref.key)}' should hold ${ref.numel} elements (${need} bytes), its record has ${this.zip.sizeOf(record)}`);
    }
    // Records may overlap in a crafted archive: every storage is paid for.
    this.budget.bytes(need + COST.object, () => `the storage '${shown(ref.key)}' of ${place(where)}`);
    const data = allocate(dtype, ref.numel);
    const bytes = bytesOf(data);
    // Straight from the file into the tensor's memory: one copy of the checkpoint, never two.
    this.zip.readEntryInto(record, bytes);
    if (this.bigEndian) swapBytes(bytes, STORAGE_TYPES[ref.storageType].itemSize);
    const entry = { dtype, data };
    this.storages.set(ref.key, entry);
    return entry;
  }

  private tensor(ref: TensorRef, where: Where | null): Tensor {
    const { dtype, data } = this.storage(ref.storage, where);
    const { offset, size, stride } = ref;
    const shape = (): string => `size [${size.join(', ')}], stride [${stride.join(', ')}], offset ${offset}`;
    // Element count and last element reached, checked against 2^53 as they grow (size and stride are at most MAX_DIMS long).
    let n = size.includes(0) ? 0 : 1;
    let last = offset;
    for (let i = 0; i < size.length && n > 0; i++) {
      n *= size[i];
      last += (size[i] - 1) * stride[i];
      if (n > Number.MAX_SAFE_INTEGER || last > Number.MAX_SAFE_INTEGER) this.budget.fail(`${place(where)} (${shape()}) spans more than 2^53 elements`);
    }
    if (n > 0 && last >= data.length) {
      throw new RangeError(`${this.zip.path}: ${place(where)} (${shape()}) reaches past its storage of ${data.length} elements`);
    }
    this.budget.bytes(COST.object, 'a tensor');
    let t: Tensor;
    // Views that are contiguous in either memory format share the loaded storage.
    if (stridesMatch(size, stride, rowMajorStrides(size))) {
      t = new Tensor(data.subarray(offset, offset + n) as Storage, size, 'contiguous', dtype);
    } else if ((size.length === 4 || size.length === 5) && stridesMatch(size, stride, channelsLastStrides(size))) {
      t = new Tensor(data.subarray(offset, offset + n) as Storage, size, 'channelsLast', dtype);
    } else {
      // Any other view is copied out, dense: an expanded one (stride 0, overlapping strides) can need far more than its storage.
      const bytes = n * dtypeSize(dtype);
      if (bytes > this.budget.left) {
        this.budget.fail(`${place(where)} is a view (${shape()}) of a storage of ${data.length} elements; syncbn tensors are dense, ` +
          `so it would be copied out into ${bytes} bytes, more than load may still allocate for this file (${this.budget.left} bytes; ` +
          `${this.budget.describeLimit()}). PyTorch keeps such views lazy. If the file is trusted, raise the limit by at least ` +
          `that much: load(path, { maxBytes: ${this.budget.maxBytes + bytes} })`);
      }
      this.budget.bytes(bytes, 'a view');
      t = new Tensor(gather(data, dtype, offset, size, stride), size, 'contiguous', dtype);
    }
    return ref.parameter ? new Parameter(t, ref.requiresGrad) : t;
  }

  /** The unpickled value with tensors read and dicts as null-prototype objects (so that '__proto__' is just a key). */
  convert(v: unknown, where: Where | null, depth: number): unknown {
    if (v === null || typeof v !== 'object') return v;
    const done = this.converted.get(v);
    if (done !== undefined) return done;
    if (depth >= MAX_DEPTH) this.budget.fail(`${place(where)} nests deeper than ${MAX_DEPTH} levels`);
    const inner = (x: unknown, key: string | number): unknown =>
      x !== null && typeof x === 'object' ? this.convert(x, new Where(where, key), depth + 1) : x;
    if (v instanceof TensorRef) {
      const t = this.tensor(v, where);
      this.converted.set(v, t);
      return t;
    }
    if (v instanceof StorageRef) throw new TypeError(`${this.zip.path}: ${place(where)} is a bare storage; only tensors are loaded`);
    if (Array.isArray(v)) {
      // Lists and tuples are the reader's own arrays: converted in place.
      this.converted.set(v, v);
      this.budget.step(v.length, 'data.pkl');
      for (let i = 0; i < v.length; i++) v[i] = inner(v[i], i);
      return v;
    }
    if (v instanceof PyDict) {
      this.budget.step(v.size, 'data.pkl');
      this.budget.bytes(COST.container + COST.entry * v.size, 'reading data.pkl');
      const out = Object.create(null) as Record<string, unknown>;
      this.converted.set(v, out);
      for (const [k, x] of v) {
        const key = keyString(k, this.budget, (m) => this.budget.fail(`${place(where)}: ${m}`));
        out[key] = inner(x, key);
      }
      const meta = v.attributes?.get('_metadata');
      if (meta instanceof PyDict) setMetadata(out, inner(meta, '_metadata') as StateDictMetadata);
      return out;
    }
    return v;
  }
}

/** Loads a torch.save zip archive within `budget`. */
export function loadTorchZip(file: string, budget: LoadBudget): unknown {
  const zip = new ZipReader(file, budget);
  try {
    const names = [...zip.entries.keys()];
    if (names.some((n) => n.endsWith('/constants.pkl'))) {
      throw new TypeError(`${file}: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; ` +
        "in Python, save its weights with torch.save(model.state_dict(), 'model.pt')");
    }
    const pkl = names.find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl === undefined) throw new TypeError(`${file}: a zip archive without <archive>/data.pkl, so not a torch.save checkpoint`);
    const prefix = pkl.slice(0, pkl.indexOf('/'));
    const loader = new TorchFileLoader(zip, prefix, budget);
    const result = unpickle(zip.read(pkl), `${file}: data.pkl`, budget, (pid) => {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
        throw new TypeError(`${file}: data.pkl: unsupported persistent id (expected ('storage', type, key, location, numel))`);
      }
      const [, type, key, location, numel] = pid as [string, unknown, unknown, unknown, unknown];
      if (!(type instanceof PyGlobal) || type.module !== 'torch' || typeof key !== 'string' || typeof location !== 'string' ||
        typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
        throw new TypeError(`${file}: data.pkl: malformed storage reference (expected ('storage', a torch storage class, ` +
          'a key, a location, an element count below 2^53))');
      }
      return new StorageRef(type.name, key, location, numel);
    });
    return loader.convert(result, null, 0);
  } finally {
    zip.close();
  }
}

/**
 * Writes `obj` (a state dict, or plain objects/arrays of them) in torch.save's
 * zip format, readable by `torch.load(path, weights_only=True)`.
 */
export function saveTorchZip(obj: unknown, file: string, forceZip64 = false): void {
  if (os.endianness() !== 'LE') throw new Error('save: writing checkpoints on a big-endian host is not supported');
  const storages = new Map<Storage, { key: string; bytes: Uint8Array }>();
  const describe = (v: unknown): TensorRecord | OrderedDictRecord | null => {
    if (v instanceof Tensor) {
      if (v.disposed) throw new Error('save: a tensor in the state dict was disposed');
      const host = v.cpu();
      const data = host.data;
      let s = storages.get(data);
      if (!s) {
        s = { key: String(storages.size), bytes: bytesOf(data) };
        storages.set(data, s);
      }
      const stride = host.memoryFormat === 'channelsLast' ? channelsLastStrides(host.shape) : rowMajorStrides(host.shape);
      return { storageClass: STORAGE_CLASS[host.dtype], key: s.key, numel: data.length, offset: 0, size: host.shape, stride };
    }
    if (isPlainObject(v) && (v === obj || getMetadata(v) !== null)) {
      return { entries: Object.entries(v as Record<string, unknown>), metadata: getMetadata(v) };
    }
    return null;
  };
  const pickler = new PickleWriter(describe);
  pickler.value(obj);
  const pkl = pickler.finish();
  const archive = path.basename(file).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_') || 'archive';
  const zip = new ZipWriter(file, forceZip64);
  try {
    zip.add(`${archive}/data.pkl`, pkl);
    for (const { key, bytes } of storages.values()) zip.add(`${archive}/data/${key}`, bytes);
    zip.add(`${archive}/version`, Buffer.from('3\n'));
  } catch (e) {
    zip.abort();
    throw e;
  }
  zip.finish();
}
