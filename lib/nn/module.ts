// Module: the registries of parameters, buffers and children that state
// dicts, `train()`/`eval()` and `toString()` walk. Cf. torch.nn.Module.
import { Device, Parameter, Tensor } from '../tensor';
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
  private readonly _parameters = new Map<string, Parameter | null>();
  private readonly _buffers = new Map<string, Tensor | null>();
  private readonly _nonPersistent = new Set<string>();
  private readonly _modules = new Map<string, Module>();

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

  registerParameter(name: string, param: Parameter | null): void {
    this.checkName(name, 'registerParameter');
    if (param !== null && !(param instanceof Parameter)) {
      throw new TypeError(`cannot assign a non-Parameter as parameter '${name}' (use registerBuffer for tensors)`);
    }
    this._parameters.set(name, param);
  }

  registerBuffer(name: string, tensor: Tensor | null, persistent = true): void {
    this.checkName(name, 'registerBuffer');
    if (tensor !== null && !(tensor instanceof Tensor)) throw new TypeError(`buffer '${name}' must be a Tensor or null`);
    this._buffers.set(name, tensor);
    if (persistent) this._nonPersistent.delete(name);
    else this._nonPersistent.add(name);
  }

  /** Adds a child, or replaces the one of that name in place (its position is kept). */
  registerModule(name: string, module: Module): void {
    this.checkName(name, 'registerModule');
    if (!(module instanceof Module)) throw new TypeError(`child '${name}' must be a Module`);
    this._modules.set(name, module);
  }

  /** The parameter registered as `name` (null when registered as absent). */
  protected param(name: string): Parameter | null {
    return this._parameters.get(name) ?? null;
  }

  protected buffer(name: string): Tensor | null {
    return this._buffers.get(name) ?? null;
  }

  private checkName(name: string, where: string): void {
    if (typeof name !== 'string' || name === '' || name.includes('.')) {
      throw new TypeError(`${where}: name must be a non-empty string without '.', got ${JSON.stringify(name)}`);
    }
  }

  /** Sets training mode here and in every child. Cf. `Module.train`. */
  train(mode = true): this {
    this.training = mode;
    for (const m of this._modules.values()) m.train(mode);
    return this;
  }

  /** Same as `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  namedChildren(): Array<[string, Module]> {
    return [...this._modules.entries()];
  }

  children(): Module[] {
    return [...this._modules.values()];
  }

  /** Every module in the tree, this one first (named ''), each once. */
  namedModules(prefix = '', seen: Set<Module> = new Set()): Array<[string, Module]> {
    if (seen.has(this)) return [];
    seen.add(this);
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [name, m] of this._modules) out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name, seen));
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  namedParameters(prefix = '', recurse = true): Array<[string, Parameter]> {
    return this.namedMembers((m) => m._parameters, prefix, recurse) as Array<[string, Parameter]>;
  }

  parameters(recurse = true): Parameter[] {
    return this.namedParameters('', recurse).map(([, p]) => p);
  }

  namedBuffers(prefix = '', recurse = true): Array<[string, Tensor]> {
    return this.namedMembers((m) => m._buffers, prefix, recurse);
  }

  buffers(recurse = true): Tensor[] {
    return this.namedBuffers('', recurse).map(([, b]) => b);
  }

  private namedMembers(pick: (m: Module) => Map<string, Tensor | null>, prefix: string, recurse: boolean): Array<[string, Tensor]> {
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
   * Moves every parameter, its gradient and every buffer to `device`, in
   * place (the objects stay the same, as in PyTorch). Scalar buffers
   * (counters such as num_batches_tracked) stay on the host, where the layer
   * reads them. Cf. `Module.to`.
   *
   * @example bn.to('cuda');
   */
  to(device: Device | 'cuda'): this {
    for (const m of this.modules()) {
      for (const p of m._parameters.values()) {
        if (p === null) continue;
        p.moveTo_(device);
        p.grad?.moveTo_(device);
      }
      for (const b of m._buffers.values()) if (b !== null && b.ndim > 0) b.moveTo_(device);
    }
    return this;
  }

  /** Cf. `Module.cuda`. @example bn.cuda(); */
  cuda(device = 0): this {
    return this.to(`cuda:${device}`);
  }

  /** Cf. `Module.cpu`. @example bn.cpu(); */
  cpu(): this {
    return this.to('cpu');
  }

  /** Calls `fn` on every child (recursively) and then on this module. */
  apply(fn: (m: Module) => void): this {
    for (const m of this._modules.values()) m.apply(fn);
    fn(this);
    return this;
  }

  /**
   * Parameters and persistent buffers by dotted name, sharing storage with
   * the module (as PyTorch's do). Cf. `Module.state_dict`.
   */
  stateDict(prefix = ''): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    const metadata: StateDictMetadata = {};
    this.collectState(out, prefix, metadata);
    // Each module's version under its prefix, as PyTorch's `_metadata` (non-enumerable: not a key).
    return setMetadata(out, metadata);
  }

  private collectState(out: Record<string, Tensor>, prefix: string, metadata: StateDictMetadata): void {
    metadata[prefix.slice(0, -1)] = { version: (this.constructor as typeof Module).stateDictVersion };
    for (const [name, p] of this._parameters) if (p !== null) out[prefix + name] = p;
    for (const [name, b] of this._buffers) if (b !== null && !this._nonPersistent.has(name)) out[prefix + name] = b;
    for (const [name, m] of this._modules) m.collectState(out, `${prefix}${name}.`, metadata);
  }

  /**
   * Copies values from `stateDict` into this tree's parameters and buffers
   * (in place, converting dtype and memory format). Every key is checked
   * before anything is copied, so a failed load changes nothing.
   * Cf. `Module.load_state_dict`.
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
    const keys: string[] = [];
    for (const [name, p] of this._parameters) if (p !== null) keys.push(name);
    for (const [name, b] of this._buffers) if (b !== null && !this._nonPersistent.has(name)) keys.push(name);
    return keys;
  }

  /**
   * Checks this module's own entries of `stateDict` (keys under `prefix`)
   * and queues their copies. Subclasses override to accept older layouts,
   * told apart by `localMetadata.version` (the saving class's `stateDictVersion`).
   */
  protected loadFromStateDict(stateDict: Record<string, Tensor>, prefix: string, load: StateDictLoad, localMetadata: Record<string, unknown> = {}): void {
    void localMetadata;
    const local: Array<[string, Tensor]> = [];
    for (const [name, p] of this._parameters) if (p !== null) local.push([name, p]);
    for (const [name, b] of this._buffers) if (b !== null && !this._nonPersistent.has(name)) local.push([name, b]);
    for (const [name, target] of local) {
      const key = prefix + name;
      if (!Object.prototype.hasOwnProperty.call(stateDict, key)) {
        load.missingKeys.push(key);
        continue;
      }
      const value = stateDict[key];
      if (!(value instanceof Tensor)) {
        load.errors.push(`While copying the parameter named "${key}", expected a Tensor, got ${value === null ? 'null' : typeof value}.`);
        continue;
      }
      if (!sameShape(value.shape, target.shape)) {
        load.errors.push(`size mismatch for ${key}: copying a param with shape ${torchSize(value.shape)} from checkpoint, the shape in current model is ${torchSize(target.shape)}.`);
        continue;
      }
      load.copies.push(() => target.copy_(value));
    }
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
    for (const [name, m] of this._modules) lines.push(`(${name}): ${indent(m.toString(), 2)}`);
    const extra = this.extraRepr();
    if (lines.length === 0) return `${this.typeName()}(${extra})`;
    const body = [...(extra ? extra.split('\n') : []), ...lines].map((l) => `  ${l}`).join('\n');
    return `${this.typeName()}(\n${body}\n)`;
  }
}
