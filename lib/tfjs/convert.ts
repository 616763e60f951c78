// convertSyncBatchNormalization: a model's batch normalization layers made
// synchronized, by rewriting the model's config (the layer classes) and
// building it anew from it, as tfjs deserializes a saved model, then copying
// every weight across: the layers keep their names, configs and weights.
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { SyncBatchNormalization } from './batch_normalization';
import { ValueError } from './errors';
import type { ProcessGroup } from '../distributed/process_group';
import { checkGroup } from './groups';
import { tfl } from './tf';

// tfjs's own layer and syncbn's plain one.
const CONVERTED = new Set(['BatchNormalization', 'SyncbnBatchNormalization']);

type Config = { [key: string]: unknown };

/** A copy of a model config with every batch normalization class renamed. */
function rewrite(config: unknown): unknown {
  if (Array.isArray(config)) return config.map((c) => rewrite(c));
  if (config === null || typeof config !== 'object') return config;
  const out: Config = {};
  for (const [k, v] of Object.entries(config as Config)) out[k] = rewrite(v);
  if (typeof out.className === 'string' && CONVERTED.has(out.className) && typeof out.config === 'object') {
    out.className = SyncBatchNormalization.className;
  }
  return out;
}

function syncLayers(model: { layers: unknown[] }, found: SyncBatchNormalization[] = []): SyncBatchNormalization[] {
  for (const layer of model.layers) {
    if (layer instanceof SyncBatchNormalization) found.push(layer);
    else if (layer instanceof tfl.LayersModel) syncLayers(layer, found);
  }
  return found;
}

/**
 * Returns a new model in which every `tf.layers.batchNormalization` (and
 * syncbn's `batchNormalization`) of `model` is a `SyncBatchNormalization`
 * with the same name, config and weights; Sequential, functional and nested
 * models alike. The new model is not compiled: convert first, then compile
 * with `distributedOptimizer`. Cf. PyTorch's `SyncBatchNorm.convert_sync_batchnorm`.
 *
 * @example
 * const synced = convertSyncBatchNormalization(model);
 * synced.compile({ optimizer: distributedOptimizer(tf.train.sgd(0.1)), loss: 'meanSquaredError' });
 */
export function convertSyncBatchNormalization<T extends LayersModel>(model: T, opts: { processGroup?: ProcessGroup | null } = {}): T {
  const where = 'convertSyncBatchNormalization';
  if (!(model instanceof tfl.LayersModel)) throw new ValueError(`${where}: expected a tf.LayersModel (tf.sequential or tf.model)`);
  const group = checkGroup(opts.processGroup, where, 'processGroup');
  const config = rewrite(model.getConfig()) as Config;
  const cls = model.constructor as unknown as typeof tfl.LayersModel;
  let converted: T;
  try {
    converted = cls.fromConfig(cls as never, config as never) as unknown as T;
  } catch (e) {
    throw new ValueError(`${where} rebuilds the model from its config, which failed: ${(e as Error).message.replace(/[.\s]*$/, '')}. ` +
      'Every custom layer of the model must be registered with tf.serialization.registerClass.');
  }
  converted.setWeights(model.getWeights());
  for (const layer of syncLayers(converted as unknown as { layers: unknown[] })) layer.processGroup = group;
  return converted;
}
