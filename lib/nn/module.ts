// Module: the registries of parameters, buffers and children that state
// dicts, `train()`/`eval()` and `toString()` walk. Cf. torch.nn.Module.
import { Parameter } from '../parameter';
import { DType, Device, FloatingDType, Tensor, checkDevice } from '../tensor';
import { StateDictMetadata, getMetadata, setMetadata } from '../state_dict_metadata';

/** Result of `loadStateDict`: what the dict lacked and what it had too much of. */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** Collects what a module's loader finds, before anything is copied. */
export interface StateDictLoad {
  /** Copies to run once every key checked out. */
  copies: Array<() => void>;
  missingKeys: string[];
  errors: string[];
}

const DTYPE_NAMES: ReadonlySet<string> = new Set(['float32', 'float64', 'int64', 'float16', 'bfloat16']);
const COUNTER_LIMIT = 2 ** 53;

/**
 * Why `value` cannot be copied into a slot of `shape` and `dtype`, or null.
 * Everything that could fail halfway through a copy is caught here.
 */
function checkSource(value: unknown, key: string, shape: readonly number[], dtype: DType): string | null {
  if (!(value instanceof Tensor)) {
    return `While copying the parameter named "${key}", expected a Tensor, got ${value === null ? 'null' : typeof value}.`;
  }
  if (value.disposed) return `While copying the parameter named "${key}", the checkpoint's tensor was disposed.`;
  if (!sameShape(value.shape, shape)) {
    return `size mismatch for ${key}: copying a param with shape ${torchSize(value.shape)} from checkpoint, the shape in current model is ${torchSize(shape)}.`;
  }
  if (!value.isCuda && value.data.length !== value.numel()) {
    return `While copying the parameter named "${key}", its storage holds ${value.data.length} elements for shape ${torchSize(value.shape)} (detached or transferred to another thread?).`;
  }
  if (dtype === 'int64') {
    // Counters are exact: no NaN, fractions or wrap-around past what a float64 step count can hold.
    const values = value.dtype === 'int64' ? Array.from(value.cpu().data as BigInt64Array, Number) : Array.from(value.toArray());
    const src = value.dtype === 'int64' ? (value.cpu().data as BigInt64Array) : null;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      const big = src !== null && (src[i] > BigInt(COUNTER_LIMIT) || src[i] < -BigInt(COUNTER_LIMIT));
      if (big || !Number.isFinite(v) || !Number.isInteger(v) || Math.abs(v) > COUNTER_LIMIT) {
        const shown = src !== null ? String(src[i]) : String(v);
        return `While copying the parameter named "${key}", the checkpoint's value ${shown} is not an integer within ±2^53 (an int64 counter is kept exact; it is not rounded or wrapped).`;
      }
    }
  }
  return null;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function torchSize(shape: readonly number[]): string {
  return `torch.Size([${shape.join(', ')}])`;
}

function indent(text: string, spaces: number): string {
  const lines = text.split('\n');
  if (lines.length === 1) return text;
  return [lines[0], ...lines.slice(1).map((l) => ' '.repeat(spaces) + l)].join('\n');
}

/**
 * Base class of every layer. Subclasses register parameters, buffers and
 * children, and implement `forward` (and `backward` where they train).
 * Cf. `torch.nn.Module`.
 *
 * @example
 * class Scale extends Module {
 *   constructor() { super(); this.registerParameter('weight', new Parameter(ones([1]))); }
 *   forward(x: Tensor) { return x; }
 * }
 */
export abstract class Module {
  /**
   * Version of this class's state-dict layout, saved in the state dict's
   * `_metadata` so that loaders can accept older layouts. Cf. `Module._version`.
   */
  static readonly stateDictVersion: number = 1;
  /** True in training mode, false after `eval()`. */
  training = true;
  // The registry is the object's own fields: a Module or Parameter held by a
  // field is a child or parameter (PyTorch's __setattr__), read in field
  // order, so `this.bn = x` and `registerModule('bn', x)` are one act. These
  // sets remember only what a value cannot say: which tensor fields are
  // buffers, which are not saved, and which fields are parameter slots (so
  // that null, or a wrong value, there is told apart from a plain field).
  private readonly _bufferNames = new Set<string>();
  private readonly _nonPersistent = new Set<string>();
  private readonly _paramNames = new Set<string>();

  abstract forward(input: Tensor): Tensor;

