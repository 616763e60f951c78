// syncbn/tfjs's layers in one process (a world of one), on tfjs's cpu and
// wasm backends, against tfjs-layers' BatchNormalization semantics written
// with tf ops (support.ts: tf.moments and the formula, tolerance stated
// there), and against tf.layers.batchNormalization itself wherever that
// layer is right.
import { batchNormalization, syncBatchNormalization, BatchNormalization, SyncBatchNormalization, ValueError } from '../../lib/tfjs';
import { close, expectSteps, LayerConfig, reference, runLayer, seeded, Step, tf, useBackend, values, weightsOf } from './support';

const BACKENDS = ['cpu', 'wasm'] as const;

function steps(shape: number[], n: number, seed: number, training = true): Step[] {
  const random = seeded(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, () => ({ training, x: values(size, random, 3, 2), dy: values(size, random) }));
}

/** A built layer with random gamma, beta and moving statistics. */
function built(make: (cfg: object) => tf.layers.Layer, cfg: LayerConfig, shape: number[]): tf.layers.Layer {
  const layer = make({
    ...cfg, gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 1 }),
    betaInitializer: tf.initializers.randomNormal({ seed: 2 }), movingMeanInitializer: tf.initializers.randomNormal({ seed: 3 }),
    movingVarianceInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 2, seed: 4 }),
  });
  layer.build(shape);
  return layer;
}

const CASES: { shape: number[]; axis: number }[] = [
  { shape: [7, 5], axis: -1 },
  { shape: [6, 4, 5], axis: 1 },
  { shape: [6, 4, 5], axis: -1 },
  { shape: [3, 5, 4, 6], axis: -1 },
  { shape: [3, 5, 4, 6], axis: 1 },
  { shape: [2, 3, 4, 3, 5], axis: -1 },
  { shape: [2, 3, 4, 3, 5], axis: 2 },
];
const AFFINE = [
  { center: true, scale: true },
  { center: false, scale: true },
  { center: true, scale: false },
  { center: false, scale: false },
];

describe.each(BACKENDS)('on the %s backend', (backend) => {
  beforeAll(() => useBackend(backend));

  test.each(CASES)('training then inference matches the definition: $shape, axis $axis, center/scale on and off', ({ shape, axis }) => {
    AFFINE.forEach((affine, i) => {
      const cfg: LayerConfig = { axis, momentum: 0.9, epsilon: 1e-3, ...affine };
      for (const make of [batchNormalization, syncBatchNormalization] as ((c: object) => tf.layers.Layer)[]) {
        const layer = built(make, cfg, shape);
        const w = weightsOf(layer, cfg);
        const s = [...steps(shape, 2, 10 + i), ...steps(shape, 1, 20 + i, false)];
        expectSteps(runLayer(layer, shape, s), reference(cfg, shape, w, s), `${layer.getClassName()} ${JSON.stringify(cfg)}`);
      }
    });
  });

  test('defaults are tfjs-layers\': momentum 0.99, epsilon 1e-3, axis -1, ones and zeros', () => {
    const shape = [8, 3, 3, 4];
    const layer = batchNormalization();
    layer.build(shape);
    const ours = layer.getConfig();
    const theirs = tf.layers.batchNormalization().getConfig();
    delete ours.name;
    delete theirs.name;
    expect(ours).toEqual(theirs);
    const cfg: LayerConfig = { axis: -1, momentum: 0.99, epsilon: 1e-3, center: true, scale: true };
    const s = steps(shape, 2, 30);
    const want = reference(cfg, shape, weightsOf(layer, cfg), s);
    expectSteps(runLayer(layer, shape, s), want, 'defaults');
  });

  test('eps and momentum are read: epsilon 1e-5, momentum 0.5', () => {
    const shape = [5, 6];
    const cfg: LayerConfig = { axis: -1, momentum: 0.5, epsilon: 1e-5, center: true, scale: true };
    const layer = built(syncBatchNormalization, cfg, shape);
    // Spread 1e-3: the variance is below eps, so an eps mix-up shows.
    const random = seeded(5);
    const s = [0, 1, 2].map(() => ({ training: true, x: values(30, random, 0, 1e-3), dy: values(30, random) }));
    const want = reference(cfg, shape, weightsOf(layer, cfg), s);
    expectSteps(runLayer(layer, shape, s), want, 'eps 1e-5');
  });

  test('one value per channel trains as tfjs does (variance 0), no error', () => {
    const shape = [1, 4];
    const cfg: LayerConfig = { axis: -1, momentum: 0.9, epsilon: 1e-3, center: true, scale: true };
    const layer = built(batchNormalization, cfg, shape);
    const s = steps(shape, 2, 6);
    const want = reference(cfg, shape, weightsOf(layer, cfg), s);
    expectSteps(runLayer(layer, shape, s), want, 'batch of one');
  });

  test('an empty batch gives an empty output and moves nothing', () => {
    const shape = [0, 3, 2, 4];
    const cfg: LayerConfig = { axis: -1, momentum: 0.9, epsilon: 1e-3, center: true, scale: true };
    const layer = built(syncBatchNormalization, cfg, [1, 3, 2, 4]);
    const before = weightsOf(layer, cfg);
    const [r] = runLayer(layer, shape, [{ training: true, x: [], dy: [] }]);
    expect(r.y).toEqual([]);
    expect(r.dx).toEqual([]);
    expect(r.dgamma).toEqual([0, 0, 0, 0]);
    expect(r.dbeta).toEqual([0, 0, 0, 0]);
    close(r.movingMean, before.movingMean, 'moving mean');
    close(r.movingVariance, before.movingVariance, 'moving variance');
  });
});

