/**
 * syncbn for TensorFlow.js models (`require('syncbn/tfjs')`): batch
 * normalization layers that drop in for `tf.layers.batchNormalization`,
 * synchronized batch normalization across processes and hosts, and
 * data-parallel `model.fit`. Needs `@tensorflow/tfjs-core` and
 * `@tensorflow/tfjs-layers` 4.x (optional peer dependencies).
 *
 * @example
 * import * as tf from '@tensorflow/tfjs';
 * import { syncBatchNormalization } from 'syncbn/tfjs';
 * const layer = syncBatchNormalization();
 *
 * @packageDocumentation
 */
// First: without tfjs installed, the error says so before anything else loads.
import './tf';

export {
  BatchNormalization, SyncBatchNormalization, batchNormalization, syncBatchNormalization,
  BatchNormalizationLayerArgs, SyncBatchNormalizationArgs,
} from './batch_normalization';
export { ValueError } from './errors';
export {
  distributedOptimizer, DistributedOptimizerOptions, GroupOptions,
  broadcastVariables, broadcastOptimizerState, broadcastVariablesCallback, BroadcastVariablesCallback,
  metricAverageCallback, MetricAverageCallback,
} from './data_parallel';
export { convertSyncBatchNormalization } from './convert';
