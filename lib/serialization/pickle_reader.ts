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
import { COST, LoadBudget, MAX_DEPTH, MAX_DIMS, shown } from './budget';

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

/** Longest LONG1/LONG4 decoded (an integer of 8 Mi bits); a checkpoint's integers fit in 8 bytes. */
const MAX_LONG_BYTES = 1 << 20;
/** Longest module or class name GLOBAL may name: the allowed ones are short. */
const MAX_GLOBAL_NAME = 200;

class Unpickler {
  private pos = 0;
  private readonly stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(
    private readonly buf: Buffer,
    private readonly where: string,
    private readonly budget: LoadBudget,
    private readonly persistentLoad: (pid: unknown) => unknown,
  ) {
    budget.allowSteps(buf.length);
  }

  private fail(message: string): never {
    throw new Error(`${this.where}: ${message}`);
  }

  /** Charges `n` bytes of working memory. */
  private charge(n: number): void {
    this.budget.bytes(n, 'reading data.pkl');
  }

  /** The next `n` bytes; `n` is an unsigned length read from the file, checked against what is left. */
  private take(n: number): Buffer {
    if (n > this.buf.length - this.pos) this.endsEarly(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private endsEarly(n: number | bigint): never {
    this.fail(`the pickle ends early: ${n} bytes are asked for at byte ${this.pos}, where ${this.buf.length - this.pos} remain (truncated or corrupt file?)`);
  }

  private u8(): number {
    return this.take(1)[0];
  }

  private u32(): number {
    return this.take(4).readUInt32LE(0);
  }

  private line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('the pickle ends early (truncated file?)');
    this.charge(COST.string(end - this.pos));
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  /** A string of `n` bytes at the read position, charged before it is made. */
  private text(n: number, encoding: 'utf8' | 'latin1'): string {
    const bytes = this.take(n);
    this.charge(COST.string(n));
    return bytes.toString(encoding);
  }

  private push(v: unknown): void {
    this.charge(COST.slot);
    this.stack.push(v);
  }

  /** A new container of `items` slots. */
  private pushNew(v: unknown, items: number): void {
    this.charge(COST.container + COST.slot * (items + 1));
    this.stack.push(v);
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail('malformed pickle: stack underflow');
    const v = this.stack.pop();
    if (v === MARK) this.fail('malformed pickle: unexpected mark');
    return v;
  }

  private top(): unknown {
    if (this.stack.length === 0) this.fail('malformed pickle: stack underflow');
    const v = this.stack[this.stack.length - 1];
    // A MARK is not a value: memoized or duplicated, it would come out of APPENDS as one.
    if (v === MARK) this.fail('malformed pickle: unexpected mark');
    return v;
  }

  /** The items above the last MARK, removed from the stack with it (a new array, charged). */
  private popMark(): unknown[] {
    const at = this.marks.pop();
    if (at === undefined) this.fail('malformed pickle: no mark');
    const k = this.stack.length - at - 1;
    this.budget.step(k, 'data.pkl');
    this.charge(COST.container + COST.slot * k);
    const items = this.stack.slice(at + 1);
    this.stack.length = at;
    return items;
  }

  private pushMark(): void {
    // A MARK opens a level of nesting (a tuple, list or dict being built).
    if (this.marks.length >= MAX_DEPTH) this.fail(`MARKs nest deeper than ${MAX_DEPTH} levels at byte ${this.pos - 1}`);
    this.charge(2 * COST.slot);
    this.marks.push(this.stack.length);
    this.stack.push(MARK);
  }

  private int(v: bigint): number | bigint {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  /** A little-endian two's complement integer, in time linear in its length. */
  private long(bytes: Buffer): number | bigint {
    const n = bytes.length;
    if (n === 0) return 0;
    if (n <= 6) return bytes.readIntLE(0, n);
    if (n > MAX_LONG_BYTES) this.fail(`an integer of ${n} bytes (LONG4): beyond the ${MAX_LONG_BYTES} bytes this reader decodes`);
    // The reversed bytes as hex, parsed at once: V8 reads power-of-two radixes in linear time.
    this.charge(4 * n + COST.object);
    this.budget.step(n >>> 3, 'data.pkl');
    let v = BigInt(`0x${Buffer.from(bytes).reverse().toString('hex')}`);
    if (bytes[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return this.int(v);
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof PyDict)) this.fail('malformed pickle: SETITEM(S) on something that is not a dict');
    this.charge(COST.entry * Math.ceil(items.length / 2));
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  }

  private global(module: string, name: string): PyGlobal {
    if (module.length > MAX_GLOBAL_NAME || name.length > MAX_GLOBAL_NAME || !allowed(module, name)) {
      this.fail(`refusing to load the global '${shown(module)}.${shown(name)}': syncbn's checkpoint reader only allows what state dicts hold ` +
        '(dicts, OrderedDict, lists, tuples, numbers, strings, torch storages and tensors). If this file is a whole pickled model ' +
        "(torch.save(model)), save its state dict instead: torch.save(model.state_dict(), 'model.pt')");
    }
    this.charge(COST.object);
    return new PyGlobal(module, name);
  }

  /** A tuple of at most MAX_DIMS non-negative safe integers, or a refusal naming `what`. */
  private dims(v: unknown, fn: string, what: string): number[] {
    if (!Array.isArray(v) || v.length > MAX_DIMS || !v.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      this.fail(`${fn}: ${what} is not a tuple of at most ${MAX_DIMS} non-negative integers`);
    }
    return v as number[];
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
          this.budget.step(pairs.length, 'data.pkl');
          this.charge(COST.container + COST.entry * pairs.length);
          for (const p of pairs) {
            if (!Array.isArray(p) || p.length !== 2) this.fail('OrderedDict(...) with an item that is not a pair');
            d.set(p[0], p[1]);
          }
        } else {
          this.charge(COST.container);
        }
        return d;
      }
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride, requiresGrad] = args;
        if (!(storage instanceof StorageRef)) this.fail(`${fn.path}: the first argument is not a storage`);
        if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) this.fail(`${fn.path}: storage offset is not a non-negative integer`);
        const sz = this.dims(size, fn.path, 'size');
        const st = this.dims(stride, fn.path, 'stride');
        this.budget.step(sz.length + st.length, 'data.pkl');
        if (sz.length !== st.length) this.fail(`${fn.path}: size has ${sz.length} dims but stride ${st.length}`);
        this.charge(COST.object);
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
      this.budget.step(1, 'data.pkl');
      const op = buf[this.pos++];
      switch (op) {
        case 0x80: { // PROTO
          const proto = this.u8();
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
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.take(2).readUInt16LE(0));
          break;
        case 0x4a: // BININT (a value, signed)
          this.push(this.take(4).readInt32LE(0));
          break;
        case 0x8a: // LONG1
          this.push(this.long(this.take(this.u8())));
          break;
        case 0x8b: // LONG4 (Python refuses a negative length; read unsigned, it runs past the end)
          this.push(this.long(this.take(this.u32())));
          break;
        case 0x47: // BINFLOAT (big-endian double)
          this.charge(COST.slot);
          this.push(this.take(8).readDoubleBE(0));
          break;
        case 0x58: // BINUNICODE
          this.push(this.text(this.u32(), 'utf8'));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.text(this.u8(), 'utf8'));
          break;
        case 0x8d: { // BINUNICODE8
          const n = this.take(8).readBigUInt64LE(0);
          if (n > BigInt(buf.length - this.pos)) this.endsEarly(n);
          this.push(this.text(Number(n), 'utf8'));
          break;
        }
        case 0x55: // SHORT_BINSTRING (Python 2 str; torch writes ASCII names with it)
          this.push(this.text(this.u8(), 'latin1'));
          break;
        case 0x54: // BINSTRING (Python reads the length signed and refuses a negative one; unsigned, it runs past the end)
          this.push(this.text(this.u32(), 'latin1'));
          break;
        case 0x43: // SHORT_BINBYTES
        case 0x42: { // BINBYTES
          const bytes = this.take(op === 0x43 ? this.u8() : this.u32());
          this.charge(bytes.length + COST.object);
          this.push(new Uint8Array(bytes));
          break;
        }
        case 0x29: // EMPTY_TUPLE
        case 0x5d: // EMPTY_LIST
          this.pushNew([], 0);
          break;
        case 0x74: // TUPLE
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x85: { // TUPLE1
          const a = this.pop();
          this.pushNew([a], 1);
          break;
        }
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          this.pushNew([a, b], 2);
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.pushNew([a, b, c], 3);
          break;
        }
        case 0x61: { // APPEND
          const v = this.pop();
          const list = this.top();
          if (!Array.isArray(list)) this.fail('malformed pickle: APPEND to something that is not a list');
          this.charge(COST.slot);
          list.push(v);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          const list = this.top();
          if (!Array.isArray(list)) this.fail('malformed pickle: APPENDS to something that is not a list');
          this.charge(COST.slot * items.length);
          for (const v of items) list.push(v);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.pushNew(new PyDict(), 0);
          break;
        case 0x64: { // DICT
          const d = new PyDict();
          this.setItems(d, this.popMark());
          this.pushNew(d, 0);
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
        case 0x72: // LONG_BINPUT
        case 0x94: { // MEMOIZE
          const i = op === 0x71 ? this.u8() : op === 0x72 ? this.u32() : this.memo.size;
          this.charge(COST.entry);
          this.memo.set(i, this.top());
          break;
        }
        case 0x68: // BINGET
        case 0x6a: { // LONG_BINGET: the same object again, shared, never copied
          const i = op === 0x68 ? this.u8() : this.u32();
          if (!this.memo.has(i)) this.fail(`malformed pickle: memo entry ${i} is not set`);
          this.push(this.memo.get(i));
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
          this.push(this.top());
          break;
        case 0x63: { // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('malformed pickle: STACK_GLOBAL without strings');
          this.push(this.global(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.push(this.reduce(fn, args));
          break;
        }
        case 0x51: // BINPERSID
          this.charge(COST.object);
          this.push(this.persistentLoad(this.pop()));
          break;
        case 0x62: { // BUILD
          const state = this.pop();
          const inst = this.top();
          if (!(inst instanceof PyDict) || !(state instanceof PyDict)) {
            this.fail('refusing BUILD: only a dict\'s attributes (such as a state dict\'s _metadata) may be set');
          }
          this.budget.step(state.size, 'data.pkl');
          this.charge(COST.container + COST.entry * state.size);
          inst.attributes ??= new Map();
          for (const [k, v] of state) inst.attributes.set(keyString(k, this.budget, (m) => this.fail(m)), v);
          break;
        }
        default:
          this.fail(`refusing pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${this.pos - 1}: it does not occur in state dicts (objects, sets and code are not loaded)`);
      }
    }
  }
}

/**
 * A dict key as the string it becomes: strings as they are, numbers,
 * booleans and None printed, a flat tuple of those joined with commas (its
 * length paid for from `budget`: one tuple may key many dicts). Anything else
 * is refused through `fail`.
 */
export function keyString(k: unknown, budget: LoadBudget, fail: (message: string) => never): string {
  if (typeof k === 'string') return k;
  if (k === null || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return String(k);
  if (Array.isArray(k)) {
    budget.step(k.length, 'data.pkl');
    if (k.every((x) => x === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof x))) {
      budget.bytes(COST.string(k.reduce((n: number, x) => n + String(x).length + 1, 0)), 'a tuple key');
      return k.join(',');
    }
  }
  const what = Array.isArray(k) ? 'a nested tuple' : k instanceof PyDict ? 'a dict' : k instanceof TensorRef ? 'a tensor' : `a ${typeof k}`;
  return fail(`a dict key that is ${what}: only strings, numbers and flat tuples of them are read as keys`);
}

/**
 * Unpickles `buf` with the allow-list; `persistentLoad` turns each persistent
 * id (a storage reference) into a value. `where` prefixes every error;
 * `budget` bounds the memory and steps spent.
 */
export function unpickle(buf: Buffer, where: string, budget: LoadBudget, persistentLoad: (pid: unknown) => unknown): unknown {
  return new Unpickler(buf, where, budget, persistentLoad).load();
}
