/**
 * syncbn: PyTorch's batch normalization for TypeScript on Node.js.
 *
 * @example
 * import { nn, randn } from 'syncbn';
 * const bn = new nn.BatchNorm2d(64);
 * const y = bn.forward(randn([8, 64, 14, 14]));
 */
export { Tensor, DType, FloatDType, FloatingDType, MemoryFormat, Device, TensorOptions } from './tensor';
export { Parameter } from './parameter';
export { tensor, zeros, ones, full, empty } from './factories';
export { randn, rand, manualSeed, initialSeed } from './random';
export * as nn from './nn';
export * as F from './functional';
export * as distributed from './distributed';
export * as cuda from './cuda';
export { setNumThreads, getNumThreads } from './threads';
export { load, save, LoadOptions, SaveOptions, StateDict, StateDictMetadata } from './serialization';
export { features } from './features';
