// load / save: checkpoints in PyTorch's formats, chosen by content on load
// and by file extension on save. Cf. torch.load / torch.save.
import * as fs from 'node:fs';
import { Tensor } from '../tensor';
import { LoadBudget } from './budget';
import { loadSafetensors, looksLikeSafetensors, saveSafetensors } from './safetensors';
import { loadTorchZip, saveTorchZip } from './torch_format';

export { StateDictMetadata, getMetadata, setMetadata } from '../state_dict_metadata';

/** What `load` returns for a state dict: tensors by dotted name (plus a non-enumerable `_metadata`). */
export type StateDict = Record<string, Tensor>;

export interface SaveOptions {
  /** 'torch' (torch.save's zip) or 'safetensors'; default: safetensors for a `.safetensors` path, else torch. */
  format?: 'torch' | 'safetensors';
  /** safetensors only: the string map stored as `__metadata__`. */
  metadata?: Record<string, string>;
}

/**
 * Options of `load`.
 *
 * @example
 * import { load } from 'syncbn';
 * // A trusted checkpoint whose expanded views need up to 4 GiB once copied out.
 * const sd = load('expanded.pt', { maxBytes: 4 * 2 ** 30 });
 */
export interface LoadOptions {
  /**
   * The most bytes `load` may allocate for this file: the tensors it returns
   * (views it must copy out included) and its own working memory, counted
   * before anything is allocated. Default: twice the file's size plus 64 MiB,
   * which every tensor the file holds fits in. Raise it for a trusted file
   * that needs more, such as one with an expanded view (a stride-0 `expand()`
   * of a small tensor, which PyTorch keeps as a view and syncbn copies out).
   */
  maxBytes?: number;
}

function readHead(file: string): { head: Buffer; size: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 512));
    fs.readSync(fd, head, 0, head.length, 0);
    return { head, size };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads a checkpoint written by `torch.save` (PyTorch >= 1.6's zip format) or
 * a safetensors file, into CPU tensors: float32, float64, float16, bfloat16
 * (Uint16Array storage) and int64. Views that share a storage in the file
 * share it here; strided views are copied out. The pickle is read with an
 * allow-list (dicts, lists, tuples, numbers, strings, tensors): nothing in
 * the file can run code. A state dict's `_metadata` comes along for
 * `loadStateDict`. Dicts become objects without a prototype (keys as
 * strings, so that any key, '__proto__' included, is just a key); what the
 * pickle shares stays shared. Any file, however crafted, is read within
 * bounds: memory (`opts.maxBytes`), work in proportion to its size, nesting
 * 1000 levels deep; whatever is wrong with a file, the error names it.
 * Cf. `torch.load(path, map_location='cpu', weights_only=True)`.
 *
 * @example
 * import { load, nn } from 'syncbn';
 * const bn = new nn.BatchNorm2d(64);
 * bn.loadStateDict(load('bn.pt'));
 * // A trusted file with a large expanded view: allow up to 4 GiB.
 * const sd = load('expanded.pt', { maxBytes: 4 * 2 ** 30 });
 */
export function load<T = StateDict>(file: string, opts: LoadOptions = {}): T {
  if (typeof file !== 'string') throw new TypeError('load: path must be a string');
  const maxBytes = opts?.maxBytes;
  if (maxBytes !== undefined && !(typeof maxBytes === 'number' && (Number.isSafeInteger(maxBytes) || maxBytes === Infinity) && maxBytes > 0)) {
    throw new TypeError(`load: maxBytes must be a positive integer (or Infinity), got ${String(maxBytes)}`);
  }
  // Errors of the file system (no such file...) come as they are: they name the path.
  const { head, size } = readHead(file);
  const budget = new LoadBudget(file, size, maxBytes);
  try {
    if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return loadTorchZip(file, budget) as T;
    if (looksLikeSafetensors(head)) return loadSafetensors(file, budget) as unknown as T;
  } catch (e) {
    throw named(file, e);
  }
  if (head.length >= 2 && head[0] === 0x80 && head[1] <= 5) {
    throw new TypeError(`${file}: this is PyTorch's legacy (pre-1.6, non-zip) checkpoint format, which syncbn does not read. ` +
      "Re-save it in Python with PyTorch >= 1.6: torch.save(torch.load('old.pt'), 'new.pt')");
  }
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') {
    throw new TypeError(`${file}: this is PyTorch's oldest (tar) checkpoint format, which syncbn does not read. ` +
      "Re-save it in Python: torch.save(torch.load('old.pt'), 'new.pt')");
  }
  throw new TypeError(`${file}: neither a torch.save zip archive nor a safetensors file`);
}

/**
 * An error that names the file: the readers' own already do; one from deeper
 * (the stack or an allocation running out, a Buffer read) is said in terms of
 * the file, with the original as its cause.
 */
function named(file: string, e: unknown): Error {
  const message = (e as { message?: unknown })?.message;
  const text = typeof message === 'string' ? message : String(e);
  if (text.startsWith(`${file}:`)) return e as Error;
  const what = e instanceof RangeError && /call stack/i.test(text) ? 'ran out of stack while reading it (nested too deep?)'
    : /alloc|invalid (typed )?array length|invalid string length|too large|maximum bigint/i.test(text) ? 'could not allocate memory while reading it'
      : 'could not be read';
  const err = e instanceof TypeError ? new TypeError(`${file}: ${what}: ${text}`, { cause: e }) : new RangeError(`${file}: ${what}: ${text}`, { cause: e });
  return err;
}

/**
 * Writes a state dict (or plain objects and arrays of tensors and numbers) in
 * torch.save's zip format, which `torch.load(path, weights_only=True)` reads
 * back with the same dtypes, shapes and values; or, for a `.safetensors` path,
 * a flat dict of tensors as safetensors. A state dict's `_metadata` is saved
 * as PyTorch saves it. Cf. `torch.save`, `safetensors.torch.save_file`.
 *
 * @example
 * import { save, nn } from 'syncbn';
 * save(new nn.BatchNorm2d(64).stateDict(), 'bn.pt');
 * save(new nn.BatchNorm2d(64).stateDict(), 'bn.safetensors');
 */
export function save(obj: unknown, file: string, opts: SaveOptions = {}): void {
  if (typeof file !== 'string') throw new TypeError('save: path must be a string');
  const format = opts.format ?? (file.endsWith('.safetensors') ? 'safetensors' : 'torch');
  if (format === 'safetensors') return saveSafetensors(obj as Record<string, Tensor>, file, opts.metadata);
  if (format !== 'torch') throw new TypeError(`save: format must be 'torch' or 'safetensors', got ${String(format)}`);
  if (opts.metadata !== undefined) throw new TypeError('save: metadata is stored by the safetensors format only');
  saveTorchZip(obj, file);
}
