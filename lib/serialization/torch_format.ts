// torch.save's zip format (PyTorch >= 1.6): `<archive>/data.pkl` (pickle
// protocol 2 of the object, tensors as `_rebuild_tensor_v2` calls on
// persistent-id storages), `<archive>/data/<key>` (each storage's raw
// little-endian bytes), `<archive>/version`, and in newer files
// `<archive>/byteorder`. Cf. torch/serialization.py (_save, _load).
import * as os from 'node:os';
import * as path from 'node:path';
import { Parameter } from '../parameter';
import { allocate, DType, Storage, Tensor } from '../tensor';
import { StateDictMetadata, getMetadata, setMetadata } from '../state_dict_metadata';
import { PyDict, StorageRef, STORAGE_TYPES, TensorRef, unpickle } from './pickle_reader';
import { OrderedDictRecord, PickleWriter, TensorRecord } from './pickle_writer';
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

class TorchFileLoader {
  private readonly storages = new Map<string, { dtype: DType; data: Storage }>();
  private readonly bigEndian: boolean;

  constructor(private readonly zip: ZipReader, private readonly prefix: string) {
    const order = `${prefix}/byteorder`;
    this.bigEndian = zip.has(order) && zip.read(order).toString('latin1').trim() === 'big';
  }

  private storage(ref: StorageRef, where: string): { dtype: DType; data: Storage } {
    const cached = this.storages.get(ref.key);
    if (cached) return cached;
    const dtype = SUPPORTED[ref.storageType];
    if (dtype === undefined) {
      const torchDtype = STORAGE_TYPES[ref.storageType]?.torchDtype ?? ref.storageType;
      throw new TypeError(`${this.zip.path}: ${where} has dtype ${torchDtype}, which syncbn tensors do not hold ` +
        '(supported: float32, float64, float16, bfloat16, int64)');
    }
    const record = `${this.prefix}/data/${ref.key}`;
    const need = ref.numel * STORAGE_TYPES[ref.storageType].itemSize;
    // Checked before allocating, so a corrupt numel cannot ask for memory the file does not back.
    if (this.zip.sizeOf(record) < need) {
      throw new RangeError(`${this.zip.path}: ${where}'s storage '${ref.key}' should hold ${ref.numel} elements (${need} bytes), its record has ${this.zip.sizeOf(record)}`);
    }
    const data = allocate(dtype, ref.numel);
    const bytes = bytesOf(data);
    // Straight from the file into the tensor's memory: one copy of the checkpoint, never two.
    this.zip.readEntryInto(record, bytes);
    if (this.bigEndian) swapBytes(bytes, STORAGE_TYPES[ref.storageType].itemSize);
    const entry = { dtype, data };
    this.storages.set(ref.key, entry);
    return entry;
  }

  tensor(ref: TensorRef, where: string): Tensor {
    const { dtype, data } = this.storage(ref.storage, where);
    const { offset, size, stride } = ref;
    const n = size.reduce((a, b) => a * b, 1);
    let last = offset;
    for (let i = 0; i < size.length; i++) if (size[i] > 0) last += (size[i] - 1) * stride[i];
    if (n > 0 && last >= data.length) {
      throw new RangeError(`${this.zip.path}: ${where} (size [${size.join(', ')}], stride [${stride.join(', ')}], offset ${offset}) ` +
        `reaches past its storage of ${data.length} elements`);
    }
    let t: Tensor;
    // Views that are contiguous in either memory format share the loaded storage.
    if (stridesMatch(size, stride, rowMajorStrides(size))) {
      t = new Tensor(data.subarray(offset, offset + n) as Storage, size, 'contiguous', dtype);
    } else if ((size.length === 4 || size.length === 5) && stridesMatch(size, stride, channelsLastStrides(size))) {
      t = new Tensor(data.subarray(offset, offset + n) as Storage, size, 'channelsLast', dtype);
    } else {
      t = new Tensor(gather(data, dtype, offset, size, stride), size, 'contiguous', dtype);
    }
    return ref.parameter ? new Parameter(t, ref.requiresGrad) : t;
  }

  /** The unpickled value with tensors read and dicts as plain objects. */
  convert(v: unknown, where: string): unknown {
    if (v instanceof TensorRef) return this.tensor(v, where);
    if (v instanceof StorageRef) throw new TypeError(`${this.zip.path}: ${where} is a bare storage; only tensors are loaded`);
    if (Array.isArray(v)) return v.map((x, i) => this.convert(x, `${where}[${i}]`));
    if (v instanceof PyDict) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of v) {
        const key = String(k);
        out[key] = this.convert(x, where === 'the checkpoint' ? `'${key}'` : `${where}['${key}']`);
      }
      const meta = v.attributes?.get('_metadata');
      if (meta instanceof PyDict) setMetadata(out, plain(meta) as StateDictMetadata);
      return out;
    }
    return v;
  }
}

/** A metadata dict as plain objects (it holds only strings, numbers and dicts). */
function plain(v: unknown): unknown {
  if (v instanceof PyDict) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) out[String(k)] = plain(x);
    return out;
  }
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

/** Loads a torch.save zip archive. */
export function loadTorchZip(file: string): unknown {
  const zip = new ZipReader(file);
  try {
    const names = [...zip.entries.keys()];
    if (names.some((n) => n.endsWith('/constants.pkl'))) {
      throw new TypeError(`${file}: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; ` +
        "in Python, save its weights with torch.save(model.state_dict(), 'model.pt')");
    }
    const pkl = names.find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl === undefined) throw new TypeError(`${file}: a zip archive without <archive>/data.pkl, so not a torch.save checkpoint`);
    const prefix = pkl.slice(0, pkl.indexOf('/'));
    const loader = new TorchFileLoader(zip, prefix);
    const result = unpickle(zip.read(pkl), `${file}: data.pkl`, (pid) => {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
        throw new TypeError(`${file}: data.pkl: unsupported persistent id (expected ('storage', type, key, location, numel))`);
      }
      const [, type, key, location, numel] = pid as [string, unknown, unknown, unknown, unknown];
      const typeName = (type as { name?: unknown })?.name;
      if (typeof typeName !== 'string' || typeof key !== 'string' || typeof location !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
        throw new TypeError(`${file}: data.pkl: malformed storage reference`);
      }
      return new StorageRef(typeName, key, location, numel);
    });
    return loader.convert(result, 'the checkpoint');
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
    if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype && (v === obj || getMetadata(v) !== null)) {
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
