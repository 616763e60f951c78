// load / save: checkpoints in PyTorch's formats, chosen by content on load
// and by file extension on save. Cf. torch.load / torch.save.
import * as fs from 'node:fs';
import { Tensor } from '../tensor';
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
 * `loadStateDict`. Dicts become plain objects (keys as strings).
 * Cf. `torch.load(path, map_location='cpu', weights_only=True)`.
 *
 * @example
 * import { load, nn } from 'syncbn';
 * const bn = new nn.BatchNorm2d(64);
 * bn.loadStateDict(load('bn.pt'));
 */
export function load<T = StateDict>(file: string): T {
  if (typeof file !== 'string') throw new TypeError('load: path must be a string');
  const { head, size } = readHead(file);
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return loadTorchZip(file) as T;
  if (looksLikeSafetensors(head, size)) return loadSafetensors(file) as unknown as T;
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