  /** Gradient of the last forward's input given its output's gradient; accumulates parameter grads. */
  backward(gradOutput: Tensor): Tensor {
    void gradOutput;
    throw new Error(`${this.typeName()} does not implement backward()`);
  }

  /** The class name shown by `toString()` and in errors (PyTorch's spelling). */
  typeName(): string {
    return this.constructor.name;
  }

  private field(name: string): unknown {
    return (this as unknown as Record<string, unknown>)[name];
  }

  private setField(name: string, value: unknown): void {
    // Defined rather than assigned: an own field shadows an accessor a class
    // may still declare for the name (`get weight() { return this.param('weight'); }`).
    Object.defineProperty(this, name, { value, writable: true, enumerable: true, configurable: true });
  }

  /**
   * Registers `param` (or an empty slot, null) as parameter `name`; the
   * same as assigning a Parameter to the field. Cf. `Module.register_parameter`.
   */
  registerParameter(name: string, param: Parameter | null): void {
    this.checkName(name, 'registerParameter');
    if (param !== null && !(param instanceof Parameter)) {
      throw new TypeError(`cannot assign a non-Parameter as parameter '${name}' (use registerBuffer for tensors)`);
    }
    this._bufferNames.delete(name);
    this._nonPersistent.delete(name);
    this._paramNames.add(name);
    this.setField(name, param);
  }

  /**
   * Registers `tensor` as buffer `name` (saved in the state dict unless not
   * `persistent`); the field holds it, and assigning the field replaces it.
   * Cf. `Module.register_buffer`.
   */
  registerBuffer(name: string, tensor: Tensor | null, persistent = true): void {
    this.checkName(name, 'registerBuffer');
    if (tensor !== null && !(tensor instanceof Tensor)) throw new TypeError(`buffer '${name}' must be a Tensor or null`);
    if (tensor instanceof Parameter) throw new TypeError(`cannot assign Parameter '${name}' as a buffer (use registerParameter)`);
    this._paramNames.delete(name);
    this._bufferNames.add(name);
    if (persistent) this._nonPersistent.delete(name);
    else this._nonPersistent.add(name);
    this.setField(name, tensor);
  }

  /** Adds a child, or replaces the one of that name in place (its position is kept); the same as assigning the field. */
  registerModule(name: string, module: Module): void {
    this.checkName(name, 'registerModule');
    if (!(module instanceof Module)) throw new TypeError(`child '${name}' must be a Module`);
    this._bufferNames.delete(name);
    this._nonPersistent.delete(name);
    this._paramNames.delete(name);
    this.setField(name, module);
  }

  /** The parameter registered as `name` (null when registered as absent). */
  protected param(name: string): Parameter | null {
    const v = this.field(name);
    return v instanceof Parameter ? v : null;
  }

  protected buffer(name: string): Tensor | null {
    if (!this._bufferNames.has(name)) return null;
    const v = this.field(name);
    return v instanceof Tensor ? v : null;
  }

  private describeValue(v: unknown): string {
    if (v === undefined) return 'undefined (a class field declared without `declare` resets what the base constructor registered; write `declare weight: Parameter | null`)';
    return v instanceof Tensor ? 'a Tensor' : typeof v;
  }

  private checkName(name: string, where: string): void {
    if (typeof name !== 'string' || name === '' || name.includes('.')) {
      throw new TypeError(`${where}: name must be a non-empty string without '.', got ${JSON.stringify(name)}`);
    }
    if (!Object.prototype.hasOwnProperty.call(this, name) && typeof (this as unknown as Record<string, unknown>)[name] === 'function') {
      throw new TypeError(`${where}: '${name}' is a method of ${this.typeName()}; choose another name`);
    }
  }

