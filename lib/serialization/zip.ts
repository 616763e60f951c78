// The stored (uncompressed) zip archives that torch.save writes: a reader
// that finds entries through the central directory (ZIP64 included) and
// reads an entry's bytes straight into the caller's memory, and a writer that
// aligns each entry's data to 64 bytes as PyTorch's writer does.
//
// Written here rather than taken from npm: the zip readers there (yauzl,
// adm-zip, jszip) either stream an entry through chunk buffers or inflate it
// into a Buffer of their own, so a multi-GB checkpoint would pass through a
// second copy; torch.save never compresses, so what we need is the directory
// and positioned reads (fs.readSync into the tensor's own ArrayBuffer).
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { COST, LoadBudget, shown } from './budget';

/** One entry of the central directory. */
export interface ZipEntry {
  name: string;
  /** Absolute file offset of the entry's local header. */
  localOffset: number;
  size: number;
  /** Why the entry cannot be read (compressed, sizes that disagree), or null. */
  unreadable: string | null;
  /** Absolute file offset of the entry's data, once its local header was read. */
  dataOffset?: number;
}

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const END_SIG = 0x06054b50;
const END64_SIG = 0x06064b50;
const END64_LOCATOR_SIG = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  readInto(fd, position, buf);
  return buf;
}

