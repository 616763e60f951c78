// Recycled storage for op outputs. A fresh `new Float32Array(n)` is zeroed
// (and page-faults on first touch): for a 25 MB batch-norm output that costs
// as much as the op. Outputs that their owner disposes go back to a free list
// keyed by length, and the next output of that length reuses the array
// without zeroing: the ops write every element.
import type { FloatStorage } from './tensor';

type FloatDtype = 'float32' | 'float64';

// Below this many bytes zeroing is cheap and pooling not worth it.
const POOLED_BYTES = 1 << 16;
// Cached arrays beyond this are left to the garbage collector.
const MAX_CACHED_BYTES = 1 << 30;

// Free arrays by length, one map per dtype: a string key per lookup cost
// more than the rest of taking an array (bench/NOTES.md 29).
const free = { float32: new Map<number, FloatStorage[]>(), float64: new Map<number, FloatStorage[]>() };
let cachedBytes = 0;
// Arrays from outputArray() not yet wrapped by a tensor, and those wrapped by
// exactly one: only the latter's tensor may recycle them.
const handedOut = new WeakSet<object>();
const owned = new WeakSet<object>();

const stats = { hits: 0, misses: 0 };

// Only arrays made by outputArray() are recycled, all in this realm.
function dtypeOf(array: FloatStorage): FloatDtype {
  return array instanceof Float64Array ? 'float64' : 'float32';
}

/** An array for an op to fill completely; recycled when one of this length is free. */
export function outputArray(dtype: FloatDtype, length: number): FloatStorage {
  const bytes = length * (dtype === 'float64' ? 8 : 4);
  if (bytes < POOLED_BYTES) return dtype === 'float64' ? new Float64Array(length) : new Float32Array(length);
  let array = free[dtype].get(length)?.pop();
  if (array) {
    cachedBytes -= bytes;
    stats.hits++;
  } else {
    array = dtype === 'float64' ? new Float64Array(length) : new Float32Array(length);
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
export function recycle(array: FloatStorage): boolean {
  if (!owned.has(array)) return false;
  owned.delete(array);
  const bytes = array.byteLength;
  if (cachedBytes + bytes > MAX_CACHED_BYTES) return true;
  const lists = free[dtypeOf(array)];
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
