// An allow-list unpickler for what torch.save puts in data.pkl: dicts and
// ordered dicts, lists, tuples, numbers, strings, storages (persistent ids)
// and the tensor rebuild calls. Nothing is ever imported or called: GLOBAL
// resolves only names on the list below to inert markers, and REDUCE knows
// what each marker builds. Anything else is refused with the name it asked
// for, so a malicious .pt cannot run code. Cf. torch/_weights_only_unpickler.py.
//
// Written here rather than taken from npm: the JavaScript pickle parsers
// (pickleparser and the like) build arbitrary class instances through
// registries, while this reader must know each allowed call's meaning and
// refuse everything else.

/** A name GLOBAL resolved to: inert, only compared by REDUCE/persistent ids. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get path(): string {
    return `${this.module}.${this.name}`;
  }
}

/** dict and collections.OrderedDict; `attributes` holds what BUILD set (PyTorch's `_metadata`). */
export class PyDict extends Map<unknown, unknown> {
  ordered = false;
  attributes: Map<string, unknown> | null = null;
}

/** A storage named by a persistent id: ('storage', torch.FloatStorage, key, location, numel). */
export class StorageRef {
  constructor(readonly storageType: string, readonly key: string, readonly location: string, readonly numel: number) {}
}

/** A `_rebuild_tensor_v2(storage, offset, size, stride, ...)` call, materialized later. */
export class TensorRef {
  parameter = false;
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
    public requiresGrad: boolean,
  ) {}
}

/** Storage classes by the name torch.save pickles (torch.FloatStorage ...), with their element sizes. */
export const STORAGE_TYPES: Readonly<Record<string, { torchDtype: string; itemSize: number }>> = {
  FloatStorage: { torchDtype: 'torch.float32', itemSize: 4 },
  DoubleStorage: { torchDtype: 'torch.float64', itemSize: 8 },
  HalfStorage: { torchDtype: 'torch.float16', itemSize: 2 },
  BFloat16Storage: { torchDtype: 'torch.bfloat16', itemSize: 2 },
  LongStorage: { torchDtype: 'torch.int64', itemSize: 8 },
  IntStorage: { torchDtype: 'torch.int32', itemSize: 4 },
  ShortStorage: { torchDtype: 'torch.int16', itemSize: 2 },
  CharStorage: { torchDtype: 'torch.int8', itemSize: 1 },
  ByteStorage: { torchDtype: 'torch.uint8', itemSize: 1 },
  BoolStorage: { torchDtype: 'torch.bool', itemSize: 1 },
  ComplexFloatStorage: { torchDtype: 'torch.complex64', itemSize: 8 },
  ComplexDoubleStorage: { torchDtype: 'torch.complex128', itemSize: 16 },
};

const CALLABLE = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
]);

function allowed(module: string, name: string): boolean {
  if (CALLABLE.has(`${module}.${name}`)) return true;
  return module === 'torch' && Object.prototype.hasOwnProperty.call(STORAGE_TYPES, name);
}

const MARK = Symbol('mark');

