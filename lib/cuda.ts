// Device queries and control. Cf. torch.cuda.
import { native } from './native';

/** True when syncbn was built with CUDA (nvcc found at build time). */
export const compiled: boolean = native.cuda.compiled;

/**
 * Whether a CUDA device can be used now: built with CUDA, a driver, a GPU.
 * Cf. `torch.cuda.is_available`.
 *
 * @example if (cuda.isAvailable()) x = x.cuda();
 */
export function isAvailable(): boolean {
  return native.cuda.isAvailable();
}

/** Why isAvailable() is false (null when it is true). */
export function unavailableReason(): string | null {
  return native.cuda.unavailableReason();
}

/** Cf. `torch.cuda.device_count`. @example cuda.deviceCount(); */
export function deviceCount(): number {
  return native.cuda.deviceCount();
}

function usable(where: string): void {
  if (!native.cuda.isAvailable()) throw new Error(`cuda.${where}: CUDA is not available: ${native.cuda.unavailableReason()}`);
}

/** Cf. `torch.cuda.set_device`. @example cuda.setDevice(1); */
export function setDevice(device: number): void {
  usable('setDevice');
  native.cuda.setDevice(device);
}

/** Waits for the device's stream to finish. Cf. `torch.cuda.synchronize`. @example cuda.synchronize(); */
export function synchronize(device = 0): void {
  usable('synchronize');
  native.cuda.synchronize(device);
}

/** The caching allocator's counters. Cf. `torch.cuda.memory_stats`. @example cuda.memoryStats().allocatedBytes; */
export function memoryStats(device = 0): { allocatedBytes: number; cachedBytes: number; peakBytes: number; allocations: number; cacheHits: number } {
  usable('memoryStats');
  return native.cuda.memoryStats(device);
}

/** Cf. `torch.cuda.get_device_name`. @example cuda.getDeviceName(0); // 'NVIDIA H100 80GB HBM3' */
export function getDeviceName(device = 0): string {
  usable('getDeviceName');
  return native.cuda.deviceName(device);
}