describe('equals tf.layers.batchNormalization where that layer is right', () => {
  beforeAll(() => useBackend('cpu'));

  test.each([[[9, 6]], [[4, 5, 6]], [[3, 4, 5, 6]]])('%j, axis -1: outputs, gradients, moving statistics', (shape) => {
    const cfg: LayerConfig = { axis: -1, momentum: 0.8, epsilon: 1e-3, center: true, scale: true };
    const theirs = built((c) => tf.layers.batchNormalization(c), cfg, shape);
    const ours = built(syncBatchNormalization, cfg, shape);
    ours.setWeights(theirs.getWeights());
    const s = [...steps(shape, 3, 40), ...steps(shape, 1, 41, false)];
    expectSteps(runLayer(ours, shape, s), runLayer(theirs, shape, s), `against tf.layers.batchNormalization ${JSON.stringify(shape)}`);
  });

  test('where it is wrong, syncbn follows the definition', () => {
    const cfg: LayerConfig = { axis: -1, momentum: 0.9, epsilon: 1e-3, center: false, scale: true };
    const shape = [4, 3];
    const s = steps(shape, 1, 50);
    // tfjs-layers 4.22 reads the missing beta in training: it throws.
    expect(() => runLayer(built((c) => tf.layers.batchNormalization(c), cfg, shape), shape, s)).toThrow();
    const ours = built(batchNormalization, cfg, shape);
    const want0 = reference(cfg, shape, weightsOf(ours, cfg), s);
    expectSteps(runLayer(ours, shape, s), want0, 'center off');
    // Rank 5: tfjs throws; axis 1 on rank 3: tfjs's values are off.
    const five = [2, 3, 2, 2, 3];
    const cfg5 = { ...cfg, center: true };
    expect(() => runLayer(built((c) => tf.layers.batchNormalization(c), cfg5, five), five, steps(five, 1, 51))).toThrow();
    const three = [5, 3, 4];
    const cfg3 = { ...cfg5, axis: 1 };
    const s3 = steps(three, 1, 52);
    const theirs = built((c) => tf.layers.batchNormalization(c), cfg3, three);
    const want = reference(cfg3, three, weightsOf(theirs, cfg3), s3);
    expect(() => close(runLayer(theirs, three, s3)[0].y, want[0].y, 'tfjs on axis 1')).toThrow();
    const fixed = built(batchNormalization, cfg3, three);
    expectSteps(runLayer(fixed, three, s3), want, 'axis 1 on rank 3');
  });
});

