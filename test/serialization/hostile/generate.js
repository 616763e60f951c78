#!/usr/bin/env node
// The hostile checkpoint corpus (issue #31): crafted torch.save archives and
// safetensors files, each a few bytes to about a MiB, written to corpus/
// with manifest.json saying what `load` must do with each: refuse it with an
// error that names the file and matches `expect.error`, or load it to the
// value described by `expect.load` (summary.js; the value is built here
// independently of the reader). The flood files (tens of MB of one opcode, a
// 100 MB header) are not committed: `floods()` makes them at test time.
//
//   node test/serialization/hostile/generate.js     # rewrites corpus/ and manifest.json
//
// The archives are assembled here byte by byte (a pickle assembler and a
// stored-zip writer of this file's own), not with syncbn's writer, so that
// the zip and pickle structures can be broken on purpose.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { crc32 } = require('node:zlib');
const { ExpectedTensor, summarize, dict } = require('./summary');

const CORPUS = path.join(__dirname, 'corpus');
const MANIFEST = path.join(__dirname, 'manifest.json');

// ---- bytes -----------------------------------------------------------------

const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };
const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32LE(n); return b; };
const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const f32 = (values) => Buffer.from(new Float32Array(values).buffer);

/** Little-endian two's complement, as short as the sign allows (pickle's LONG1 encoding). */
function longBytes(v) {
  let x = BigInt(v);
  const out = [];
  if (x === 0n) return Buffer.alloc(0);
  for (;;) {
    const byte = Number(x & 0xffn);
    out.push(byte);
    x >>= 8n;
    if ((x === 0n && (byte & 0x80) === 0) || (x === -1n && (byte & 0x80) !== 0)) break;
  }
  return Buffer.from(out);
}

/** A pickle, opcode by opcode. */
class Pickle {
  constructor(proto = 2) {
    this.chunks = [];
    if (proto !== null) this.op(0x80, proto);
  }
  op(...bytes) { this.chunks.push(Buffer.from(bytes)); return this; }
  raw(b) { this.chunks.push(Buffer.isBuffer(b) ? b : Buffer.from(b, 'latin1')); return this; }
  str(s) { const b = Buffer.from(s, 'utf8'); return this.op(0x58).raw(u32(b.length)).raw(b); }
  int(v) {
    if (typeof v === 'number' && v >= 0 && v < 256) return this.op(0x4b, v);
    if (typeof v === 'number' && v >= 0 && v < 65536) return this.op(0x4d).raw(u16(v));
    if (typeof v === 'number' && v >= -(2 ** 31) && v < 2 ** 31) return this.op(0x4a).raw(i32(v));
    const b = longBytes(v);
    return this.op(0x8a, b.length).raw(b);
  }
  ints(values) {
    if (values.length === 0) return this.op(0x29);
    this.mark();
    for (const v of values) this.int(v);
    return this.op(0x74);
  }
  global(module, name) { return this.raw(`c${module}\n${name}\n`); }
  mark() { return this.op(0x28); }
  none() { return this.op(0x4e); }
  bool(b) { return this.op(b ? 0x88 : 0x89); }
  put(i) { return i < 256 ? this.op(0x71, i) : this.op(0x72).raw(u32(i)); }
  get(i) { return i < 256 ? this.op(0x68, i) : this.op(0x6a).raw(u32(i)); }
  stop() { return this.op(0x2e); }
  bytes() { return Buffer.concat(this.chunks); }
}

/** torch.save's tensor: _rebuild_tensor_v2(persistent storage, offset, size, stride, requires_grad, hooks). */
function tensorOps(p, { storage = 'FloatStorage', key = '0', numel, offset = 0, size, stride, requiresGrad = false }) {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', storage).str(key).str('cpu').int(numel).op(0x74, 0x51); // TUPLE, BINPERSID
  p.int(offset).ints(size).ints(stride).bool(requiresGrad);
  p.global('collections', 'OrderedDict').op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  return p.op(0x74, 0x52); // TUPLE, REDUCE
}

/** An OrderedDict whose values `entries` emit: [key, (p) => void]. */
function orderedDictOps(p, entries) {
  p.global('collections', 'OrderedDict').op(0x29, 0x52);
  if (entries.length === 0) return p;
  p.mark();
  for (const [k, emit] of entries) {
    p.str(k);
    emit(p);
  }
  return p.op(0x75); // SETITEMS
}

/**
 * A stored zip archive, as the Buffers to write in order; per entry,
 * `central` overrides what the directory says, `local` points the directory
 * at another entry's local header (writing none); `moreCentral`, directory
 * records already made, goes at the directory's end.
 */