  /**
   * This module's own registry, in field order: parameters (null for an
   * empty slot), buffers and children. A field assigned a value of the
   * wrong kind for its slot is an error here, naming it.
   */
  private members(): { params: Array<[string, Parameter | null]>; buffers: Array<[string, Tensor | null]>; modules: Array<[string, Module]> } {
    const params: Array<[string, Parameter | null]> = [];
    const buffers: Array<[string, Tensor | null]> = [];
    const modules: Array<[string, Module]> = [];
    for (const name of Object.keys(this)) {
      const v = this.field(name);
      if (v instanceof Module) {
        modules.push([name, v]);
      } else if (v instanceof Parameter) {
        if (this._bufferNames.has(name)) throw new TypeError(`${this.typeName()}.${name}: a Parameter was assigned to buffer '${name}'; use registerParameter to make it a parameter`);
        this._paramNames.add(name);
        params.push([name, v]);
      } else if (this._bufferNames.has(name)) {
        if (v !== null && !(v instanceof Tensor)) throw new TypeError(`${this.typeName()}.${name}: buffer '${name}' must hold a Tensor or null, got ${this.describeValue(v)}`);
        buffers.push([name, v as Tensor | null]);
      } else if (this._paramNames.has(name)) {
        if (v !== null) {
          throw new TypeError(`${this.typeName()}.${name}: cannot assign ${this.describeValue(v)} as parameter '${name}' (a Parameter or null expected; wrap a tensor: new Parameter(t))`);
        }
        params.push([name, null]);
      }
    }
    return { params, buffers, modules };
  }

  /** Sets training mode here and in every child. Cf. `Module.train`. */
  train(mode = true): this {
    this.training = mode;
    for (const m of this.children()) m.train(mode);
    return this;
  }

