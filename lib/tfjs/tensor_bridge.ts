// Values in and out of tfjs tensors, copying no more than the backend forces.
// The cpu backend keeps a tensor's values in a Float32Array: dataSync()
// returns that very array, and a tensor made from a Float32Array adopts it,
// so neither direction copies. The wasm backend keeps them in its heap: they
// are read through a view of it (valid until the heap next grows, so each is
// taken just before the kernel that reads it), and outputs are copied in. Any
// other backend (tfjs-node, webgl) is read with dataSync() and written with
// tf.tensor, a copy each way.
import { Tensor } from '../tensor';
import { tfc } from './tf';

type TfTensor = import('@tensorflow/tfjs-core').Tensor;

interface HeapBackend {
  typedArrayFromHeap(t: { shape: number[]; dtype: string; dataId: object }): Float32Array;
  dataIdMap: { has(dataId: object): boolean };
}

function heapOf(t: TfTensor): HeapBackend | null {
  const b = tfc.backend() as unknown as Partial<HeapBackend>;
  if (typeof b.typedArrayFromHeap !== 'function' || typeof b.dataIdMap?.has !== 'function') return null;
  return b.dataIdMap.has(t.dataId) ? (b as HeapBackend) : null;
}

/** A float32 tfjs tensor's values in memory order: the backend's own array where it has one. */
export function valuesOf(t: TfTensor): Float32Array {
  const heap = heapOf(t);
  if (heap !== null) return heap.typedArrayFromHeap(t);
  return t.dataSync() as Float32Array;
}

/** A syncbn tensor over a tfjs tensor's values, viewed as `shape` (same element count). */
export function viewOf(t: TfTensor, shape: readonly number[]): Tensor {
  return new Tensor(valuesOf(t), shape);
}

/** Whether reading `t` copies its values (the benchmark reports the copies' share). */
export function readCopies(t: TfTensor): boolean {
  return heapOf(t) === null && tfc.getBackend() !== 'cpu';
}

/** A tfjs tensor holding `values` (adopted without a copy on the cpu backend). */
export function tensorOf(values: Float32Array, shape: readonly number[]): TfTensor {
  return tfc.tensor(values, shape as number[], 'float32');
}