/** Fills `into` from `position`, in reads of at most 1 GiB (readSync's length is an int32). */
export function readInto(fd: number, position: number, into: Uint8Array): void {
  let done = 0;
  while (done < into.length) {
    const n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (n === 0) throw new RangeError(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

function u64(buf: Buffer, at: number, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`zip: ${what} ${v} is beyond 2^53`);
  return Number(v);
}

/** The values a ZIP64 extra field (id 1) holds for the fields set to 0xFFFFFFFF, in their fixed order. */
function zip64Extra(extra: Buffer, want: { size: boolean; compressed: boolean; offset: boolean }): { size?: number; compressed?: number; offset?: number } {
  for (let at = 0; at + 4 <= extra.length;) {
    const id = extra.readUInt16LE(at);
    const len = extra.readUInt16LE(at + 2);
    if (id === 1) {
      const out: { size?: number; compressed?: number; offset?: number } = {};
      let p = at + 4;
      const take = (what: string): number => {
        if (p + 8 > at + 4 + len) throw new RangeError(`zip: ZIP64 extra field too short for the ${what}`);
        const v = u64(extra, p, what);
        p += 8;
        return v;
      };
      if (want.size) out.size = take('size');
      if (want.compressed) out.compressed = take('compressed size');
      if (want.offset) out.offset = take('local header offset');
      return out;
    }
    at += 4 + len;
  }
  throw new RangeError('zip: a field is 0xFFFFFFFF but the entry has no ZIP64 extra field');
}

/**
 * A zip archive open for positioned reads. Only stored entries are readable
 * (torch.save writes no others). Close it when done.
 */
export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private readonly fd: number;
  private readonly fileSize: number;

  /** `budget` pays for the central directory and what is read from the archive. */
  constructor(readonly path: string, private readonly budget: LoadBudget) {
    this.fd = fs.openSync(path, 'r');
    try {
      this.fileSize = fs.fstatSync(this.fd).size;
      this.readDirectory();
    } catch (e) {
      fs.closeSync(this.fd);
      throw this.named(e);
    }
  }

  /** Every error names the file: a corrupt field can surface from deep in a Buffer read. */
  private named(e: unknown): Error {
    const message = (e as { message?: unknown })?.message;
    const text = typeof message === 'string' ? message : String(e);
    if (text.startsWith(`${this.path}:`)) return e as Error;
    return new RangeError(`${this.path}: corrupt zip archive: ${text}`);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private readDirectory(): void {
    // The end record sits in the last 22 bytes plus a comment of up to 64 KiB.
    const tailLength = Math.min(this.fileSize, 22 + U16_MAX);
    const tailStart = this.fileSize - tailLength;
    const tail = readAt(this.fd, tailStart, tailLength);
    let end = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === END_SIG) {
        end = i;
        break;
      }
    }
    if (end < 0) throw new RangeError(`${this.path}: not a zip archive (no end of central directory record)`);
    let count = tail.readUInt16LE(end + 10);
    let dirSize = tail.readUInt32LE(end + 12);
    let dirOffset = tail.readUInt32LE(end + 16);
    if (count === U16_MAX || dirSize === U32_MAX || dirOffset === U32_MAX) {
      // ZIP64: a locator right before the end record points at the ZIP64 end record.
      const locAt = tailStart + end - 20;
      const loc = readAt(this.fd, locAt, 20);
      if (loc.readUInt32LE(0) !== END64_LOCATOR_SIG) throw new RangeError(`${this.path}: ZIP64 end of central directory locator missing`);
      const rec = readAt(this.fd, u64(loc, 8, 'ZIP64 end record offset'), 56);
      if (rec.readUInt32LE(0) !== END64_SIG) throw new RangeError(`${this.path}: ZIP64 end of central directory record missing`);
      count = u64(rec, 32, 'entry count');
      dirSize = u64(rec, 40, 'central directory size');
      dirOffset = u64(rec, 48, 'central directory offset');
    }
    if (dirOffset + dirSize > this.fileSize) throw new RangeError(`${this.path}: central directory runs past the end of the file (truncated?)`);
    this.budget.bytes(dirSize, 'the zip central directory');
    const dir = readAt(this.fd, dirOffset, dirSize);
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 46 > dir.length || dir.readUInt32LE(at) !== CENTRAL_SIG) throw new RangeError(`${this.path}: central directory entry ${i} is corrupt`);
      const method = dir.readUInt16LE(at + 10);
      let compressed = dir.readUInt32LE(at + 20);
      let size = dir.readUInt32LE(at + 24);
      const nameLen = dir.readUInt16LE(at + 28);
      const extraLen = dir.readUInt16LE(at + 30);
      const commentLen = dir.readUInt16LE(at + 32);
      let localOffset = dir.readUInt32LE(at + 42);
      this.budget.bytes(COST.object + COST.entry + COST.string(nameLen), 'the zip central directory');
      const name = dir.toString('utf8', at + 46, at + 46 + nameLen);
      const extra = dir.subarray(at + 46 + nameLen, at + 46 + nameLen + extraLen);
      if (size === U32_MAX || compressed === U32_MAX || localOffset === U32_MAX) {
        const z = zip64Extra(extra, { size: size === U32_MAX, compressed: compressed === U32_MAX, offset: localOffset === U32_MAX });
        size = z.size ?? size;
        compressed = z.compressed ?? compressed;
        localOffset = z.offset ?? localOffset;
      }
      at += 46 + nameLen + extraLen + commentLen;
      // Kept in the listing so that a read names the problem; torch.save never compresses.
      const unreadable = method !== 0 ? `is compressed (method ${method}); only stored entries (as torch.save writes them) are read`
        : compressed !== size ? `is stored, but its directory record gives two sizes (${compressed} and ${size} bytes)` : null;
      // The local header is read when the entry is: an archive of many entries costs no read each.
      this.entries.set(name, { name, localOffset, size, unreadable });
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The size in bytes of an entry (checked before a reader allocates for it). */
  sizeOf(name: string): number {
    return this.entry(name).size;
  }

  /** The entry, its data located through its local header (whose own name and extra lengths place the data). */
  private entry(name: string): ZipEntry & { dataOffset: number } {
    const e = this.entries.get(name);
    if (!e) throw new RangeError(`${this.path}: the archive has no entry '${shown(name)}'`);
    if (e.unreadable !== null) throw new RangeError(`${this.path}: entry '${shown(name)}' ${e.unreadable}`);
    if (e.dataOffset === undefined) {
      let local: Buffer;
      try {
        local = readAt(this.fd, e.localOffset, 30);
      } catch (err) {
        throw this.named(err);
      }
      if (local.readUInt32LE(0) !== LOCAL_SIG) throw new RangeError(`${this.path}: local header of '${shown(name)}' is corrupt`);
      const dataOffset = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      if (dataOffset + e.size > this.fileSize) throw new RangeError(`${this.path}: entry '${shown(name)}' runs past the end of the file (truncated?)`);
      e.dataOffset = dataOffset;
    }
    return e as ZipEntry & { dataOffset: number };
  }

  /** The whole entry as a Buffer (small records: data.pkl, byteorder), paid for from the budget. */
  read(name: string): Buffer {
    const e = this.entry(name);
    this.budget.bytes(e.size, () => `the record '${shown(name)}'`);
    try {
      return readAt(this.fd, e.dataOffset, e.size);
    } catch (err) {
      throw this.named(err);
    }
  }

  /** Reads the first `into.length` bytes of an entry straight into `into`. */
  readEntryInto(name: string, into: Uint8Array): void {
    const e = this.entry(name);
    if (into.length > e.size) throw new RangeError(`${this.path}: entry '${shown(name)}' has ${e.size} bytes, ${into.length} are needed`);
    try {
      readInto(this.fd, e.dataOffset, into);
    } catch (err) {
      throw this.named(err);
    }
  }
}

