import { native } from './native';

/**
 * Threads used by the CPU kernels called from this thread (a worker thread
 * has its own setting). Cf. `torch.set_num_threads`. The default follows
 * OMP_NUM_THREADS, else the number of cores; a worker thread that joins a
 * 'threads' process group of size W defaults to 1/W of that.
 *
 * @example setNumThreads(2);
 */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected an integer >= 1, got ${String(n)}`);
  native.setNumThreads(n);
}

/** Cf. `torch.get_num_threads`. @example getNumThreads(); // 2 */
export function getNumThreads(): number {
  return native.getNumThreads();
}
