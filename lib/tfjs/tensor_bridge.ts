// Values in and out of tfjs tensors, copying no more than the backend forces.
// The cpu backend keeps a tensor's values in a Float32Array: dataSync()
// returns that very array, and a tensor made from a Float32Array adopts it,
// so neither direction copies. The wasm backend keeps them in its heap: they
// are read through a view of it (valid until the heap next grows, so each is
// taken just before the kernel that reads it), and outputs are copied in. Any
// other backend (tfjs-node, webgl) is read with dataSync() and written with
// tf.tensor, a copy each way.
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

/**
 * A tfjs tensor holding `values`, adopted without a copy on the cpu backend
 * when they fill their buffer: tfjs takes a tensor's buffer as its bytes
 * (tensor.bytes(), saved weights), so a view into a larger one (syncbn's
 * small outputs are slices of a shared slab) is copied out.
 */
export function tensorOf(values: Float32Array, shape: readonly number[]): TfTensor {
  const whole = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength;
  return tfc.tensor(whole ? values : values.slice(), shape as number[], 'float32');
}
