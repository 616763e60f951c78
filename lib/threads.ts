import { native } from './native';

/**
 * Threads used by the CPU kernels called from this thread (a worker thread
 * has its own setting). Cf. `torch.set_num_threads`. The default follows
 * OMP_NUM_THREADS, else the number of cores; a worker thread that joins a
 * 'threads' process group of size W defaults to 1/W of that.
 *
 * At most 4x the cores (at least 64): more threads only slow the kernels, and
 * past some tens of thousands the OpenMP runtime fails to start them and ends
 * the process. OMP_THREAD_LIMIT caps the threads the kernels use, whatever is
 * set here; getNumThreads() reports the capped count.
 *
 * @example setNumThreads(2);
 */
export function setNumThreads(n: number): void {
  const max = native.maxNumThreads();
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new RangeError(`setNumThreads: expected an integer in [1, ${max}] (4x the cores, at least 64), got ${String(n)}`);
  }
  native.setNumThreads(n);
}

/** Threads the CPU kernels called from this thread use (within OMP_THREAD_LIMIT). Cf. `torch.get_num_threads`. @example getNumThreads(); // 2 */
export function getNumThreads(): number {
  return native.getNumThreads();
}
