import { native } from './native';

/**
 * Threads used by the CPU kernels. Cf. `torch.set_num_threads`. The default
 * follows OMP_NUM_THREADS, else the number of cores.
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