// Data starts at a multiple of this, so a reader may map storages in place (PyTorch's kFieldAlignment).
const ALIGNMENT = 64;

interface Written {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

/**
 * Writes a stored zip archive entry by entry. Sizes and CRCs are known before
 * each entry is written, so no data descriptors are needed; ZIP64 records are
 * written where a size or offset needs them.
 */
export class ZipWriter {
  private readonly fd: number;
  private position = 0;
  private readonly written: Written[] = [];

  /** `forceZip64` writes ZIP64 records even where sizes fit in 32 bits (tests use it to check readers). */
  constructor(path: string, private readonly forceZip64 = false) {
    this.fd = fs.openSync(path, 'w');
  }

  private write(buf: Uint8Array): void {
    let done = 0;
    while (done < buf.length) {
      done += fs.writeSync(this.fd, buf, done, Math.min(buf.length - done, 1 << 30), this.position + done);
    }
    this.position += buf.length;
  }

  /** Adds one stored entry; `data` is written as is, without a copy. */
  add(name: string, data: Uint8Array): void {
    const nameBytes = Buffer.from(name, 'utf8');
    const offset = this.position;
    const big = this.forceZip64 || data.length >= U32_MAX || offset >= U32_MAX;
    const zip64Len = big ? 4 + 16 : 0;
    // Pad with an "FB" extra field (as PyTorch does) so the data starts aligned.
    const base = offset + 30 + nameBytes.length + zip64Len + 4;
    const pad = (ALIGNMENT - (base % ALIGNMENT)) % ALIGNMENT;
    const header = Buffer.alloc(30 + nameBytes.length + zip64Len + 4 + pad);
    const crc = crc32(data);
    header.writeUInt32LE(LOCAL_SIG, 0);
    header.writeUInt16LE(big ? 45 : 20, 4);
    header.writeUInt16LE(0x0800, 6); // UTF-8 names
    header.writeUInt16LE(0, 8); // stored
    header.writeUInt32LE(crc >>> 0, 14);
    header.writeUInt32LE(big ? U32_MAX : data.length, 18);
    header.writeUInt32LE(big ? U32_MAX : data.length, 22);
    header.writeUInt16LE(nameBytes.length, 26);
    header.writeUInt16LE(zip64Len + 4 + pad, 28);
    nameBytes.copy(header, 30);
    let at = 30 + nameBytes.length;
    if (big) {
      header.writeUInt16LE(1, at);
      header.writeUInt16LE(16, at + 2);
      header.writeBigUInt64LE(BigInt(data.length), at + 4);
      header.writeBigUInt64LE(BigInt(data.length), at + 12);
      at += 20;
    }
    header.write('FB', at, 'latin1');
    header.writeUInt16LE(pad, at + 2);
    header.fill('Z', at + 4);
    this.write(header);
    this.write(data);
    this.written.push({ name: nameBytes, crc, size: data.length, offset });
  }

