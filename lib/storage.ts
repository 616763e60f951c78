// Storage for op outputs. A fresh `new Float32Array(n)` is zeroed (and
// page-faults on first touch): for a 25 MB batch-norm output that costs as
// much as the op. Two paths avoid it:
// - Outputs nobody frees (`y = bn.forward(x)` in a loop, as users write it)
//   are allocated uninitialized by Node's allocator, whose memory V8 frees
//   when a collection finds the array dead; glibc is told to keep freed
//   blocks of these sizes in the heap, so the next output reuses warm pages
//   instead of faulting fresh ones in (bench/NOTES.md 30).
// - Outputs that their owner disposes go back to a free list keyed by
//   length, and the next output of that length takes the array at once.
// - Small outputs (per-channel statistics) are slices of a shared slab, as
//   Node's Buffer.allocUnsafe pool hands out: a new ArrayBuffer of a few
//   hundred bytes would make V8 check its young-generation buffer bytes,
//   which lag behind a large output just freed, and scavenge a second time
//   in the same call, promoting the output the user still holds; each
//   promoted output then costs part of a mark-compact (bench/NOTES.md 32).
// Either way the ops write every element, and no output ever shares memory
// with a tensor that is still reachable. The 16-bit floats are held as
// Uint16Array bits.
import { native } from './native';
import type { FloatStorage } from './tensor';

type FloatDtype = 'float32' | 'float64';
/** The dtypes of op outputs: the floats, and the 16-bit floats as their bits. */
type OutputDtype = FloatDtype | 'float16' | 'bfloat16';
/** An op output's array. */
type OutputArray = FloatStorage | Uint16Array;
/** Free lists and slices are kept per array kind (the 16-bit floats share one). */
type Kind = FloatDtype | 'uint16';

// Below this many bytes zeroing is cheap and pooling not worth it.
const POOLED_BYTES = 1 << 16;
// Arrays up to this many bytes are slab slices; a slab lives while any of its
// slices does, so a small array kept forever pins at most 16x its size.
const SLICED_BYTES = 4096;
const SLAB_BYTES = 1 << 16;
// glibc's largest mmap threshold (32 MiB on 64-bit): blocks up to this come
// from the heap and can be reused; larger ones are mapped and unmapped per
// output, as PyTorch's are.
const HEAP_BLOCK_BYTES = 32 << 20;
// Freed heap kept in the process before glibc returns it to the system: room
// for a training loop's outputs in flight between collections (a 300-step
// loop at 32x64x56x56 peaks near 250 MB, bench/NOTES.md 30).
const KEPT_FREE_BYTES = 256 << 20;
// Cached arrays beyond this are left to the garbage collector.
const MAX_CACHED_BYTES = 1 << 30;

// Free arrays by length, one map per array kind: a string key per lookup
// cost more than the rest of taking an array (bench/NOTES.md 29).
const free = { float32: new Map<number, OutputArray[]>(), float64: new Map<number, OutputArray[]>(), uint16: new Map<number, OutputArray[]>() };
let cachedBytes = 0;
// Arrays from outputArray() not yet wrapped by a tensor, and those wrapped by
// exactly one: only the latter's tensor may recycle them.
const handedOut = new WeakSet<object>();
const owned = new WeakSet<object>();

const stats = { hits: 0, misses: 0 };

// Only arrays made by outputArray() are recycled, all in this realm.
function kindOf(array: OutputArray): Kind {
  return array instanceof Float64Array ? 'float64' : array instanceof Uint16Array ? 'uint16' : 'float32';
}

function kindOfDtype(dtype: OutputDtype): Kind {
  return dtype === 'float16' || dtype === 'bfloat16' ? 'uint16' : dtype;
}

const BYTES: Record<Kind, number> = { float32: 4, float64: 8, uint16: 2 };

function view(kind: Kind, buffer: ArrayBuffer, offset: number, length: number): OutputArray {
  return kind === 'float64' ? new Float64Array(buffer, offset, length) : kind === 'uint16' ? new Uint16Array(buffer, offset, length) : new Float32Array(buffer, offset, length);
}

let slab = new ArrayBuffer(0);
let slabUsed = 0;

/** A slice of the current slab, 8-byte aligned; never handed out twice. */
function sliced(kind: Kind, length: number, bytes: number): OutputArray {
  const size = (bytes + 7) & ~7;
  if (slabUsed + size > slab.byteLength) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const offset = slabUsed;
  slabUsed += size;
  return view(kind, slab, offset, length);
}

/** A small array for a value to be written in full (per-channel statistics, copies of them). */
export function smallArray(dtype: FloatDtype, length: number): FloatStorage;
export function smallArray(dtype: OutputDtype, length: number): OutputArray;
export function smallArray(dtype: OutputDtype, length: number): OutputArray {
  const kind = kindOfDtype(dtype);
  const bytes = length * BYTES[kind];
  if (bytes === 0 || bytes > SLICED_BYTES) return view(kind, new ArrayBuffer(bytes), 0, length);
  return sliced(kind, length, bytes);
}

let allocatorSet = false;

/** A new array whose elements are whatever the memory held: the op overwrites them all. */
function uninitialized(kind: Kind, length: number, bytes: number): OutputArray {
  if (!allocatorSet) {
    allocatorSet = true;
    native.keepFreedMemory(HEAP_BLOCK_BYTES, KEPT_FREE_BYTES);
  }
  const b = Buffer.allocUnsafeSlow(bytes);
  return view(kind, b.buffer, b.byteOffset, length);
}

/** An array for an op to fill completely; recycled when one of this length is free. */
export function outputArray(dtype: 'float32' | 'float64', length: number): FloatStorage;
export function outputArray(dtype: OutputDtype, length: number): OutputArray;
export function outputArray(dtype: OutputDtype, length: number): OutputArray {
  const kind = kindOfDtype(dtype);
  const bytes = length * BYTES[kind];
  if (bytes < POOLED_BYTES) return smallArray(dtype, length);
  let array = free[kind].get(length)?.pop();
  if (array) {
    cachedBytes -= bytes;
    stats.hits++;
  } else {
    array = uninitialized(kind, length, bytes);
    stats.misses++;
  }
  handedOut.add(array);
  return array;
}

/**
 * A tensor wraps `array`. True when it is the first to wrap a pooled output
 * (it may recycle it); a second wrapper makes the array shared, and nobody may.
 */
export function adopt(array: object): boolean {
  if (handedOut.has(array)) {
    handedOut.delete(array);
    owned.add(array);
    return true;
  }
  owned.delete(array);
  return false;
}

/** Takes back an array its only tensor is done with; false (nothing done) for any other. */
export function recycle(array: OutputArray): boolean {
  if (!owned.has(array)) return false;
  owned.delete(array);
  const bytes = array.byteLength;
  if (cachedBytes + bytes > MAX_CACHED_BYTES) return true;
  const lists = free[kindOf(array)];
  const list = lists.get(array.length);
  if (list) list.push(array);
  else lists.set(array.length, [array]);
  cachedBytes += bytes;
  return true;
}

/** What the free lists hold, and how often outputs were recycled. */
export function storageStats(): { cachedBytes: number; hits: number; misses: number } {
  return { cachedBytes, ...stats };
}