function zipChunks(entries, { end = {}, tail = Buffer.alloc(0), moreCentral } = {}) {
  const chunks = [];
  let at = 0;
  const records = [];
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(e.badLocal ? 0xdeadbeef : 0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc32(e.data) >>> 0, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const offset = e.local === undefined ? at : e.local;
    if (e.local === undefined) {
      chunks.push(local, name, e.data);
      at += 30 + name.length + e.data.length;
    }
    records.push({ name, size: e.data.length, crc: crc32(e.data) >>> 0, offset, ...e.central });
  }
  const dirOffset = at;
  for (const r of records) {
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(r.method ?? 0, 10);
    c.writeUInt32LE(r.crc, 16);
    c.writeUInt32LE(r.compressed ?? r.size, 20);
    c.writeUInt32LE(r.size, 24);
    c.writeUInt16LE(r.name.length, 28);
    c.writeUInt32LE(r.offset, 42);
    chunks.push(c, r.name);
    at += 46 + r.name.length;
  }
  if (moreCentral) {
    chunks.push(moreCentral.records);
    at += moreCentral.records.length;
  }
  const dirSize = at - dirOffset;
  if (end.zip64 !== undefined) {
    // A ZIP64 end record and locator before the classic end record.
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    const count = end.zip64.count ?? records.length + (moreCentral ? moreCentral.count : 0);
    rec.writeBigUInt64LE(BigInt(count), 24);
    rec.writeBigUInt64LE(BigInt(count), 32);
    rec.writeBigUInt64LE(BigInt(dirSize), 40);
    rec.writeBigUInt64LE(BigInt(dirOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(end.zip64.noLocator ? 0 : 0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(at), 8);
    chunks.push(rec, loc);
    at += 76;
  }
  const e = Buffer.alloc(22);
  e.writeUInt32LE(0x06054b50, 0);
  const count = end.zip64 !== undefined ? 0xffff : end.count ?? records.length + (moreCentral ? moreCentral.count : 0);
  e.writeUInt16LE(Math.min(count, 0xffff), 8);
  e.writeUInt16LE(Math.min(count, 0xffff), 10);
  e.writeUInt32LE(end.dirSize ?? dirSize, 12);
  e.writeUInt32LE(end.dirOffset ?? dirOffset, 16);
  chunks.push(e, tail);
  return chunks;
}

const zipArchive = (entries, opts) => Buffer.concat(zipChunks(entries, opts));

/** The entries of a torch.save archive: data.pkl, optional byteorder, storages by key, version; `extra` entries after. */
function torchEntries(pkl, storages = {}, { byteorder, extra = [], pklEntry = {} } = {}) {
  const entries = [{ name: 'archive/data.pkl', data: pkl, ...pklEntry }];
  if (byteorder !== undefined) entries.push({ name: 'archive/byteorder', data: Buffer.from(byteorder, 'latin1') });
  for (const [k, data] of Object.entries(storages)) entries.push({ name: `archive/data/${k}`, data });
  entries.push({ name: 'archive/version', data: Buffer.from('3\n') }, ...extra);
  return entries;
}

const torchFile = (pkl, storages, opts) => zipArchive(torchEntries(pkl, storages, opts));

/** A safetensors file: the header's length (or `length`), the header, the data. */
function safetensors(header, data = Buffer.alloc(0), length) {
  const h = Buffer.isBuffer(header) ? header : Buffer.from(header, 'utf8');
  return Buffer.concat([u64(length ?? h.length), h, data]);
}

/** A pickle of a dict {key: value} whose value `emit` writes; the whole file a torch.save archive. */
function dictFile(key, emit, storages) {
  const p = new Pickle().op(0x7d).str(key);
  emit(p);
  return torchFile(p.op(0x73).stop().bytes(), storages);
}

/** A bare pickle (data.pkl) as an archive. */
const pickleFile = (p, storages) => torchFile(p.bytes(), storages);

// ---- the corpus --------------------------------------------------------------

const cases = [];
/** `expect`: { error: regex source, not?: regex source } or { load: the value load must return }. */
function add(cls, file, why, bytes, expect, maxBytes) {
  cases.push({ cls, file, why, bytes, expect, maxBytes });
}
const refuse = (error, not) => ({ error, ...(not ? { not } : {}) });
const loads = (value) => ({ load: value });
const ENDS_EARLY = 'the pickle ends early';

// 1. Lengths read from the file, signed or absurd.
{
  const cls = 'negative-lengths';
  for (const n of [-6, -5, -1e6]) {
    add(cls, `binstring-len${n}.pt`, `BINSTRING of length ${n} (read signed, it jumped backwards)`,
      pickleFile(new Pickle().op(0x54).raw(i32(n)).raw('abcdefgh').stop()), refuse(`${ENDS_EARLY}: ${2 ** 32 + n} bytes are asked for`));
  }
  add(cls, 'binunicode-len-ffffffff.pt', 'BINUNICODE of length 2^32-1', pickleFile(new Pickle().op(0x58).raw(u32(0xffffffff)).raw('ab').stop()),
    refuse(`${ENDS_EARLY}: 4294967295 bytes`));
  add(cls, 'binbytes-len-fffffff0.pt', 'BINBYTES of length 2^32-16', pickleFile(new Pickle().op(0x42).raw(u32(0xfffffff0)).stop()),
    refuse(`${ENDS_EARLY}: 4294967280 bytes`));
  add(cls, 'long4-len-minus1.pt', 'LONG4 of length -1', pickleFile(new Pickle().op(0x8b).raw(i32(-1)).stop()), refuse(`${ENDS_EARLY}: 4294967295 bytes`));
  add(cls, 'binunicode8-len-2e63.pt', 'BINUNICODE8 of length 2^63', pickleFile(new Pickle(4).op(0x8d).raw(u64(2n ** 63n)).stop()),
    refuse(`${ENDS_EARLY}: 9223372036854775808 bytes`));
  add(cls, 'short-binstring-past-end.pt', 'SHORT_BINSTRING of 255 bytes with 3 left', pickleFile(new Pickle().op(0x55, 0xff).raw('abc')),
    refuse(`${ENDS_EARLY}: 255 bytes`));
  add(cls, 'long-binget-unset.pt', 'LONG_BINGET 2^32-1, never put', pickleFile(new Pickle().op(0x6a).raw(u32(0xffffffff)).stop()),
    refuse('memo entry 4294967295 is not set'));
  add(cls, 'long-binput-2e32.pt', 'LONG_BINPUT at index 2^32-1 (legal: the memo is a map)', pickleFile(new Pickle().op(0x7d).put(0xffffffff).stop()),
    loads(dict([])));
  add(cls, 'frame-len-2e64.pt', 'FRAME announcing 2^64-1 bytes (a hint only)', pickleFile(new Pickle(4).op(0x95).raw(u64(2n ** 64n - 1n)).op(0x7d).stop()),
    loads(dict([])));
  add(cls, 'st-len-2e64.safetensors', 'safetensors header length 2^64-1', safetensors('{}', Buffer.alloc(0), 2n ** 64n - 1n),
    refuse('header length 18446744073709551615 runs past the end of the file \\(10 bytes\\)'));
}

// 2. What the pickle shares (memo references), cycles included.
{
  const cls = 'shared-memo';
  {
    const p = new Pickle().op(0x5d).put(0);
    let L = [];
    for (let i = 1; i <= 40; i++) {
      p.mark().get(i - 1).get(i - 1).op(0x6c).put(i).op(0x30);
      L = [L, L];
    }
    p.op(0x7d).str('x').get(40).op(0x73).stop();
    add(cls, 'lists-40-levels-shared.pt', 'L_i = [L_{i-1}, L_{i-1}], 40 levels: 1 KB, 2^40 nodes if copied', pickleFile(p), loads(dict([['x', L]])));
  }
  {
    const p = new Pickle().op(0x7d).put(0);
    let D = dict([]);
    for (let i = 1; i <= 40; i++) {
      p.op(0x7d).mark().str('a').get(i - 1).str('b').get(i - 1).op(0x75).put(i).op(0x30);
      D = dict([['a', D], ['b', D]]);
    }
    p.get(40).stop();
    add(cls, 'dicts-40-levels-shared.pt', 'D_i = {a: D_{i-1}, b: D_{i-1}}, 40 levels', pickleFile(p), loads(D));
  }
  {
    const p = new Pickle();
    const t = new ExpectedTensor('float32', [4], new Float32Array([1, 2, 3, 4]));
    const entries = [];
    orderedDictOps(p, Array.from({ length: 40 }, (_, i) => [`w${i}`, (q) => (i === 0 ? tensorOps(q, { numel: 4, size: [4], stride: [1] }).put(0) : q.get(0))]));
    for (let i = 0; i < 40; i++) entries.push([`w${i}`, t]);
    add(cls, 'tensor-referenced-40.pt', 'one tensor referenced by 40 keys (memo)', torchFile(p.stop().bytes(), { 0: f32([1, 2, 3, 4]) }), loads(dict(entries)));
  }
  {
    const L = [];
    L.push(L);
    add(cls, 'list-contains-itself.pt', 'L = [L]', pickleFile(new Pickle().op(0x7d).str('x').op(0x5d).put(0).get(0).op(0x61).op(0x73).stop()),
      loads(dict([['x', L]])));
    const D = dict([]);
    D.self = D;
    add(cls, 'dict-contains-itself.pt', "D = {'self': D}", pickleFile(new Pickle().op(0x7d).put(0).str('self').get(0).op(0x73).stop()), loads(D));
    const A = [];
    const B = [A];
    A.push(B);
    add(cls, 'lists-mutual-cycle.pt', 'A = [B], B = [A]',
      pickleFile(new Pickle().op(0x5d).put(0).op(0x5d).put(1).get(0).op(0x61).op(0x61).op(0x30).get(0).op(0x30).op(0x7d).str('a').get(0).op(0x73).stop()),
      // Stack: A B; B.append(A); A.append(B); then a dict {'a': A}.
      loads(dict([['a', A]])));
  }
  {
    const inner = Array.from({ length: 50000 }, (_, i) => i % 251);
    const p = new Pickle().op(0x5d).put(0).mark();
    for (const v of inner) p.int(v);
    p.op(0x65).op(0x30).op(0x5d).mark();
    for (let i = 0; i < 50000; i++) p.get(0);
    p.op(0x65).stop();
    add(cls, 'list-50k-refs-to-50k-list.pt', 'a list of 50k references to one 50k-item list (2.5e9 items if copied)',
      pickleFile(p), loads(Array.from({ length: 50000 }, () => inner)));
  }
}

// 3. Views that expand a small storage.
{
  const cls = 'expanded-views';
  const viewFile = (views, storage = 'FloatStorage', data = f32([1, 2, 3, 4]), numel = data.length / 4) => {
    const p = new Pickle();
    orderedDictOps(p, views.map(([k, v]) => [k, (q) => tensorOps(q, { storage, numel, ...v })]));
    return torchFile(p.stop().bytes(), { 0: data });
  };
  add(cls, 'view-32768x32768-stride0-f64.pt', 'float64 [32768, 32768], stride [0, 0] over 4 elements: 8 GiB if copied',
    viewFile([['w', { size: [32768, 32768], stride: [0, 0] }]], 'DoubleStorage', Buffer.from(new Float64Array([1, 2, 3, 4]).buffer), 4),
    refuse("'w' is a view \\(size \\[32768, 32768\\], stride \\[0, 0\\], offset 0\\) of a storage of 4 elements.*8589934592 bytes.*maxBytes"));
  {
    const p = new Pickle();
    orderedDictOps(p, Array.from({ length: 40 }, (_, i) => [`v${i}`, (q) => (i === 0 ? tensorOps(q, { numel: 4, size: [16384, 16384], stride: [0, 0] }).put(0) : q.get(0))]));
    add(cls, 'view-1gib-referenced-40.pt', 'a 1 GiB stride-0 view referenced by 40 keys', torchFile(p.stop().bytes(), { 0: f32([1, 2, 3, 4]) }),
      refuse("'v0' is a view .*1073741824 bytes"));
  }
  add(cls, 'views-40-distinct-4mib.pt', '40 distinct stride-0 views of 4 MiB each',
    viewFile(Array.from({ length: 40 }, (_, i) => [`v${i}`, { size: [1024, 1024], stride: [0, 0] }])), refuse("'v\\d+' is a view .*4194304 bytes"));
  add(cls, 'view-expand-1000.pt', 'a stride-0 view of 1000 elements (4 KB): copied out',
    viewFile([['e', { size: [1000], stride: [0], offset: 2 }]]), loads(dict([['e', new ExpectedTensor('float32', [1000], new Float32Array(1000).fill(3))]])));
  {
    const data = f32(Array.from({ length: 2000 }, (_, i) => i));
    const values = new Float32Array(1000 * 1000);
    for (let i = 0; i < 1000; i++) for (let j = 0; j < 1000; j++) values[i * 1000 + j] = i + j;
    add(cls, 'view-overlapping-1000x1000.pt', 'size [1000, 1000], stride [1, 1] over 2000 elements (4 MB copied out)',
      viewFile([['o', { size: [1000, 1000], stride: [1, 1] }]], 'FloatStorage', data), loads(dict([['o', new ExpectedTensor('float32', [1000, 1000], values)]])));
  }
  add(cls, 'view-transposed.pt', 'a transposed view (size [3, 2], stride [1, 3]): copied out',
    viewFile([['t', { size: [3, 2], stride: [1, 3] }]], 'FloatStorage', f32([1, 2, 3, 4, 5, 6])),
    loads(dict([['t', new ExpectedTensor('float32', [3, 2], new Float32Array([1, 4, 2, 5, 3, 6]))]])));
  const big = viewFile([['big', { size: [4096, 8192], stride: [0, 1], numel: 8192 }]], 'FloatStorage', f32(new Array(8192).fill(0.25)));
  add(cls, 'view-128mib-default.pt', 'a 128 MiB expanded view, default maxBytes', big, refuse("'big' is a view .*134217728 bytes.*maxBytes: "));
  add(cls, 'view-128mib-maxbytes.pt', 'the same file with load(path, { maxBytes: 256 MiB })', big,
    loads(dict([['big', new ExpectedTensor('float32', [4096, 8192], new Float32Array(4096 * 8192).fill(0.25))]])), 256 * 2 ** 20);
  add(cls, 'view-2e40-squared.pt', 'size [2^40, 2^40]: more elements than 2^53',
    viewFile([['h', { size: [2 ** 40, 2 ** 40], stride: [0, 0] }]]), refuse("'h' \\(size \\[1099511627776, 1099511627776\\].*spans more than 2\\^53 elements"));
  add(cls, 'view-2e34-unbounded.pt', 'a stride-0 view of 2^34 elements with maxBytes Infinity: past what V8 can allocate',
    viewFile([['u', { size: [2 ** 17, 2 ** 17], stride: [0, 0] }]]), refuse('could not allocate memory while reading it: Invalid typed array length'), 'Infinity');
  add(cls, 'view-100-dims.pt', 'a size of 100 dimensions', viewFile([['d', { size: new Array(100).fill(1), stride: new Array(100).fill(1) }]]),
    refuse('size is not a tuple of at most 64 non-negative integers'));
  add(cls, 'view-stride-2e52.pt', 'size [2], stride [2^52] over 4 elements', viewFile([['s', { size: [2], stride: [2 ** 52] }]]),
    refuse("'s' \\(size \\[2\\], stride \\[4503599627370496\\], offset 0\\) reaches past its storage of 4 elements"));
  add(cls, 'view-offset-past-storage.pt', 'offset 10 into 4 elements', viewFile([['f', { size: [1], stride: [1], offset: 10 }]]),
    refuse("'f' .* reaches past its storage of 4 elements"));
}

// 4. Long integers: decoded in linear time, absurd ones refused.
{
  const cls = 'long-integers';
  const { bytes, expect } = randomLong(256 * 1024);
  cases.push({ cls, file: 'long4-256kib.pt', why: 'a LONG4 of 256 KiB (35 s before: quadratic)', bytes, expect });
  {
    const values = [-1n, 2n ** 63n, -(2n ** 63n), 2n ** 53n, 0n, 255n, -(2n ** 53n) + 1n];
    const p = new Pickle().op(0x5d).mark();
    for (const v of values) {
      const b = longBytes(v);
      p.op(0x8a, b.length).raw(b);
    }
    p.op(0x65).stop();
    add(cls, 'long1-edges.pt', 'LONG1 values at the edges: -1, +-2^63, 2^53, 0, 255, -(2^53-1)', pickleFile(p),
      loads(values.map((v) => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v))));
  }
}

// 5. Opcode floods (small here; floods() below makes the large ones at test time).
{
  const cls = 'opcode-floods';
  add(cls, 'dup-200k.pt', '200k DUPs, then STOP', pickleFile(new Pickle().op(0x5d).raw(Buffer.alloc(2e5, 0x32)).stop()), loads([]));
  add(cls, 'marks-1001.pt', '1001 nested MARKs', pickleFile(new Pickle().raw(Buffer.alloc(1001, 0x28)).stop()), refuse('MARKs nest deeper than 1000 levels'));
  add(cls, 'marks-1000-tuples.pt', '1000 nested MARK ... TUPLE: loads',
    pickleFile(new Pickle().raw(Buffer.alloc(1000, 0x28)).raw(Buffer.alloc(1000, 0x74)).stop()), loads(nested(1000, [])));
  add(cls, 'none-pop-100k.pt', '100k NONE POP pairs, then a dict', pickleFile(new Pickle().raw(Buffer.alloc(2e5).fill('N0', 'latin1')).op(0x7d).stop()),
    loads(dict([])));
}

/** A file {'x': a positive LONG4 of `n` seeded random bytes}, and the summary it loads to, read from the bytes (not through BigInt). */
function randomLong(n) {
  const long = Buffer.alloc(n);
  for (let at = 0, k = 0; at < n; k++) at += crypto.createHash('sha256').update(`${n}:${k}`).digest().copy(long, at);
  long[n - 1] = 0x5a; // positive, no leading zero digit
  const hex = Buffer.from(long).reverse().toString('hex');
  const summary = { dict: [['x', { bigint: { negative: false, hexDigits: hex.length, low: hex.slice(-32), high: hex.slice(0, 32) } }]], proto: 'null' };
  return { bytes: dictFile('x', (p) => p.op(0x8b).raw(u32(n)).raw(long)), expect: { loadSummary: summary } };
}

function nested(levels, inner) {
  let v = inner;
  for (let i = 1; i < levels; i++) v = [v];
  return v;
}

// 6. safetensors headers.
{
  const cls = 'safetensors-header';
  const st = (name, why, header, data, expect, length) => add(cls, name, why, safetensors(header, data, length), expect);
  st('st-metadata-nested-256kib.safetensors', '256 KiB of nested arrays under __metadata__', `{"__metadata__":${'['.repeat(2 ** 18)}`, undefined,
    refuse("header nests deeper than the format's 3 levels \\(at byte 18\\)"));
  st('st-len-past-file.safetensors', 'a header length beyond the file', '{}', Buffer.alloc(90), refuse('header length 1000 runs past the end of the file \\(100 bytes\\)'), 1000);
  st('st-len-legacy-lookalike.safetensors', "a header length whose bytes start 80 02 (the legacy format's magic)", '{"a":1}', Buffer.alloc(0),
    refuse('header length 640 runs past the end of the file \\(15 bytes\\)'), 0x280);
  const tensorHeader = (entries) => JSON.stringify(Object.fromEntries(entries));
  st('st-shape-nested.safetensors', 'a shape of arrays', tensorHeader([['a', { dtype: 'F32', shape: [[1]], data_offsets: [0, 4] }]]), f32([1]),
    refuse("header nests deeper than the format's 3 levels"));
  {
    const n = 5000;
    const entries = [];
    const expected = [];
    for (let i = 0; i < n; i++) {
      entries.push([`t${i}`, { dtype: 'F32', shape: [1], data_offsets: [4 * i, 4 * i + 4] }]);
      expected.push([`t${i}`, new ExpectedTensor('float32', [1], new Float32Array([i]))]);
    }
    // Integer-like keys would come first; these sort as written.
    st('st-tensors-5k.safetensors', '5000 one-element tensors', tensorHeader(entries), f32(Array.from({ length: n }, (_, i) => i)), loads(dict(expected)));
  }
  {
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    const header = `{"__metadata__":{"__proto__":"m"},${names.map((k, i) => `"${k}":{"dtype":"F32","shape":[],"data_offsets":[${4 * i},${4 * i + 4}]}`).join(',')}}`;
    st('st-proto-names.safetensors', "tensors named '__proto__', 'constructor', 'toString', 'hasOwnProperty'", header, f32([1, 2, 3, 4]),
      loads(dict(names.map((k, i) => [k, new ExpectedTensor('float32', [], new Float32Array([i + 1]))]))));
  }
  st('st-dtype-constructor.safetensors', "dtype 'constructor' (a key of every object's prototype)", tensorHeader([['a', { dtype: 'constructor', shape: [1], data_offsets: [0, 4] }]]),
    f32([1]), refuse("tensor 'a' has dtype constructor, which syncbn tensors do not hold"));
  st('st-dtype-proto.safetensors', "dtype '__proto__'", tensorHeader([['a', { dtype: '__proto__', shape: [1], data_offsets: [0, 4] }]]), f32([1]),
    refuse("tensor 'a' has dtype __proto__"));
  st('st-not-json.safetensors', 'a header that is not JSON', '{abc', Buffer.alloc(0), refuse("header is not JSON \\(unexpected 'a' at byte 1\\)"));
  st('st-trailing-bytes.safetensors', 'JSON, then more', '{} x', Buffer.alloc(0), refuse("header is not JSON \\(unexpected 'x' at byte 3\\)"));
  st('st-string-unclosed.safetensors', 'a string never closed', '{"abc', Buffer.alloc(0), refuse('a string from byte 1 is not closed'));
  st('st-control-char.safetensors', 'a raw newline inside a string', '{"a\nb":1}', Buffer.alloc(0), refuse('unexpected byte 0xa at byte 3'));
  st('st-shape-overflow.safetensors', 'shape [2^53-1, 2^53-1] over 4 bytes',
    tensorHeader([['a', { dtype: 'F32', shape: [2 ** 53 - 1, 2 ** 53 - 1], data_offsets: [0, 4] }]]), f32([1]),
    refuse("tensor 'a': data_offsets \\[0, 4\\] hold 4 bytes, shape \\[9007199254740991, 9007199254740991\\]"));
  st('st-65-dims.safetensors', 'a shape of 65 dimensions', tensorHeader([['a', { dtype: 'F32', shape: new Array(65).fill(1), data_offsets: [0, 4] }]]), f32([1]),
    refuse("tensor 'a' has a bad shape \\(expected at most 64"));
  st('st-duplicate-names.safetensors', "the name 'a' twice: the last wins, as JSON.parse has it",
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32([7]),
    loads(dict([['a', new ExpectedTensor('float32', [1], new Float32Array([7]))]])));
  st('st-number-256kib.safetensors', 'a number of 256k digits', `{"a":{"dtype":"F32","shape":[${'9'.repeat(2 ** 18)}],"data_offsets":[0,4]}}`, f32([1]),
    refuse("tensor 'a' has a bad shape"));
  st('st-name-256kib.safetensors', 'a tensor name of 256k characters (the message shows 100)',
    `{"${'n'.repeat(2 ** 18)}":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, Buffer.alloc(1), refuse("tensor 'n{100}\\.\\.\\. \\(262144 characters\\)' has dtype U8"));
  st('st-metadata-not-strings.safetensors', '__metadata__ with a number', '{"__metadata__":{"a":1}}', Buffer.alloc(0), refuse('__metadata__ must map strings to strings'));
  st('st-top-array.safetensors', 'a header that is an array', '[1]', Buffer.alloc(0), refuse('not a safetensors file|neither'));
}

// 7. Errors that must name the file: depth, absurd sizes, zip records.
{
  const cls = 'depth-and-errors';
  add(cls, 'tuple1-depth-2000.pt', 'NONE then 2000 TUPLE1: ((((None,),),)...)', pickleFile(new Pickle().none().raw(Buffer.alloc(2000, 0x85)).stop()),
    refuse('the checkpoint\\[0\\]\\[0\\]\\.\\.\\.\\[0\\]\\[0\\]\\[0\\]\\[0\\] nests deeper than 1000 levels'));
  add(cls, 'tuple1-depth-1000.pt', 'NONE then 1000 TUPLE1: loads', pickleFile(new Pickle().none().raw(Buffer.alloc(1000, 0x85)).stop()), loads(nested(1001, null)));
  {
    const p = new Pickle().op(0x5d).put(0);
    for (let i = 1; i <= 2000; i++) p.get(i - 1).op(0x5d).put(i).op(0x61).op(0x30);
    add(cls, 'lists-depth-2000-memo.pt', '2000 lists nested outside in, through the memo', pickleFile(p.get(0).stop()), refuse('nests deeper than 1000 levels'));
  }
  {
    const p = new Pickle().op(0x7d).put(0);
    for (let i = 1; i <= 2000; i++) p.get(i - 1).str('a').op(0x7d).put(i).op(0x73).op(0x30);
    add(cls, 'dicts-depth-2000-memo.pt', '2000 dicts nested outside in', pickleFile(p.get(0).stop()),
      refuse("'a'\\['a'\\]\\.\\.\\.\\['a'\\]\\['a'\\]\\['a'\\]\\['a'\\] nests deeper than 1000 levels"));
  }
  add(cls, 'mark-memoized.pt', 'a MARK put in the memo, then read back inside another MARK (it came out as a value)',
    pickleFile(new Pickle().op(0x5d).mark().put(0).op(0x30).mark().get(0).op(0x65).stop()), refuse('malformed pickle: unexpected mark'));
  add(cls, 'marks-2000.pt', '2000 MARKs (stack overflow before)', pickleFile(new Pickle().raw(Buffer.alloc(2000, 0x28)).stop()), refuse('MARKs nest deeper than 1000 levels'));
  const storageRef = (numel) => {
    const p = new Pickle();
    orderedDictOps(p, [['w', (q) => tensorOps(q, { numel, size: [1], stride: [1] })]]);
    return torchFile(p.stop().bytes(), { 0: f32([1]) });
  };
  add(cls, 'storage-numel-1.2e24.pt', 'a storage of 1.2e24 elements (Invalid typed array length before)', storageRef(12n * 10n ** 23n),
    refuse('data.pkl: malformed storage reference'));
  add(cls, 'storage-numel-2e40.pt', 'a storage of 2^40 elements over 4 bytes', storageRef(2 ** 40),
    refuse("'w''s storage '0' should hold 1099511627776 elements \\(4398046511104 bytes\\), its record has 4"));
  const pkl = new Pickle().op(0x7d).stop().bytes();
  add(cls, 'zip-stored-sizes-disagree.pt', 'a stored data.pkl whose directory sizes disagree', torchFile(pkl, {}, { pklEntry: { central: { compressed: 2 } } }),
    refuse("entry 'archive/data.pkl' is stored, but its directory record gives two sizes \\(2 and 4 bytes\\)", 'compress'));
  add(cls, 'zip-deflated.pt', 'a deflated data.pkl', torchFile(pkl, {}, { pklEntry: { central: { method: 8 } } }),
    refuse("entry 'archive/data.pkl' is compressed \\(method 8\\)"));
}

// 8. '__proto__' and other keys of Object.prototype.
{
  const cls = 'proto-keys';
  const t = new ExpectedTensor('float32', [2], new Float32Array([1, 2]));
  {
    const p = new Pickle();
    orderedDictOps(p, [
      ['__proto__', (q) => tensorOps(q, { numel: 2, size: [2], stride: [1] })],
      ['constructor', (q) => q.int(1)],
      ['toString', (q) => q.str('x')],
      ['hasOwnProperty', (q) => q.op(0x5d)],
    ]);
    add(cls, 'proto-key-state-dict.pt', "a state dict with keys '__proto__' (a tensor), 'constructor', 'toString', 'hasOwnProperty'",
      torchFile(p.stop().bytes(), { 0: f32([1, 2]) }), loads(dict([['__proto__', t], ['constructor', 1], ['toString', 'x'], ['hasOwnProperty', []]])));
  }
  add(cls, 'proto-key-nested.pt', "{'a': {'__proto__': {'polluted': 1}}}",
    pickleFile(new Pickle().op(0x7d).str('a').op(0x7d).str('__proto__').op(0x7d).str('polluted').int(1).op(0x73, 0x73, 0x73).stop()),
    loads(dict([['a', dict([['__proto__', dict([['polluted', 1]])]])]])));
  {
    const p = new Pickle();
    orderedDictOps(p, [['w', (q) => tensorOps(q, { numel: 2, size: [2], stride: [1] })]]);
    p.op(0x7d).str('_metadata');
    orderedDictOps(p, [['__proto__', (q) => q.op(0x7d).str('version').int(1).op(0x73)], ['', (q) => q.op(0x7d).str('version').int(2).op(0x73)]]);
    p.op(0x73, 0x62).stop(); // SETITEM, BUILD
    add(cls, 'proto-key-metadata.pt', "a _metadata prefix '__proto__'", torchFile(p.bytes(), { 0: f32([1, 2]) }),
      loads(dict([['w', t]], dict([['__proto__', dict([['version', 1]])], ['', dict([['version', 2]])]]))));
  }
  add(cls, 'proto-tuple-key.pt', "a tuple key ('__proto__',)",
    pickleFile(new Pickle().op(0x7d).str('__proto__').op(0x85).int(5).op(0x73).stop()), loads(dict([['__proto__', 5]])));
  add(cls, 'key-nested-tuple.pt', 'a key that is a tuple of tuples', pickleFile(new Pickle().op(0x7d).op(0x29).op(0x85).int(5).op(0x73).stop()),
    refuse('a dict key that is a nested tuple'));
}

// 9. Code execution attempts (the allow-list).
{
  const cls = 'code-execution';
  const call = (module, name) => pickleFile(new Pickle().global(module, name).str('touch /tmp/syncbn-pwned').op(0x85, 0x52).stop());
  add(cls, 'global-posix-system.pt', 'os.system via GLOBAL + REDUCE', call('posix', 'system'), refuse("refusing to load the global 'posix.system'"));
  add(cls, 'stack-global-builtins-eval.pt', 'builtins.eval via STACK_GLOBAL',
    pickleFile(new Pickle(4).str('builtins').str('eval').op(0x93).str('1').op(0x85, 0x52).stop()), refuse("refusing to load the global 'builtins.eval'"));
  for (const [op, name] of [[0x69, 'inst'], [0x6f, 'obj'], [0x81, 'newobj'], [0x82, 'ext1'], [0x50, 'persid-text'], [0x8f, 'empty-set']]) {
    add(cls, `opcode-${name}.pt`, `opcode 0x${op.toString(16)}`, pickleFile(new Pickle().op(op).stop()),
      refuse(`refusing pickle opcode 0x${op.toString(16)} at byte 2`));
  }
  add(cls, 'reduce-storage-class.pt', 'calling torch.FloatStorage', pickleFile(new Pickle().global('torch', 'FloatStorage').op(0x29, 0x52).stop()),
    refuse("refusing to call 'torch.FloatStorage'"));
  add(cls, 'build-on-list.pt', 'BUILD on a list', pickleFile(new Pickle().op(0x5d, 0x7d, 0x62).stop()), refuse('refusing BUILD'));
  add(cls, 'global-name-256kib.pt', 'a GLOBAL module name of 256k bytes (the message shows 100)',
    pickleFile(new Pickle().raw(`c${'m'.repeat(2 ** 18)}\nsystem\n`).stop()), refuse("refusing to load the global 'm{100}\\.\\.\\. \\(262144 characters\\)\\.system'"));
  add(cls, 'global-no-newline.pt', 'GLOBAL without its newline', pickleFile(new Pickle().raw('ctorch')), refuse(ENDS_EARLY));
  add(cls, 'persid-dict.pt', 'a persistent id that is a dict', pickleFile(new Pickle().op(0x7d, 0x51).stop()), refuse('unsupported persistent id'));
  add(cls, 'persid-type-string.pt', "a storage reference whose type is the string 'FloatStorage'",
    pickleFile(new Pickle().mark().str('storage').str('FloatStorage').str('0').str('cpu').int(1).op(0x74, 0x51).stop()), refuse('malformed storage reference'));
}

// 10. Zip structure.
{
  const cls = 'zip-structure';
  const pkl = new Pickle().op(0x7d).stop().bytes();
  const ok = torchFile(pkl);
  add(cls, 'zip-no-end-record.pt', 'the end record cut off', ok.subarray(0, ok.length - 22), refuse('not a zip archive \\(no end of central directory record\\)'));
  add(cls, 'zip-dir-past-end.pt', 'a central directory beyond the file',
    zipArchive([{ name: 'archive/data.pkl', data: pkl }], { end: { dirOffset: 1e9 } }), refuse('central directory runs past the end of the file'));
  add(cls, 'zip64-count-2e50.pt', 'a ZIP64 entry count of 2^50 over 2 entries',
    zipArchive([{ name: 'archive/data.pkl', data: pkl }, { name: 'archive/version', data: Buffer.from('3\n') }], { end: { zip64: { count: 2 ** 50 } } }),
    refuse('central directory entry 2 is corrupt'));
  add(cls, 'zip64-locator-missing.pt', 'count 0xFFFF without a ZIP64 locator',
    zipArchive([{ name: 'archive/data.pkl', data: pkl }], { end: { zip64: { noLocator: true } } }), refuse('ZIP64 end of central directory locator missing'));
  add(cls, 'zip-local-offset-past-end.pt', "data.pkl's local header beyond the file",
    zipArchive([{ name: 'archive/data.pkl', data: pkl, central: { offset: 1e8 } }]), refuse('corrupt zip archive: unexpected end of file'));
  add(cls, 'zip-local-bad-signature.pt', "data.pkl's local header signature wrong",
    zipArchive([{ name: 'archive/version', data: Buffer.from('3\n') }, { name: 'archive/data.pkl', data: pkl, badLocal: true }]),
    refuse("local header of 'archive/data.pkl' is corrupt"));
  add(cls, 'zip-entry-past-end.pt', 'an entry whose size runs past the file',
    zipArchive([{ name: 'archive/data.pkl', data: pkl, central: { size: 1e6, compressed: 1e6 } }]), refuse("entry 'archive/data.pkl' runs past the end of the file"));
  {
    // 300 directory records all pointing at one 256 KiB storage record.
    const data = f32(new Array(2 ** 16).fill(1));
    const p = new Pickle();
    orderedDictOps(p, Array.from({ length: 300 }, (_, i) => [`w${i}`, (q) => tensorOps(q, { key: String(i), numel: 2 ** 16, size: [2 ** 16], stride: [1] })]));
    const entries = [{ name: 'archive/data.pkl', data: p.stop().bytes() }, { name: 'archive/data/0', data }];
    const file = zipArchive(entries);
    const local0 = file.indexOf(Buffer.from('archive/data/0')) - 30;
    const aliased = [entries[0], entries[1], ...Array.from({ length: 299 }, (_, i) => ({ name: `archive/data/${i + 1}`, data, local: local0 }))];
    add(cls, 'zip-aliased-storages-300.pt', '300 storage records sharing one 256 KiB of data: 75 MiB if all read', zipArchive(aliased),
      refuse("the storage '\\d+' of 'w\\d+' would take load past the memory it may use for this file: 262272 bytes more after"));
  }
  {
    add(cls, 'zip-entries-5k.pt', '5000 more directory records (all at one local header)',
      Buffer.concat(zipChunks(torchEntries(pkl), { moreCentral: centralRecords(5000, 0) })), loads(dict([])));
  }
  {
    const p = new Pickle();
    orderedDictOps(p, [['w', (q) => tensorOps(q, { numel: 3, size: [3], stride: [1] })]]);
    const be = Buffer.alloc(12);
    [1.5, -2, 3.25].forEach((v, i) => be.writeFloatBE(v, 4 * i));
    add(cls, 'zip-byteorder-big.pt', 'a big-endian archive (byteorder: big)', torchFile(p.stop().bytes(), { 0: be }, { byteorder: 'big' }),
      loads(dict([['w', new ExpectedTensor('float32', [3], new Float32Array([1.5, -2, 3.25]))]])));
  }
  add(cls, 'zip-byteorder-unknown.pt', "byteorder 'middle'", torchFile(pkl, {}, { byteorder: 'middle' }), refuse("unknown byte order 'middle'"));
  add(cls, 'zip-byteorder-64kib.pt', 'a byteorder record of 64 KiB', torchFile(pkl, {}, { byteorder: 'l'.repeat(2 ** 16) }),
    refuse("the byteorder record has 65536 bytes; expected 'little' or 'big'"));
  add(cls, 'zip-no-data-pkl.pt', 'an archive without data.pkl', zipArchive([{ name: 'archive/version', data: Buffer.from('3\n') }]), refuse('without <archive>/data.pkl'));
  add(cls, 'zip-name-64k.pt', 'an extra entry with a 65535-byte name', torchFile(pkl, {}, { extra: [{ name: 'x'.repeat(65535), data: Buffer.alloc(1) }] }),
    loads(dict([])));
}

// 11. Truncation of a small real-shaped state dict (tensors, a parameter, _metadata).
{
  const cls = 'truncation';
  const p = new Pickle();
  orderedDictOps(p, [
    ['bn.weight', (q) => tensorOps(q, { numel: 4, size: [4], stride: [1] })],
    ['bn.running_mean', (q) => tensorOps(q, { numel: 4, offset: 0, size: [2, 2], stride: [2, 1], key: '1', storage: 'DoubleStorage' })],
    ['bn.num_batches_tracked', (q) => tensorOps(q, { numel: 1, size: [], stride: [], key: '2', storage: 'LongStorage' })],
  ]);
  p.op(0x7d).str('_metadata');
  orderedDictOps(p, [['bn', (q) => q.op(0x7d).str('version').int(2).op(0x73)]]);
  const pkl = p.op(0x73, 0x62).stop().bytes();
  const storages = { 0: f32([1, 2, 3, 4]), 1: Buffer.from(new Float64Array([5, 6, 7, 8]).buffer), 2: Buffer.from(new BigInt64Array([9n]).buffer) };
  const good = torchFile(pkl, storages);
  add(cls, 'state-dict-whole.pt', 'the whole file: loads', good, loads(dict([
    ['bn.weight', new ExpectedTensor('float32', [4], new Float32Array([1, 2, 3, 4]))],
    ['bn.running_mean', new ExpectedTensor('float64', [2, 2], new Float64Array([5, 6, 7, 8]))],
    ['bn.num_batches_tracked', new ExpectedTensor('int64', [], new BigInt64Array([9n]))],
  ], dict([['bn', dict([['version', 2]])]]))));
  for (const k of [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377]) {
    if (k >= pkl.length) continue;
    add(cls, `pickle-cut-at-${pkl.length - k}.pt`, `data.pkl cut ${k} bytes short`, torchFile(pkl.subarray(0, pkl.length - k), storages),
      refuse('ends early|ends without STOP|stack underflow|no mark|unexpected mark|not a (dict|list|tuple|global)|not a storage|persistent id'));
  }
  for (const k of [1, 22, 100, 500]) add(cls, `file-cut-${k}.pt`, `the archive cut ${k} bytes short`, good.subarray(0, good.length - k), refuse('.'));
}

// 12. Tensor records.
{
  const cls = 'tensor-records';
  const one = (args, storages = { 0: f32([1, 2, 3, 4]) }, wrap = (q, emit) => emit(q)) => {
    const p = new Pickle();
    orderedDictOps(p, [['w', (q) => wrap(q, (r) => tensorOps(r, { numel: 4, size: [4], stride: [1], ...args }))]]);
    return torchFile(p.stop().bytes(), storages);
  };
  add(cls, 'storage-int32.pt', 'an IntStorage', one({ storage: 'IntStorage' }), refuse("'w' has dtype torch.int32, which syncbn tensors do not hold"));
  add(cls, 'storage-record-missing.pt', 'a storage whose record is missing', one({}, {}), refuse("the archive has no entry 'archive/data/0'"));
  add(cls, 'size-stride-rank-mismatch.pt', 'size of 2 dims, stride of 1', one({ size: [2, 2], stride: [1] }), refuse('size has 2 dims but stride 1'));
  add(cls, 'offset-negative.pt', 'storage offset -1', one({ offset: -1 }), refuse('storage offset is not a non-negative integer'));
  add(cls, 'bare-storage.pt', 'a storage, not a tensor',
    torchFile(new Pickle().op(0x7d).str('s').mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(4).op(0x74, 0x51, 0x73).stop().bytes(), { 0: f32([1, 2, 3, 4]) }),
    refuse("'s' is a bare storage"));
  add(cls, 'parameter.pt', '_rebuild_parameter(tensor, True, OrderedDict())',
    one({}, undefined, (q, emit) => { q.global('torch._utils', '_rebuild_parameter').mark(); emit(q); q.bool(true).global('collections', 'OrderedDict').op(0x29, 0x52, 0x74, 0x52); }),
    loads(dict([['w', new ExpectedTensor('float32', [4], new Float32Array([1, 2, 3, 4]), true)]])));
  add(cls, 'parameter-of-list.pt', '_rebuild_parameter of a list',
    pickleFile(new Pickle().global('torch._utils', '_rebuild_parameter').mark().op(0x5d).bool(true).op(0x74, 0x52).stop()), refuse('the data is not a tensor'));
}

// 13. Work repeated on shared objects (quadratic without a step budget).
{
  const cls = 'step-hogs';
  {
    // A 20k-entry dict, BUILT into a small dict 30k times.
    const p = new Pickle().op(0x7d).put(1).op(0x7d).mark();
    for (let i = 0; i < 20000; i++) p.int(i).none();
    p.op(0x75).put(2).op(0x30);
    for (let i = 0; i < 30000; i++) p.get(2).op(0x62);
    add(cls, 'build-20k-x30k.pt', 'BUILD of a 20k-entry dict, 30k times (6e8 sets)', pickleFile(p.stop()), refuse('steps|would take load past the memory'));
  }
  {
    // The same with the memory limit lifted: the step budget stops it (about 8 steps a byte of pickle).
    const p = new Pickle().op(0x7d).put(1).op(0x7d).mark();
    for (let i = 0; i < 20000; i++) p.int(i).none();
    p.op(0x75).put(2).op(0x30);
    for (let i = 0; i < 30000; i++) p.get(2).op(0x62);
    add(cls, 'build-20k-x30k-maxbytes-2e50.pt', 'the same, maxBytes 2^50', pickleFile(p.stop()),
      refuse('reading data.pkl takes more than \\d+ steps'), 2 ** 50);
  }
  {
    const p = new Pickle().op(0x5d).mark();
    for (let i = 0; i < 20000; i++) p.int(i).int(i).op(0x86);
    p.op(0x65).put(1).op(0x30).global('collections', 'OrderedDict').put(2).op(0x30);
    for (let i = 0; i < 30000; i++) p.get(2).get(1).op(0x85, 0x52, 0x30);
    add(cls, 'ordereddict-20k-x30k.pt', 'OrderedDict(pairs) of 20k pairs, 30k times', pickleFile(p.op(0x7d).stop()), refuse('steps|would take load past the memory'));
  }
}

{
  // One 20k-item tuple as the key of 20k dicts: joined into a string for each.
  const p = new Pickle().mark();
  for (let i = 0; i < 20000; i++) p.int(i % 256);
  p.op(0x74).put(300).op(0x30).op(0x5d).mark();
  for (let i = 0; i < 20000; i++) p.op(0x7d).get(300).none().op(0x73);
  add('step-hogs', 'tuple-key-20k-x20k.pt', 'a 20k-item tuple keying 20k dicts (4e8 items joined)', pickleFile(p.op(0x65).stop()),
    refuse('steps|would take load past the memory'));
}

// ---- floods, made at test time --------------------------------------------------

/** Writes `chunks` to the file `f`, one after another (no copy of a flood into one Buffer). */
function writeChunks(f, chunks) {
  const fd = fs.openSync(f, 'w');
  try {
    for (const c of chunks) fs.writeSync(fd, c);
  } finally {
    fs.closeSync(fd);
  }
}

/** `count` directory records named a/0, a/1... all pointing at the local header at `offset` (never read: nothing loads them). */
function centralRecords(count, offset) {
  const names = Array.from({ length: count }, (_, i) => `a/${i}`);
  const records = Buffer.alloc(names.reduce((n, s) => n + 46 + s.length, 0));
  let at = 0;
  for (const name of names) {
    records.writeUInt32LE(0x02014b50, at);
    records.writeUInt16LE(20, at + 4);
    records.writeUInt16LE(20, at + 6);
    records.writeUInt16LE(name.length, at + 28);
    records.writeUInt32LE(offset, at + 42);
    records.write(name, at + 46, 'latin1');
    at += 46 + name.length;
  }
  return { records, count };
}

/** Large files of one opcode or one header, made at test time: { file, cls, why, make(path), expect }. */
function floods() {
  const flood = (head, fill, n, tail = Buffer.from([0x2e])) => (f) => {
    const pkl = Buffer.alloc(head.length + n + tail.length);
    head.copy(pkl, 0);
    pkl.fill(fill, head.length, head.length + n, 'latin1');
    tail.copy(pkl, head.length + n);
    writeChunks(f, zipChunks(torchEntries(pkl)));
  };
  const budget = 'reading data.pkl would take load past the memory it may use for this file: .* maxBytes is';
  const p2 = Buffer.from([0x80, 2]);
  return [
    ['dup-120m.pt', 'opcode-floods', '120 million DUPs (SIGTRAP in 2.5 s before)', flood(Buffer.from([0x80, 2, 0x5d]), 0x32, 120e6), refuse(budget)],
    ['dup-50m.pt', 'opcode-floods', '50 million DUPs (1.5 GB before)', flood(Buffer.from([0x80, 2, 0x5d]), 0x32, 50e6), refuse(budget)],
    ['mark-10m.pt', 'opcode-floods', '10 million MARKs (491 MB before)', flood(p2, 0x28, 10e6), refuse('MARKs nest deeper than 1000 levels')],
    ['empty-list-100m.pt', 'opcode-floods', '100 million EMPTY_LISTs', flood(p2, 0x5d, 100e6), refuse(budget)],
    ['memoize-50m.pt', 'opcode-floods', '50 million MEMOIZEs of one dict', flood(Buffer.from([0x80, 4, 0x7d]), 0x94, 50e6), refuse(budget)],
    ['none-pop-100m.pt', 'opcode-floods', '50 million NONE POP pairs', flood(p2, 'N0', 100e6), refuse(budget)],
    ['long4-1mib.pt', 'long-integers', 'a LONG4 of 1 MiB (over a minute before)', (f) => fs.writeFileSync(f, randomLong(2 ** 20).bytes),
      { load: loadExpectation(randomLong(2 ** 20).expect.loadSummary) }],
    ['long4-1mib-plus-1.pt', 'long-integers', 'a LONG4 of 1 MiB + 1 byte: beyond the cap', flood(Buffer.from([0x80, 2, 0x8b, 1, 0, 0x10, 0]), 1, 2 ** 20 + 1),
      refuse('an integer of 1048577 bytes \\(LONG4\\): beyond the 1048576 bytes')],
    ['long4-64mib.pt', 'long-integers', 'a LONG4 of 64 MiB', flood(Buffer.from([0x80, 2, 0x8b, 0, 0, 0, 4]), 7, 2 ** 26), refuse('an integer of 67108864 bytes')],
    ['st-metadata-nested-100mb.safetensors', 'safetensors-header', 'a 100 MB header of nested arrays under __metadata__ (4.9 GB for 18 s before)', (f) => {
      const header = Buffer.alloc(1e8, '[');
      header.write('{"__metadata__":', 0, 'latin1');
      writeChunks(f, [u64(header.length), header]);
    }, refuse("header nests deeper than the format's 3 levels")],
    ['st-header-over-cap.safetensors', 'safetensors-header', 'a header length of 100 MB + 1 in a 101 MB (sparse) file', (f) => {
      fs.writeFileSync(f, safetensors('{', Buffer.alloc(0), 1e8 + 1));
      fs.truncateSync(f, 101e6);
    }, refuse('header length 100000001 exceeds 100000000 bytes')],
    ['zip-entries-1m.pt', 'zip-structure', 'a central directory of a million entries (about 55 MB)', (f) => {
      writeChunks(f, zipChunks(torchEntries(new Pickle().op(0x7d).stop().bytes()), { moreCentral: centralRecords(1e6, 0), end: { zip64: {} } }));
    }, refuse('the zip central directory would take load past the memory')],
  ].map(([file, cls, why, make, expect]) => ({ file, cls, why, make, expect }));
}

// ---- writing -------------------------------------------------------------------

function sha1(text) {
  return crypto.createHash('sha1').update(text).digest('hex');
}

/** What the manifest says a file must load to: the summary itself when short, else its length and SHA-1. */
function loadExpectation(summary) {
  const text = JSON.stringify(summary);
  return text.length <= 2000 ? { summary } : { summaryLength: text.length, summarySha1: sha1(text) };
}

function write() {
  fs.rmSync(CORPUS, { recursive: true, force: true });
  fs.mkdirSync(CORPUS);
  const manifest = [];
  let total = 0;
  for (const c of cases) {
    if (manifest.some((m) => m.file === c.file)) throw new Error(`duplicate corpus file ${c.file}`);
    const file = c.file;
    fs.writeFileSync(path.join(CORPUS, file), c.bytes);
    total += c.bytes.length;
    let expect = c.expect;
    if ('load' in expect) expect = { load: loadExpectation(summarize(expect.load)) };
    else if ('loadSummary' in expect) expect = { load: loadExpectation(expect.loadSummary) };
    manifest.push({ file, class: c.cls, why: c.why, expect, ...(c.maxBytes !== undefined ? { maxBytes: c.maxBytes } : {}) });
  }
  fs.writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 1)}\n`);
  process.stdout.write(`${manifest.length} files, ${(total / 2 ** 20).toFixed(2)} MiB, in ${path.relative(process.cwd(), CORPUS)}\n`);
}

if (require.main === module) write();

module.exports = { floods, sha1 };
