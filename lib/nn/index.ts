export { Module, LoadStateDictResult } from './module';
export { Sequential } from './sequential';
export {
  BatchNorm,
  BatchNormOptions,
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  LazyBatchNorm1d,
  LazyBatchNorm2d,
  LazyBatchNorm3d,
} from './batchnorm';
export {
  MomentumBatchNorm,
  MomentumBatchNormOptions,
  MomentumBatchNorm1d,
  MomentumBatchNorm2d,
  MomentumBatchNorm3d,
} from './momentum_batchnorm';
export {
  SyncBatchNorm,
  SyncBatchNormOptions,
  SynchronizedBatchNorm1d,
  SynchronizedBatchNorm2d,
  SynchronizedBatchNorm3d,
} from './sync_batchnorm';
export { Parameter } from '../parameter';
export * as functional from '../functional';
