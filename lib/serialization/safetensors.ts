// safetensors (huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {string: string}} (padded with spaces), then the tensors'
// little-endian, row-major bytes; offsets count from the end of the header
// and the tensors cover that buffer without gaps or overlaps.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { allocate, dtypeSize, DType, Tensor } from '../tensor';
import { LoadBudget, MAX_DIMS, shown } from './budget';
import { parseHeader } from './safetensors_header';
import { readInto } from './zip';

const DTYPES: Readonly<Record<string, DType>> = { F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64' };
const NAMES: Readonly<Record<DType, string>> = { float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64' };
// The reference implementation refuses larger headers.
const MAX_HEADER = 100_000_000;

// {name: {dtype, shape: [...], data_offsets: [...]}}: three levels.
const HEADER_DEPTH = 3;

/**
 * True when `head` (the first bytes of a file) starts as safetensors does: a
 * header length, then the header's '{'. The length is checked by the loader,
 * which names what is wrong with it.
 */
export function looksLikeSafetensors(head: Buffer): boolean {
  return head.length >= 9 && head[8] === 0x7b;
}

/** Reads a safetensors file within `budget`; `__metadata__` comes back as a non-enumerable property. */
export function loadSafetensors(file: string, budget: LoadBudget): Record<string, Tensor> {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const fail = (msg: string): never => {
      throw new RangeError(`${file}: invalid safetensors file: ${msg}`);
    };
    if (size < 8) fail('shorter than the 8-byte header length');
    const lenBuf = Buffer.alloc(8);
    readInto(fd, 0, lenBuf);
    // The header's length first, against the file and the reference implementation's cap; only then the header.
    const n = lenBuf.readBigUInt64LE(0);
    if (8n + n > BigInt(size)) fail(`header length ${n} runs past the end of the file (${size} bytes)`);
    if (n > BigInt(MAX_HEADER)) fail(`header length ${n} exceeds ${MAX_HEADER} bytes`);
    budget.bytes(Number(n), 'the safetensors header');
    const headerBuf = Buffer.alloc(Number(n));
    readInto(fd, 8, headerBuf);
    const header = parseHeader(headerBuf, budget, HEADER_DEPTH, fail);
    if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
    const dataStart = 8 + Number(n);
    const dataSize = size - dataStart;
    const out = Object.create(null) as Record<string, Tensor>;
    let metadata: Record<string, string> | null = null;
    const ranges: Array<[number, number, string]> = [];
    const pending: Array<{ name: string; dtype: DType; shape: number[]; begin: number; numel: number }> = [];
    for (const [key, info] of Object.entries(header as Record<string, unknown>)) {
      const name = shown(key);
      if (key === '__metadata__') {
        if (info === null || typeof info !== 'object' || Array.isArray(info) || !Object.values(info).every((v) => typeof v === 'string')) {
          fail('__metadata__ must map strings to strings');
        }
        metadata = info as Record<string, string>;
        continue;
      }
      const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (t === null || typeof t !== 'object' || Array.isArray(t)) fail(`entry '${name}' is not an object`);
      const dtype = typeof t.dtype === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, t.dtype) ? DTYPES[t.dtype] : undefined;
      if (dtype === undefined) {
        throw new TypeError(`${file}: tensor '${name}' has dtype ${shown(String(t.dtype))}, which syncbn tensors do not hold (supported: F32, F64, F16, BF16, I64)`);
      }
      const shape = t.shape;
      if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        fail(`tensor '${name}' has a bad shape (expected at most ${MAX_DIMS} non-negative integers)`);
      }
      const offsets = t.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor '${name}' has bad data_offsets`);
      const [begin, end] = offsets as [number, number];
      const numel = (shape as number[]).reduce((a, b) => a * b, 1);
      if (end < begin || end - begin !== numel * dtypeSize(dtype)) {
        fail(`tensor '${name}': data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape [${(shape as number[]).join(', ')}] of ${t.dtype} needs ${numel * dtypeSize(dtype)}`);
      }
      if (end > dataSize) fail(`tensor '${name}' ends at byte ${end} of a ${dataSize}-byte data buffer (truncated file?)`);
      ranges.push([begin, end, name]);
      pending.push({ name: key, dtype, shape: shape as number[], begin, numel });
    }
    ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let covered = 0;
    for (const [begin, end, name] of ranges) {
      if (begin !== covered) fail(begin < covered ? `tensor '${name}' overlaps the one before it` : `bytes ${covered}-${begin} belong to no tensor`);
      covered = end;
    }
    if (covered !== dataSize) fail(`bytes ${covered}-${dataSize} after the last tensor belong to no tensor`);
    // Checked first, read after: straight from the file into each tensor's memory.
    for (const p of pending) {
      budget.bytes(p.numel * dtypeSize(p.dtype), () => `tensor '${shown(p.name)}'`);
      const data = allocate(p.dtype, p.numel);
      readInto(fd, dataStart + p.begin, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      out[p.name] = new Tensor(data, p.shape, 'contiguous', p.dtype);
    }
    if (metadata !== null) Object.defineProperty(out, '__metadata__', { value: metadata, enumerable: false, writable: true, configurable: true });
    return out;
  } catch (e) {
    const message = (e as { message?: unknown })?.message;
    const text = typeof message === 'string' ? message : String(e);
    if (text.startsWith(`${file}:`)) throw e;
    throw new RangeError(`${file}: invalid safetensors file: ${text}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a flat dict of tensors as safetensors; `metadata` becomes `__metadata__`. */
export function saveSafetensors(tensors: Record<string, Tensor>, file: string, metadata?: Record<string, string>): void {
  if (os.endianness() !== 'LE') throw new Error('save: writing safetensors on a big-endian host is not supported');
  if (tensors === null || typeof tensors !== 'object') throw new TypeError('save: safetensors holds a flat object of tensors');
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || !Object.values(metadata).every((v) => typeof v === 'string')) {
      throw new TypeError('save: safetensors metadata must map strings to strings');
    }
    header.__metadata__ = metadata;
  }
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new TypeError("save: '__metadata__' is reserved in safetensors and cannot name a tensor");
    if (!(t instanceof Tensor)) throw new TypeError(`save: safetensors holds tensors only; '${name}' is ${t === null ? 'null' : typeof t}`);
    if (t.disposed) throw new Error(`save: tensor '${name}' was disposed`);
    // safetensors is row-major: channels-last tensors are re-laid.
    const data = t.cpu().contiguous('contiguous').data;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype: NAMES[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    blobs.push(bytes);
  }
  let json = JSON.stringify(header);
  // Spaces pad the header to a multiple of 8, so the data starts aligned (as the reference writer does).
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  const fd = fs.openSync(file, 'w');
  try {
    let position = 0;
    const write = (b: Uint8Array): void => {
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, Math.min(b.length - done, 1 << 30), position + done);
      position += b.length;
    };
    write(head);
    write(Buffer.from(json, 'utf8'));
    for (const b of blobs) write(b);
  } finally {
    fs.closeSync(fd);
  }
}
