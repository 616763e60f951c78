// Data-parallel tfjs training over syncbn's process groups: the example's
// model.fit on 2 Gloo ranks against one process on the global batch, the
// optimizer's reduction, the broadcast of the start weights, a rank that
// runs fewer steps, convertSyncBatchNormalization, and the package entry
// points (syncbn never loads tfjs; syncbn/tfjs says what is missing).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../lib/native';
import { convertSyncBatchNormalization, distributedOptimizer, SyncBatchNormalization } from '../../lib/tfjs';
import { freePort, LAUNCHER, ROOT, runNode } from '../distributed/support';
import { requireOrSkip } from '../support/require';
import { scratchDirs } from '../support/scratch';
import { close, tf, useBackend } from './support';

const EXAMPLE = path.join(ROOT, 'examples', 'tfjs_data_parallel.js');
const WORKER = path.join(__dirname, 'workers', 'fit_rank.js');
const tempDir = scratchDirs();
const gloo = requireOrSkip('gloo', native.features.gloo, `${native.features.file} was built without Gloo`);

async function launch(args: string[], env: NodeJS.ProcessEnv = {}) {
  const port = await freePort();
  return runNode([LAUNCHER, '--nproc-per-node', '2', '--master-port', String(port), ...args], env, 120000);
}

/** The example's per-epoch losses and accuracies, as printed. */
function epochs(stdout: string): number[][] {
  return [...stdout.matchAll(/epoch \d+\/\d+: loss (\S+) accuracy (\S+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

gloo('data-parallel model.fit over Gloo processes', () => {
  test('examples/tfjs_data_parallel.js: 2 ranks train as one process on the global batch', async () => {
    const env = { EPOCHS: '2' };
    const two = await launch([EXAMPLE], env);
    expect(two.code).toBe(0);
    expect(two.stdout).toContain('[rank 0] check: weights identical on all 2 ranks');
    const one = await runNode([EXAMPLE], env, 120000);
    expect(one.code).toBe(0);
    const a = epochs(two.stdout);
    const b = epochs(one.stdout);
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(2);
    // Float32 tolerance (relative 1e-4): the ranks sum in another order than one process.
    close(a.flat(), b.flat(), 'losses and accuracies, 2 ranks against 1 process');
    expect(a[1][0]).toBeLessThan(a[0][0]);
  });

  async function scenario(mode: string) {
    const dir = tempDir('syncbn-tfjs-fit-');
    const run = await launch([WORKER, mode, dir]);
    const ranks = [0, 1].map((r) => JSON.parse(fs.readFileSync(path.join(dir, `rank${r}.json`), 'utf8')));
    ranks.forEach((r) => expect(r.failed).toBeUndefined());
    return { run, ranks };
  }

  test('distributedOptimizer applies the mean (or the sum) of every rank\'s gradients, as the wrapped optimizer', async () => {
    const { run, ranks } = await scenario('optimizer');
    expect(run.code).toBe(0);
    for (const r of ranks) {
      // sgd(1): the ranks' gradients are 1 and 2 (v), 10 and 20 (w); v gets two steps.
      expect(r.avg).toEqual({ v: [-3, -3, -3], w: [-15, -15], iterations: 2, className: 'SGD' });
      expect(r.sum).toEqual({ v: [-6, -6, -6], w: [-30, -30], iterations: 2, className: 'SGD' });
    }
  });

  test('broadcastVariables: every rank ends with the root\'s weights', async () => {
    const { run, ranks } = await scenario('broadcast');
    expect(run.code).toBe(0);
    expect(ranks[1].weights).toEqual(ranks[0].weights);
    expect(ranks[0].vars).toEqual([[1, 1], [5, 5, 5]]);
    expect(ranks[1].vars).toEqual([[1, 1], [5, 5, 5]]);
  });

  test('a rank with one step more gets the divergence error naming the layer and the ranks, on both ranks', async () => {
    const { ranks } = await scenario('diverge');
    for (const r of ranks) {
      expect(r.error).toMatch(/diverged/);
      expect(r.error).toMatch(/ranks \[0\] are at SyncBatchNormalization 'sync_batch_normalization_\w+' forward \(4 channels/);
      expect(r.error).toMatch(/ranks \[1\] are at metricAverageCallback at the end of an epoch/);
      expect(r.ms).toBeLessThan(20000);
    }
  });

  test('a rank that builds one more synchronized layer is told why the ranks disagree', async () => {
    const { ranks } = await scenario('extrasite');
    for (const r of ranks) expect(r.error).toMatch(/numbered in the order a rank builds them: a rank that builds one more, even for inference only/);
  });

  test('broadcastVariablesCallback also gives every rank the root\'s optimizer state (a resumed Adam)', async () => {
    const { run, ranks } = await scenario('resume');
    expect(run.code).toBe(0);
    expect(ranks[1].weights).toEqual(ranks[0].weights);
    expect(ranks[0].iterations).toBe(4);
    expect(ranks[1].iterations).toBe(4);
  });
});

describe('distributedOptimizer in a world of one', () => {
  beforeAll(() => useBackend('cpu'));

  test('is the optimizer itself: its class, learning rate and methods, read and written through it', () => {
    const adam = tf.train.adam(0.1);
    const opt = distributedOptimizer(adam);
    expect(opt).toBeInstanceOf(adam.constructor);
    expect(opt.getClassName()).toBe('Adam');
    (opt as unknown as { learningRate: number }).learningRate = 0;
    expect((adam as unknown as { learningRate: number }).learningRate).toBe(0);
    const v = tf.variable(tf.ones([3]));
    opt.minimize(() => v.square().sum() as tf.Scalar, false, [v]);
    expect(Array.from(v.dataSync())).toEqual([1, 1, 1]);
    expect(opt.iterations).toBe(1);
    const sgd = distributedOptimizer(tf.train.sgd(0.5));
    sgd.setLearningRate(0.25);
    sgd.minimize(() => v.sum() as tf.Scalar, false, [v]);
    expect(Array.from(v.dataSync())).toEqual([0.75, 0.75, 0.75]);
    expect(() => distributedOptimizer(sgd)).toThrow(/a distributedOptimizer already/);
    expect(() => distributedOptimizer({} as never)).toThrow(/must be a tf.Optimizer/);
    expect(() => distributedOptimizer(tf.train.sgd(1), { op: 'mean' as never })).toThrow(/op must be 'avg' or 'sum'/);
  });
});

describe('convertSyncBatchNormalization', () => {
  beforeAll(() => useBackend('cpu'));

  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const bnInit = { gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 5 }), movingMeanInitializer: tf.initializers.randomNormal({ seed: 6 }) };

  function sequential(): tf.Sequential {
    return tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [6], units: 5, kernelInitializer: init(1) }),
        tf.layers.batchNormalization({ ...bnInit, momentum: 0.9 }),
        tf.layers.dense({ units: 3, kernelInitializer: init(2) }),
        tf.layers.batchNormalization({ ...bnInit, center: false, epsilon: 1e-2 }),
      ],
    });
  }

  function functional(): tf.LayersModel {
    const input = tf.input({ shape: [4, 4, 2] });
    const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', kernelInitializer: init(3) }).apply(input) as tf.SymbolicTensor;
    const a = tf.layers.batchNormalization(bnInit).apply(conv) as tf.SymbolicTensor;
    const b = tf.layers.batchNormalization({ ...bnInit, scale: false, epsilon: 0.1 }).apply(conv) as tf.SymbolicTensor;
    const merged = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
    const flat = tf.layers.flatten().apply(merged) as tf.SymbolicTensor;
    const inner = sequential();
    const head = tf.layers.dense({ units: 6, kernelInitializer: init(4) }).apply(flat) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: inner.apply(head) as tf.SymbolicTensor });
  }

  function syncLayers(m: { layers: tf.layers.Layer[] }): tf.layers.Layer[] {
    return m.layers.flatMap((l) => (l instanceof tf.LayersModel ? syncLayers(l) : l instanceof SyncBatchNormalization ? [l] : []));
  }

  test.each([['Sequential', sequential, [7, 6]], ['functional, with a nested Sequential', functional, [5, 4, 4, 2]]] as const)(
    '%s: every BatchNormalization becomes a SyncBatchNormalization with its name, config and weights', (_name, make, shape) => {
      const model = make();
      const x = tf.randomNormal([...shape], 0, 1, 'float32', 8);
      const converted = convertSyncBatchNormalization(model);
      expect(converted).not.toBe(model);
      expect(converted.constructor).toBe(model.constructor);
      const synced = syncLayers(converted);
      expect(synced.length).toBe(make === sequential ? 2 : 4);
      expect(converted.weights.map((w) => w.originalName)).toEqual(model.weights.map((w) => w.originalName));
      converted.getWeights().forEach((w, i) => close(w.dataSync(), model.getWeights()[i].dataSync(), `weight ${i}`));
      const predict = (m: tf.LayersModel) => (m.predict(x) as tf.Tensor).dataSync();
      close(predict(converted), predict(model), 'inference output');
      const before = model.getConfig() as unknown as { layers: { className: string; config: object }[] };
      const after = converted.getConfig() as unknown as { layers: { className: string; config: object }[] };
      if (make === sequential) {
        expect(after.layers.map((l) => l.className)).toEqual(['Dense', 'SyncBatchNormalization', 'Dense', 'SyncBatchNormalization']);
        expect(after.layers.map((l) => l.config)).toEqual(before.layers.map((l) => l.config));
      }
    });

  test('a converted model trains as the original where tfjs\'s layer is right (axis -1)', () => {
    const model = sequential();
    const converted = convertSyncBatchNormalization(model);
    const x = tf.randomNormal([8, 6], 0, 1, 'float32', 9);
    // center: false makes tfjs's own layer throw in training; compare the first three layers.
    const upTo = (m: tf.LayersModel) => m.layers.slice(0, 3).reduce((t, l) => l.apply(t, { training: true }) as tf.Tensor, x);
    close(upTo(converted).dataSync(), upTo(model).dataSync(), 'training forward through the first BN');
    close(converted.layers[1].getWeights()[2].dataSync(), model.layers[1].getWeights()[2].dataSync(), 'moving mean after a step');
  });

  test('processGroup reaches every converted layer; a wrong one is refused', () => {
    const converted = convertSyncBatchNormalization(sequential());
    for (const l of syncLayers(converted)) expect((l as SyncBatchNormalization).processGroup).toBeNull();
    expect(() => convertSyncBatchNormalization(sequential(), { processGroup: {} as never })).toThrow(/processGroup must be a syncbn ProcessGroup/);
    expect(() => convertSyncBatchNormalization({} as never)).toThrow(/expected a tf.LayersModel/);
  });

  test('a model it cannot rebuild from its config is named so (an unregistered custom layer)', () => {
    class Unregistered extends tf.layers.Layer {
      static className = 'UnregisteredForConvert';
    }
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 2 }), new Unregistered({}), tf.layers.batchNormalization()] });
    expect(() => convertSyncBatchNormalization(model)).toThrow(/rebuilds the model from its config, which failed: Unknown layer: UnregisteredForConvert[\s\S]*Every custom layer of the model must be registered with tf.serialization.registerClass\.$/);
  });
});

