// Which process-group backends this binary can use, and what to do when one is missing.
import { BUILD_HELP, native } from '../native';

/**
 * Whether the gloo backend is compiled into the loaded binary (the prebuild and
 * the CMake build carry Gloo; a node-gyp build has it when the system's Gloo
 * was found). Cf. `torch.distributed.is_gloo_available()`.
 *
 * @example
 * const backend = distributed.isGlooAvailable() ? 'gloo' : 'threads';
 */
export function isGlooAvailable(): boolean {
  return native.features.gloo;
}

/**
 * Whether the nccl backend can run: CUDA kernels compiled in and NCCL 2
 * loadable (libnccl.so.2, or `SYNCBN_NCCL_LIBRARY`). syncbn opens NCCL at run
 * time, so unlike PyTorch this also asks the machine. Cf.
 * `torch.distributed.is_nccl_available()`.
 *
 * @example
 * if (distributed.isNcclAvailable()) await distributed.initProcessGroup({ backend: 'nccl' });
 */
export function isNcclAvailable(): boolean {
  if (!native.features.cuda) return false;
  try {
    native.ncclLoad(process.env.SYNCBN_NCCL_LIBRARY ?? '');
    return true;
  } catch {
    return false;
  }
}

/** The error for a gloo backend asked of a binary without it: what, which file, and fixes that work in a user's project. */
export function glooUnavailableMessage(where: string): string {
  return (
    `${where}: the gloo backend is not available: ${native.features.file} was built without Gloo. ` +
    "On one machine, backend 'threads' runs the ranks as worker threads. " +
    `${BUILD_HELP}; a source build in build/ is preferred over the prebuild, so remove it to use the prebuild`
  );
}