  /** Writes the central directory and closes the file. */
  finish(): void {
    try {
      const dirOffset = this.position;
      for (const w of this.written) {
        const sizeBig = this.forceZip64 || w.size >= U32_MAX;
        const offsetBig = this.forceZip64 || w.offset >= U32_MAX;
        const extraLen = sizeBig || offsetBig ? 4 + (sizeBig ? 16 : 0) + (offsetBig ? 8 : 0) : 0;
        const rec = Buffer.alloc(46 + w.name.length + extraLen);
        rec.writeUInt32LE(CENTRAL_SIG, 0);
        rec.writeUInt16LE(45, 4);
        rec.writeUInt16LE(extraLen ? 45 : 20, 6);
        rec.writeUInt16LE(0x0800, 8);
        rec.writeUInt16LE(0, 10);
        rec.writeUInt32LE(w.crc >>> 0, 16);
        rec.writeUInt32LE(sizeBig ? U32_MAX : w.size, 20);
        rec.writeUInt32LE(sizeBig ? U32_MAX : w.size, 24);
        rec.writeUInt16LE(w.name.length, 28);
        rec.writeUInt16LE(extraLen, 30);
        rec.writeUInt32LE(offsetBig ? U32_MAX : w.offset, 42);
        w.name.copy(rec, 46);
        if (extraLen) {
          let at = 46 + w.name.length;
          rec.writeUInt16LE(1, at);
          rec.writeUInt16LE(extraLen - 4, at + 2);
          at += 4;
          if (sizeBig) {
            rec.writeBigUInt64LE(BigInt(w.size), at);
            rec.writeBigUInt64LE(BigInt(w.size), at + 8);
            at += 16;
          }
          if (offsetBig) rec.writeBigUInt64LE(BigInt(w.offset), at);
        }
        this.write(rec);
      }
      const dirSize = this.position - dirOffset;
      const count = this.written.length;
      const needs64 = this.forceZip64 || count >= U16_MAX || dirSize >= U32_MAX || dirOffset >= U32_MAX;
      if (needs64) {
        const end64At = this.position;
        const rec = Buffer.alloc(56 + 20);
        rec.writeUInt32LE(END64_SIG, 0);
        rec.writeBigUInt64LE(44n, 4);
        rec.writeUInt16LE(45, 12);
        rec.writeUInt16LE(45, 14);
        rec.writeBigUInt64LE(BigInt(count), 24);
        rec.writeBigUInt64LE(BigInt(count), 32);
        rec.writeBigUInt64LE(BigInt(dirSize), 40);
        rec.writeBigUInt64LE(BigInt(dirOffset), 48);
        rec.writeUInt32LE(END64_LOCATOR_SIG, 56);
        rec.writeBigUInt64LE(BigInt(end64At), 64);
        rec.writeUInt32LE(1, 72);
        this.write(rec);
      }
      const end = Buffer.alloc(22);
      end.writeUInt32LE(END_SIG, 0);
      end.writeUInt16LE(Math.min(count, U16_MAX), 8);
      end.writeUInt16LE(Math.min(count, U16_MAX), 10);
      end.writeUInt32LE(needs64 ? U32_MAX : dirSize, 12);
      end.writeUInt32LE(needs64 ? U32_MAX : dirOffset, 16);
      this.write(end);
    } finally {
      fs.closeSync(this.fd);
    }
  }

  /** Closes the file without finishing it (after an error). */
  abort(): void {
    fs.closeSync(this.fd);
  }
}