describe('entry points', () => {
  test('require(\'syncbn\') never loads tfjs', async () => {
    const r = await runNode(['-e', `require(${JSON.stringify(ROOT)}); console.log(Object.keys(require.cache).filter((k) => k.includes('@tensorflow')).length)`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('0');
  });

  test('syncbn/tfjs without tfjs installed says what to install', async () => {
    // Hides the peer dependencies from module resolution, as on a machine without them.
    const hide = `const M = require('module'); const resolve = M._resolveFilename;
      M._resolveFilename = function (r, ...a) {
        if (r.startsWith('@tensorflow/')) throw Object.assign(new Error("Cannot find module '" + r + "'"), { code: 'MODULE_NOT_FOUND' });
        return resolve.call(this, r, ...a);
      };`;
    const r = await runNode(['-e', `${hide} require(${JSON.stringify(path.join(ROOT, 'dist', 'tfjs'))});`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/syncbn\/tfjs needs @tensorflow\/tfjs-core, an optional peer dependency that is not installed: npm install @tensorflow\/tfjs/);
  });

  test('package.json exports syncbn/tfjs, with tfjs as optional peers', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.exports['./tfjs'].default).toBe('./dist/tfjs/index.js');
    expect(pkg.exports['./tfjs'].types).toBe('./dist/tfjs/index.d.ts');
    for (const peer of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers']) {
      expect(pkg.peerDependencies[peer]).toBeDefined();
      expect(pkg.peerDependenciesMeta[peer].optional).toBe(true);
    }
  });
});