describe('config, weights and serialization', () => {
  beforeAll(() => useBackend('cpu'));

  function model(bn: () => tf.layers.Layer): tf.Sequential {
    return tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }),
        bn(),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }),
      ],
    });
  }

  test('the same weights in the same order as tfjs\'s layer, with its names', () => {
    for (const cfg of [{}, { center: false }, { scale: false }, { center: false, scale: false }]) {
      const theirs = tf.layers.batchNormalization(cfg);
      const ours = syncBatchNormalization(cfg);
      theirs.build([2, 5]);
      ours.build([2, 5]);
      const names = (l: tf.layers.Layer) => l.weights.map((w) => w.originalName.split('/').pop());
      expect(names(ours)).toEqual(names(theirs));
      expect(ours.trainableWeights.map((w) => w.originalName)).toEqual(theirs.trainableWeights.map((w) => w.originalName));
      ours.setWeights(theirs.getWeights());
      theirs.setWeights(ours.getWeights());
    }
  });

  test('getConfig round trips, and both classes are registered', () => {
    const cfg = {
      axis: 1, momentum: 0.7, epsilon: 1e-4, center: false, scale: true, gammaInitializer: 'glorotNormal' as const,
      gammaRegularizer: tf.regularizers.l2({ l2: 0.01 }), gammaConstraint: tf.constraints.maxNorm({ maxValue: 2 }), name: 'bn_x',
    };
    for (const cls of [BatchNormalization, SyncBatchNormalization]) {
      const layer = new cls(cfg);
      const config = layer.getConfig();
      const again = (cls as unknown as { fromConfig: (c: unknown, d: unknown) => tf.layers.Layer }).fromConfig(cls, config);
      expect(again).toBeInstanceOf(cls);
      // tfjs adds its own bookkeeping (customObjects) to nested configs it deserializes.
      const plain = (c: unknown) => JSON.parse(JSON.stringify(c, (k, v) => (k === 'customObjects' ? undefined : v)));
      expect(plain(again.getConfig())).toEqual(plain(config));
      const entry = tf.serialization.SerializationMap.getMap().classNameMap[cls.className];
      expect(entry[0]).toBe(cls);
    }
    expect(SyncBatchNormalization.className).toBe('SyncBatchNormalization');
    expect(BatchNormalization.className).toBe('SyncbnBatchNormalization');
  });

  test('model.save and tf.loadLayersModel: a model with syncbn\'s layer comes back, and weights move both ways', async () => {
    const x = tf.randomNormal([4, 6, 6, 2], 0, 1, 'float32', 9);
    const predict = (m: tf.LayersModel) => Array.from((m.predict(x) as tf.Tensor).dataSync());
    const save = async (m: tf.LayersModel) => {
      let artifacts: tf.io.ModelArtifacts | null = null;
      await m.save(tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
      return artifacts! as tf.io.ModelArtifacts;
    };
    const renamed = (a: tf.io.ModelArtifacts, from: string, to: string) =>
      ({ ...a, modelTopology: JSON.parse(JSON.stringify(a.modelTopology).split(`"class_name":"${from}"`).join(`"class_name":"${to}"`)) });

    const ours = model(() => syncBatchNormalization({ name: 'bn' }));
    ours.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    await ours.fit(x, tf.randomNormal([4, 2], 0, 1, 'float32', 10), { epochs: 2, batchSize: 2, verbose: 0 });
    const want = predict(ours);
    const saved = await save(ours);
    const back = await tf.loadLayersModel(tf.io.fromMemory(saved));
    expect(back.layers[1]).toBeInstanceOf(SyncBatchNormalization);
    close(predict(back), want, 'syncbn model saved and loaded');

    // The same files with tfjs's class: tfjs's layer gets syncbn's weights, and back.
    const theirs = await tf.loadLayersModel(tf.io.fromMemory(renamed(saved, 'SyncBatchNormalization', 'BatchNormalization')));
    expect(theirs.layers[1].getClassName()).toBe('BatchNormalization');
    close(predict(theirs), want, 'tfjs model with syncbn\'s weights');
    const again = await tf.loadLayersModel(tf.io.fromMemory(renamed(await save(theirs), 'BatchNormalization', 'SyncbnBatchNormalization')));
    expect(again.layers[1]).toBeInstanceOf(BatchNormalization);
    close(predict(again), want, 'syncbn model with tfjs\'s weights');
  });

  test('errors name the layer, as tfjs\'s do', () => {
    const layer = syncBatchNormalization({ name: 'bn_err' });
    layer.build([2, 3, 4]);
    const msg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        return `${(e as Error).name}: ${(e as Error).message}`;
      }
      throw new Error('no error');
    };
    expect(msg(() => layer.apply(tf.zeros([2, 3, 4], 'int32')))).toMatch(/ValueError: .*bn_err.*float32.*int32/);
    expect(msg(() => layer.call(tf.zeros([2, 3, 5]), {}))).toMatch(/ValueError: Input 0 is incompatible with layer bn_err .*axis 2 .*value 4.*2,3,5/);
    expect(msg(() => layer.call(tf.zeros([2, 12]), {}))).toMatch(/ValueError: Input 0 is incompatible with layer bn_err .*expected ndim=3, found ndim=2/);
    expect(msg(() => layer.apply(tf.zeros([2, 3, 5])))).toMatch(/bn_err/);
    const far = syncBatchNormalization({ axis: 3, name: 'bn_axis' });
    expect(msg(() => far.apply(tf.zeros([2, 3, 4])))).toMatch(/Axis 3/);
    expect(new ValueError('x').name).toBe('ValueError');
    expect(msg(() => syncBatchNormalization({ name: 'bn_early' }).call(tf.zeros([2, 3]), {}))).toMatch(/ValueError: layer bn_early .* was called before it was built/);
    expect(msg(() => syncBatchNormalization({ axis: [1] as never, name: 'bn_list' }))).toMatch(/ValueError: layer bn_list .*axis must be an integer, got \[1\]/);
    expect(msg(() => batchNormalization({ epsilon: -1, name: 'bn_eps' }))).toMatch(/ValueError: layer bn_eps .*epsilon must be a finite number >= 0, got -1/);
    expect(msg(() => batchNormalization({ momentum: NaN, name: 'bn_m' }))).toMatch(/momentum must be a finite number, got NaN/);
    expect(msg(() => syncBatchNormalization({ processGroup: 3 as never }))).toMatch(/processGroup must be a syncbn ProcessGroup/);
  });
});