  /** Same as `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  namedChildren(): Array<[string, Module]> {
    const out: Array<[string, Module]> = [];
    for (const name of Object.keys(this)) {
      const v = this.field(name);
      if (v instanceof Module) out.push([name, v]);
    }
    return out;
  }

  children(): Module[] {
    // On Sequential's forward path: one pass over the fields, nothing else built.
    const out: Module[] = [];
    for (const name of Object.keys(this)) {
      const v = this.field(name);
      if (v instanceof Module) out.push(v);
    }
    return out;
  }

  /** Every module in the tree, this one first (named ''), each once. */
  namedModules(prefix = '', seen: Set<Module> = new Set()): Array<[string, Module]> {
    if (seen.has(this)) return [];
    seen.add(this);
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [name, m] of this.namedChildren()) out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name, seen));
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  namedParameters(prefix = '', recurse = true): Array<[string, Parameter]> {
    return this.namedMembers((m) => m.members().params, prefix, recurse) as Array<[string, Parameter]>;
  }

  parameters(recurse = true): Parameter[] {
    return this.namedParameters('', recurse).map(([, p]) => p);
  }

  namedBuffers(prefix = '', recurse = true): Array<[string, Tensor]> {
    return this.namedMembers((m) => m.members().buffers, prefix, recurse);
  }

  buffers(recurse = true): Tensor[] {
    return this.namedBuffers('', recurse).map(([, b]) => b);
  }

  private namedMembers(pick: (m: Module) => Array<[string, Tensor | null]>, prefix: string, recurse: boolean): Array<[string, Tensor]> {
    const mods: Array<[string, Module]> = recurse ? this.namedModules(prefix) : [[prefix, this]];
    const seen = new Set<Tensor>();
    const out: Array<[string, Tensor]> = [];
    for (const [modPrefix, m] of mods) {
      for (const [name, t] of pick(m)) {
        if (t === null || seen.has(t)) continue;
        seen.add(t);
        out.push([modPrefix ? `${modPrefix}.${name}` : name, t]);
      }
    }
    return out;
  }

  /**
   * Moves every parameter, its gradient and every buffer to `device`, or
   * converts the floating ones to `dtype` ('float32', 'float64', 'float16'
   * or 'bfloat16'), in place:
   * the objects stay the same, as in PyTorch, so references held elsewhere
   * (an optimizer's) stay valid. Counters (int64) keep their dtype, and
   * scalar buffers stay on the host, where the layer reads them.
   * Cf. `Module.to`.
   *
   * @example
   * bn.to('cuda');
   * bn.to('float64');
   * bn.to('bfloat16');  // all-half, as PyTorch 2 runs it on the CPU
   * bn.to({ device: 'cpu', dtype: 'float32' });
   */
  to(target: Device | 'cuda' | DType | { device?: Device | 'cuda'; dtype?: DType }): this {
    const t = typeof target === 'string' ? (DTYPE_NAMES.has(target) ? { dtype: target as DType } : { device: target as Device | 'cuda' }) : target;
    if (t === null || typeof t !== 'object') throw new TypeError(`${this.typeName()}.to: expected a device, a dtype or { device, dtype }, got ${String(target)}`);
    if (t.dtype !== undefined) this.convertDtype(t.dtype);
    if (t.device !== undefined) {
      const device = checkDevice(t.device, `${this.typeName()}.to`);
      for (const m of this.modules()) {
        const { params, buffers } = m.members();
        for (const [, p] of params) {
          if (p === null) continue;
          p.moveTo_(device);
          p.grad?.moveTo_(device);
        }
        for (const [, b] of buffers) if (b !== null && b.ndim > 0) b.moveTo_(device);
        m.deviceChanged(device);
      }
    }
    return this;
  }

  private convertDtype(dtype: DType): void {
    if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'float16' && dtype !== 'bfloat16') {
      throw new TypeError(`${this.typeName()}.to: dtype must be 'float32', 'float64', 'float16' or 'bfloat16', got ${String(dtype)}`);
    }
    for (const m of this.modules()) {
      const { params, buffers } = m.members();
      for (const [, p] of params) {
        if (p === null) continue;
        p.retype_(dtype);
        p.grad?.retype_(dtype);
      }
      for (const [, b] of buffers) if (b !== null && b.dtype !== 'int64') b.retype_(dtype);
      m.dtypeChanged(dtype);
    }
  }

  /** Called on each module after `to(dtype)` converted its tensors; layers that record their dtype update it. */
  protected dtypeChanged(dtype: FloatingDType): void {
    void dtype;
  }

  /** Called on each module after `to(device)` moved its tensors; layers that create tensors later (lazy ones) follow it. */
  protected deviceChanged(device: Device): void {
    void device;
  }

  /** Every floating parameter and buffer to float64. Cf. `Module.double`. @example bn.double(); */
  double(): this {
    return this.to('float64');
  }

  /** Every floating parameter and buffer to float32. Cf. `Module.float`. @example bn.float(); */
  float(): this {
    return this.to('float32');
  }

  /** Every floating parameter and buffer to float16. Cf. `Module.half`. @example bn.half(); */
  half(): this {
    return this.to('float16');
  }

  /** Every floating parameter and buffer to bfloat16. Cf. `Module.bfloat16`. @example bn.bfloat16(); */
  bfloat16(): this {
    return this.to('bfloat16');
  }

  /** Cf. `Module.cuda`. @example bn.cuda(); */
  cuda(device = 0): this {
    return this.to(`cuda:${device}`);
  }

  /** Cf. `Module.cpu`. @example bn.cpu(); */
  cpu(): this {
    return this.to('cpu');
  }

  /**
   * Sets whether every parameter gets a gradient in `backward` (frozen
   * layers: false). Cf. `Module.requires_grad_`.
   *
   * @example net.stem.requiresGrad_(false);
   */
  requiresGrad_(requiresGrad = true): this {
    if (typeof requiresGrad !== 'boolean') throw new TypeError(`${this.typeName()}.requiresGrad_: expected a boolean`);
    for (const p of this.parameters()) p.requiresGrad = requiresGrad;
    return this;
  }

  /** Calls `fn` on every child (recursively) and then on this module. */
  apply(fn: (m: Module) => void): this {
    for (const m of this.children()) m.apply(fn);
    fn(this);
    return this;
  }

  /**
   * Parameters and persistent buffers by dotted name, sharing storage with
   * the module (as PyTorch's do), with each module's `stateDictVersion` in a
   * non-enumerable `_metadata`. Cf. `Module.state_dict`.
   */
  stateDict(prefix = ''): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    const metadata: StateDictMetadata = {};
    this.collectState(out, prefix, metadata);
    return setMetadata(out, metadata);
  }

  private collectState(out: Record<string, Tensor>, prefix: string, metadata: StateDictMetadata): void {
    metadata[prefix.slice(0, -1)] = { version: (this.constructor as typeof Module).stateDictVersion };
    for (const [name, t] of this.localState()) out[prefix + name] = t;
    for (const [name, m] of this.namedChildren()) m.collectState(out, `${prefix}${name}.`, metadata);
  }

  /** This module's own state-dict entries: parameters, then persistent buffers. */
  private localState(): Array<[string, Tensor]> {
    const { params, buffers } = this.members();
    const out: Array<[string, Tensor]> = [];
    for (const [name, p] of params) if (p !== null) out.push([name, p]);
    for (const [name, b] of buffers) if (b !== null && !this._nonPersistent.has(name)) out.push([name, b]);
    return out;
  }

  /**
   * Copies values from `stateDict` into this tree's parameters and buffers
   * (in place, converting dtype and memory format). Every entry is checked
   * before anything is copied (keys, shapes, that it is a live tensor,
   * that counters get integers below 2^53), so a failed load changes
   * nothing, and a lazy module stays lazy. A state dict's `_metadata`
   * tells layers which layout version wrote it. Cf. `Module.load_state_dict`.
   *
   * @example net.loadStateDict(load('net.pt'));
   */
  loadStateDict(stateDict: Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    if (stateDict === null || typeof stateDict !== 'object') throw new TypeError('loadStateDict: expected an object of tensors');
    const load: StateDictLoad = { copies: [], missingKeys: [], errors: [] };
    const expected = new Set<string>();
    const metadata = getMetadata(stateDict);
    for (const [prefix, m] of this.namedModules()) {
      const p = prefix ? `${prefix}.` : '';
      m.loadFromStateDict(stateDict, p, load, metadata?.[prefix] ?? {});
      for (const key of m.localStateKeys()) expected.add(p + key);
    }
    const unexpectedKeys = Object.keys(stateDict).filter((k) => !expected.has(k));
    const errors = [...load.errors];
    if (strict) {
      if (unexpectedKeys.length > 0) errors.unshift(`Unexpected key(s) in state_dict: ${unexpectedKeys.map((k) => `"${k}"`).join(', ')}. `);
      if (load.missingKeys.length > 0) errors.unshift(`Missing key(s) in state_dict: ${load.missingKeys.map((k) => `"${k}"`).join(', ')}. `);
    }
    if (errors.length > 0) throw new Error(`Error(s) in loading state_dict for ${this.typeName()}:\n\t${errors.join('\n\t')}`);
    for (const copy of load.copies) copy();
    return { missingKeys: load.missingKeys, unexpectedKeys };
  }

  /** Names of this module's own (non-recursive) state-dict entries. */
  protected localStateKeys(): string[] {
    return this.localState().map(([name]) => name);
  }

  /**
   * The entries this module expects in a state dict: name, shape and dtype.
   * A lazy layer overrides it to say what it will hold once materialized.
   */
  protected stateSlots(stateDict: Record<string, Tensor>, prefix: string): Array<{ name: string; shape: readonly number[]; dtype: DType }> {
    void stateDict;
    void prefix;
    return this.localState().map(([name, t]) => ({ name, shape: t.shape, dtype: t.dtype }));
  }

  /** Runs, among the queued copies, before this module's own: lazy layers materialize there. */
  protected beforeLoadCopies(): void {}

  /**
   * Checks this module's own entries of `stateDict` (keys under `prefix`)
   * and queues their copies. Subclasses override to accept older layouts,
   * told apart by `localMetadata.version` (the saving class's `stateDictVersion`).
   */
  protected loadFromStateDict(stateDict: Record<string, Tensor>, prefix: string, load: StateDictLoad, localMetadata: Record<string, unknown> = {}): void {
    void localMetadata;
    const checked: Array<[string, Tensor]> = [];
    for (const slot of this.stateSlots(stateDict, prefix)) {
      const key = prefix + slot.name;
      if (!Object.prototype.hasOwnProperty.call(stateDict, key)) {
        load.missingKeys.push(key);
        continue;
      }
      const value = stateDict[key];
      const problem = checkSource(value, key, slot.shape, slot.dtype);
      if (problem !== null) load.errors.push(problem);
      else checked.push([slot.name, value]);
    }
    if (checked.length === 0) return;
    load.copies.push(() => {
      this.beforeLoadCopies();
      // Targets are read when copying: a lazy layer's tensors exist only from here.
      for (const [name, value] of checked) (this.field(name) as Tensor).copy_(value);
    });
  }
  /** Clears parameter grads: to null (default), or to zeros. Cf. `Module.zero_grad`. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (p.grad === null) continue;
      if (setToNone) p.grad = null;
      else p.grad.zero_();
    }
  }

  /** The part between the parentheses of `toString()`. */
  extraRepr(): string {
    return '';
  }

  toString(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedChildren()) lines.push(`(${name}): ${indent(m.toString(), 2)}`);
    const extra = this.extraRepr();
    if (lines.length === 0) return `${this.typeName()}(${extra})`;
    const body = [...(extra ? extra.split('\n') : []), ...lines].map((l) => `  ${l}`).join('\n');
    return `${this.typeName()}(\n${body}\n)`;
  }
}
