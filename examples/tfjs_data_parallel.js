// A TensorFlow.js convnet (conv2d, SyncBatchNormalization, relu, pooling,
// dense) trained by model.fit on every rank of a syncbn process group:
//
//   npx syncbn-run --nproc-per-node 2 examples/tfjs_data_parallel.js   # 2 Gloo ranks
//   node examples/tfjs_data_parallel.js                               # one process
//
// Every process generates the same images (a seeded generator); rank r
// trains on its slice of each global batch. distributedOptimizer averages the
// gradients, SyncBatchNormalization's statistics cover the global batch, and
// metricAverageCallback averages the logged metrics, so the ranks print what
// one process prints on the whole batch. It runs on tfjs's cpu backend
// (tfjs's wasm backend cannot train convolutions: it has no
// Conv2DBackpropFilter kernel).
'use strict';

const tf = require('@tensorflow/tfjs');
const { distributed: dist } = require('syncbn');
const {
  syncBatchNormalization, distributedOptimizer, broadcastVariablesCallback, metricAverageCallback,
} = require('syncbn/tfjs');

const SIZE = 12;            // images SIZE x SIZE x 3
const CLASSES = 4;          // the class is the brightest quadrant
const SAMPLES = 256;
const GLOBAL_BATCH = 32;
const EPOCHS = Number(process.env.EPOCHS || 5);

/** mulberry32: the same numbers in every process. */
function generator(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** SAMPLES images with noise, one quadrant brighter; labels one-hot. */
function dataset() {
  const random = generator(7);
  const images = new Float32Array(SAMPLES * SIZE * SIZE * 3);
  const labels = new Float32Array(SAMPLES * CLASSES);
  for (let n = 0; n < SAMPLES; n++) {
    const label = Math.floor(random() * CLASSES);
    labels[n * CLASSES + label] = 1;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const quadrant = (y < SIZE / 2 ? 0 : 2) + (x < SIZE / 2 ? 0 : 1);
        for (let c = 0; c < 3; c++) {
          images[((n * SIZE + y) * SIZE + x) * 3 + c] = random() + (quadrant === label ? 0.6 : 0);
        }
      }
    }
  }
  return { images, labels };
}

/** Rank `rank`'s slice of every global batch, in batch order. */
function shard({ images, labels }, rank, world) {
  const local = GLOBAL_BATCH / world;
  const rows = [];
  for (let b = 0; b < SAMPLES; b += GLOBAL_BATCH) {
    for (let i = 0; i < local; i++) rows.push(b + rank * local + i);
  }
  const pick = (data, width) => {
    const out = new Float32Array(rows.length * width);
    rows.forEach((row, i) => out.set(data.subarray(row * width, (row + 1) * width), i * width));
    return out;
  };
  return {
    xs: tf.tensor4d(pick(images, SIZE * SIZE * 3), [rows.length, SIZE, SIZE, 3]),
    ys: tf.tensor2d(pick(labels, CLASSES), [rows.length, CLASSES]),
    batchSize: local,
  };
}

function model() {
  const init = (seed) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [SIZE, SIZE, 3], filters: 8, kernelSize: 3, padding: 'same', kernelInitializer: init(1) }),
      syncBatchNormalization(),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', kernelInitializer: init(2) }),
      syncBatchNormalization(),
      tf.layers.reLU(),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: init(3) }),
    ],
  });
}

/** True when every rank holds the same weights, bit for bit. */
function replicasIdentical(net) {
  const flat = Float64Array.from(net.getWeights().flatMap((w) => Array.from(w.dataSync())));
  const { tensor } = require('syncbn');
  const max = tensor(flat.slice(), [flat.length], { dtype: 'float64' });
  const min = tensor(flat.slice(), [flat.length], { dtype: 'float64' });
  dist.allReduce(max, { op: 'max' });
  dist.allReduce(min, { op: 'min' });
  const a = max.toArray();
  const b = min.toArray();
  return a.every((v, i) => Object.is(v, b[i]));
}

async function main() {
  await tf.setBackend('cpu');
  const distributed = process.env.WORLD_SIZE !== undefined;
  if (distributed) await dist.initProcessGroup({ backend: 'gloo' });
  const rank = distributed ? dist.getRank() : 0;
  const world = distributed ? dist.getWorldSize() : 1;
  const { xs, ys, batchSize } = shard(dataset(), rank, world);

  const net = model();
  net.compile({ optimizer: distributedOptimizer(tf.train.sgd(0.1)), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const report = new tf.CustomCallback({
    onEpochEnd: async (epoch, logs) => {
      if (rank === 0) console.log(`epoch ${epoch + 1}/${EPOCHS}: loss ${logs.loss.toPrecision(8)} accuracy ${logs.acc.toPrecision(8)}`);
    },
  });
  await net.fit(xs, ys, {
    batchSize, epochs: EPOCHS, shuffle: false, verbose: 0,
    callbacks: [broadcastVariablesCallback(), metricAverageCallback(), report],
  });

  if (distributed) {
    const same = replicasIdentical(net);
    if (rank === 0) console.log(same ? `check: weights identical on all ${world} ranks` : 'check: FAILED, the replicas differ');
    if (!same) process.exitCode = 1;
    await dist.destroyProcessGroup();
  } else {
    console.log('check: one process, on the whole batch');
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