class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(private readonly buf: Buffer, private readonly where: string, private readonly persistentLoad: (pid: unknown) => unknown) {}

  private fail(message: string): never {
    throw new Error(`${this.where}: ${message}`);
  }

  private take(n: number): Buffer {
    if (this.pos + n > this.buf.length) this.fail('the pickle ends early (truncated file?)');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('the pickle ends early (truncated file?)');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail('malformed pickle: stack underflow');
    const v = this.stack.pop();
    if (v === MARK) this.fail('malformed pickle: unexpected mark');
    return v;
  }

  private top(): unknown {
    if (this.stack.length === 0) this.fail('malformed pickle: stack underflow');
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    const at = this.marks.pop();
    if (at === undefined) this.fail('malformed pickle: no mark');
    const items = this.stack.splice(at);
    items.shift();
    return items;
  }

  private pushMark(): void {
    this.marks.push(this.stack.length);
    this.stack.push(MARK);
  }

  private int(v: bigint): number | bigint {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private long(bytes: Buffer): number | bigint {
    if (bytes.length === 0) return 0;
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
    if (bytes[bytes.length - 1] & 0x80) v -= 1n << BigInt(8 * bytes.length);
    return this.int(v);
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof PyDict)) this.fail('malformed pickle: SETITEM(S) on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  }

  private global(module: string, name: string): PyGlobal {
    if (!allowed(module, name)) {
      this.fail(`refusing to load the global '${module}.${name}': syncbn's checkpoint reader only allows what state dicts hold ` +
        '(dicts, OrderedDict, lists, tuples, numbers, strings, torch storages and tensors). If this file is a whole pickled model ' +
        "(torch.save(model)), save its state dict instead: torch.save(model.state_dict(), 'model.pt')");
    }
    return new PyGlobal(module, name);
  }

  private reduce(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof PyGlobal)) this.fail('malformed pickle: REDUCE on something that is not a global');
    if (!Array.isArray(args)) this.fail(`malformed pickle: arguments of ${fn.path} are not a tuple`);
    switch (fn.path) {
      case 'collections.OrderedDict': {
        const d = new PyDict();
        d.ordered = true;
        if (args.length > 0) {
          const pairs = args[0];
          if (!Array.isArray(pairs)) this.fail('OrderedDict(...) with an argument that is not a list of pairs');
          for (const p of pairs) {
            if (!Array.isArray(p) || p.length !== 2) this.fail('OrderedDict(...) with an item that is not a pair');
            d.set(p[0], p[1]);
          }
        }
        return d;
      }
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride, requiresGrad] = args;
        if (!(storage instanceof StorageRef)) this.fail(`${fn.path}: the first argument is not a storage`);
        const ints = (v: unknown, what: string): number[] => {
          if (!Array.isArray(v) || !v.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
            this.fail(`${fn.path}: ${what} is not a tuple of non-negative integers`);
          }
          return v as number[];
        };
        if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) this.fail(`${fn.path}: storage offset is not a non-negative integer`);
        const sz = ints(size, 'size');
        const st = ints(stride, 'stride');
        if (sz.length !== st.length) this.fail(`${fn.path}: size has ${sz.length} dims but stride ${st.length}`);
        return new TensorRef(storage, offset, sz, st, requiresGrad === true);
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state': {
        const [data, requiresGrad] = args;
        if (!(data instanceof TensorRef)) this.fail(`${fn.path}: the data is not a tensor`);
        data.parameter = true;
        data.requiresGrad = requiresGrad === true;
        return data;
      }
      default:
        return this.fail(`refusing to call '${fn.path}': it is not a function the checkpoint reader allows`);
    }
  }

  load(): unknown {
    const buf = this.buf;
    for (;;) {
      if (this.pos >= buf.length) this.fail('the pickle ends without STOP (truncated file?)');
      const op = buf[this.pos++];
      switch (op) {
        case 0x80: { // PROTO
          const proto = this.take(1)[0];
          if (proto > 5) this.fail(`pickle protocol ${proto} is newer than this reader (at most 5)`);
          break;
        }
        case 0x95: // FRAME: a length only, the bytes follow inline
          this.take(8);
          break;
        case 0x2e: // STOP
          return this.pop();
        case 0x28: // MARK
          this.pushMark();
          break;
        case 0x4e: // NONE
          this.stack.push(null);
          break;
        case 0x88: // NEWTRUE
          this.stack.push(true);
          break;
        case 0x89: // NEWFALSE
          this.stack.push(false);
          break;
        case 0x4b: // BININT1
          this.stack.push(this.take(1)[0]);
          break;
        case 0x4d: // BININT2
          this.stack.push(this.take(2).readUInt16LE(0));
          break;
        case 0x4a: // BININT
          this.stack.push(this.take(4).readInt32LE(0));
          break;
        case 0x8a: // LONG1
          this.stack.push(this.long(this.take(this.take(1)[0])));
          break;
        case 0x8b: { // LONG4
          const n = this.take(4).readInt32LE(0);
          if (n < 0) this.fail('malformed pickle: negative LONG4 length');
          this.stack.push(this.long(this.take(n)));
          break;
        }
        case 0x47: // BINFLOAT (big-endian double)
          this.stack.push(this.take(8).readDoubleBE(0));
          break;
        case 0x58: // BINUNICODE
          this.stack.push(this.take(this.take(4).readUInt32LE(0)).toString('utf8'));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.stack.push(this.take(this.take(1)[0]).toString('utf8'));
          break;
        case 0x8d: { // BINUNICODE8
          const n = this.take(8).readBigUInt64LE(0);
          if (n > BigInt(buf.length)) this.fail('the pickle ends early (truncated file?)');
          this.stack.push(this.take(Number(n)).toString('utf8'));
          break;
        }
        case 0x55: // SHORT_BINSTRING (Python 2 str; torch writes ASCII names with it)
          this.stack.push(this.take(this.take(1)[0]).toString('latin1'));
          break;
        case 0x54: // BINSTRING
          this.stack.push(this.take(this.take(4).readInt32LE(0)).toString('latin1'));
          break;
        case 0x43: // SHORT_BINBYTES
          this.stack.push(new Uint8Array(this.take(this.take(1)[0])));
          break;
        case 0x42: // BINBYTES
          this.stack.push(new Uint8Array(this.take(this.take(4).readUInt32LE(0))));
          break;
        case 0x29: // EMPTY_TUPLE
          this.stack.push([]);
          break;
        case 0x74: // TUPLE
          this.stack.push(this.popMark());
          break;
        case 0x85: // TUPLE1
          this.stack.push([this.pop()]);
          break;
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          this.stack.push([a, b]);
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.stack.push([a, b, c]);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.stack.push([]);
          break;
        case 0x6c: // LIST
          this.stack.push(this.popMark());
          break;
        case 0x61: { // APPEND
          const v = this.pop();
          const list = this.top();
          if (!Array.isArray(list)) this.fail('malformed pickle: APPEND to something that is not a list');
          list.push(v);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          const list = this.top();
          if (!Array.isArray(list)) this.fail('malformed pickle: APPENDS to something that is not a list');
          for (const v of items) list.push(v);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.stack.push(new PyDict());
          break;
        case 0x64: { // DICT
          const d = new PyDict();
          this.setItems(d, this.popMark());
          this.stack.push(d);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems(this.top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x71: // BINPUT
          this.memo.set(this.take(1)[0], this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.take(4).readUInt32LE(0), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top());
          break;
        case 0x68: // BINGET
        case 0x6a: { // LONG_BINGET
          const i = op === 0x68 ? this.take(1)[0] : this.take(4).readUInt32LE(0);
          if (!this.memo.has(i)) this.fail(`malformed pickle: memo entry ${i} is not set`);
          this.stack.push(this.memo.get(i));
          break;
        }
        case 0x30: // POP
          if (this.stack[this.stack.length - 1] === MARK) this.popMark();
          else this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.stack.push(this.top());
          break;
        case 0x63: { // GLOBAL
          const module = this.line();
          const name = this.line();
          this.stack.push(this.global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('malformed pickle: STACK_GLOBAL without strings');
          this.stack.push(this.global(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.stack.push(this.reduce(fn, args));
          break;
        }
        case 0x51: // BINPERSID
          this.stack.push(this.persistentLoad(this.pop()));
          break;
        case 0x62: { // BUILD
          const state = this.pop();
          const inst = this.top();
          if (!(inst instanceof PyDict) || !(state instanceof PyDict)) {
            this.fail('refusing BUILD: only a dict\'s attributes (such as a state dict\'s _metadata) may be set');
          }
          inst.attributes ??= new Map();
          for (const [k, v] of state) inst.attributes.set(String(k), v);
          break;
        }
        default:
          this.fail(`refusing pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${this.pos - 1}: it does not occur in state dicts (objects, sets and code are not loaded)`);
      }
    }
  }
}

/**
 * Unpickles `buf` with the allow-list; `persistentLoad` turns each persistent
 * id (a storage reference) into a value. `where` prefixes every error.
 */
export function unpickle(buf: Buffer, where: string, persistentLoad: (pid: unknown) => unknown): unknown {
  return new Unpickler(buf, where, persistentLoad).load();
}
