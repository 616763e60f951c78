import { native, NativeFeatures } from './native';

/**
 * What the loaded native binary holds, and which file it is: `openmp`,
 * `cuda` (CUDA kernels compiled in; `cuda.isAvailable()` says whether a GPU
 * can run them), `gloo` (the gloo backend), `isa` (the CPU kernel variant
 * this machine runs: 'avx2' or 'baseline'), `file` (the .node loaded) and
 * `build` ('prebuild', shipped with the package, or 'source', compiled here).
 * Cf. PyTorch's `torch.__config__.show()` and `torch.backends.*.is_available()`.
 *
 * @example
 * import { features } from 'syncbn';
 * console.log(`${features.build} ${features.file}: gloo ${features.gloo}, cuda ${features.cuda}, ${features.isa}`);
 */
export const features: Readonly<NativeFeatures> = native.features;
