// The pickle (protocol 2) that torch.save writes as data.pkl, for state
// dicts: an OrderedDict of `torch._utils._rebuild_tensor_v2` calls whose
// storages are persistent ids, with `_metadata` set by BUILD. Only opcodes
// that torch.load(weights_only=True) accepts in PyTorch 1.13 are used for
// tensors, dicts, lists, ints, strings, booleans and None (floats need BINFLOAT,
// which newer PyTorch accepts).

/** What the writer emits for a tensor: its storage reference and view. */
export interface TensorRecord {
  storageClass: string;
  key: string;
  numel: number;
  offset: number;
  size: readonly number[];
  stride: readonly number[];
}

/** An ordered dict (PyTorch's state dict) and its `_metadata` attribute. */
export interface OrderedDictRecord {
  entries: Array<[string, unknown]>;
  metadata: Record<string, Record<string, unknown>> | null;
}

/** An object written as a dict: a plain object, or one without a prototype (as `load` returns dicts). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export class PickleWriter {
  private readonly chunks: Buffer[] = [];

  constructor(private readonly describe: (v: unknown) => TensorRecord | OrderedDictRecord | null) {
    this.op(0x80, 2); // PROTO 2
  }

  private op(...bytes: number[]): void {
    this.chunks.push(Buffer.from(bytes));
  }

  private raw(b: Buffer): void {
    this.chunks.push(b);
  }

  private global(module: string, name: string): void {
    this.raw(Buffer.from(`c${module}\n${name}\n`, 'utf8'));
  }

  private string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = 0x58; // BINUNICODE
    head.writeUInt32LE(b.length, 1);
    this.raw(head);
    this.raw(b);
  }

  private int(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v < 256) return this.op(0x4b, v);
    if (typeof v === 'number' && v >= 0 && v < 65536) return this.op(0x4d, v & 0xff, v >> 8);
    if (typeof v === 'number' && v >= -(2 ** 31) && v < 2 ** 31) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a;
      b.writeInt32LE(v, 1);
      return this.raw(b);
    }
    // LONG1: little-endian two's complement, as short as the sign allows.
    let x = BigInt(v);
    const bytes: number[] = [];
    for (;;) {
      const byte = Number(x & 0xffn);
      bytes.push(byte);
      x >>= 8n;
      if ((x === 0n && (byte & 0x80) === 0) || (x === -1n && (byte & 0x80) !== 0)) break;
    }
    this.op(0x8a, bytes.length, ...bytes);
  }

  private tuple(items: readonly number[]): void {
    if (items.length === 0) return this.op(0x29);
    this.op(0x28);
    for (const v of items) this.int(v);
    this.op(0x74);
  }

  private emptyOrderedDict(): void {
    this.global('collections', 'OrderedDict');
    this.op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  }

  private tensor(t: TensorRecord): void {
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.op(0x28); // MARK (arguments)
    this.op(0x28); // MARK (persistent id)
    this.string('storage');
    this.global('torch', t.storageClass);
    this.string(t.key);
    this.string('cpu');
    this.int(t.numel);
    this.op(0x74, 0x51); // TUPLE, BINPERSID
    this.int(t.offset);
    this.tuple(t.size);
    this.tuple(t.stride);
    this.op(0x89); // requires_grad False, as state_dict()'s detached tensors
    this.emptyOrderedDict(); // backward hooks
    this.op(0x74, 0x52); // TUPLE, REDUCE
  }

  private dict(entries: Array<[string, unknown]>, path: string): void {
    if (entries.length === 0) return;
    this.op(0x28);
    for (const [k, v] of entries) {
      this.string(k);
      this.value(v, path ? `${path}.${k}` : k);
    }
    this.op(0x75); // SETITEMS
  }

  value(v: unknown, path = ''): void {
    const d = this.describe(v);
    if (d !== null && 'key' in d) return this.tensor(d);
    if (d !== null) {
      this.emptyOrderedDict();
      this.dict(d.entries, path);
      if (d.metadata !== null) {
        // BUILD sets the dict's attributes: {'_metadata': OrderedDict(prefix -> {'version': n})}.
        this.op(0x7d); // EMPTY_DICT
        this.string('_metadata');
        this.emptyOrderedDict();
        this.dict(Object.entries(d.metadata), `${path}._metadata`);
        this.op(0x73, 0x62); // SETITEM, BUILD
      }
      return;
    }
    if (v === null || v === undefined) return this.op(0x4e);
    if (v === true) return this.op(0x88);
    if (v === false) return this.op(0x89);
    if (typeof v === 'bigint') return this.int(v);
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) return this.int(v);
      const b = Buffer.alloc(9);
      b[0] = 0x47; // BINFLOAT
      b.writeDoubleBE(v, 1);
      return this.raw(b);
    }
    if (typeof v === 'string') return this.string(v);
    if (Array.isArray(v)) {
      this.op(0x5d); // EMPTY_LIST
      if (v.length > 0) {
        this.op(0x28);
        v.forEach((item, i) => this.value(item, `${path}[${i}]`));
        this.op(0x65); // APPENDS
      }
      return;
    }
    if (isPlainObject(v)) {
      this.op(0x7d); // EMPTY_DICT
      this.dict(Object.entries(v), path);
      return;
    }
    throw new TypeError(`save: cannot write ${path ? `'${path}'` : 'the object'} (${Object.prototype.toString.call(v)}): ` +
      'only tensors, plain objects, arrays, numbers, strings, booleans and null are saved');
  }

  finish(): Buffer {
    this.op(0x2e); // STOP
    return Buffer.concat(this.chunks);
  }
}
