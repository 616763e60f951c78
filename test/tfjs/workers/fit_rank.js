// One rank of a data-parallel scenario (test/tfjs/data_parallel.test.ts),
// started by syncbn-run; writes what it saw to <dir>/rank<N>.json.
//   optimizer: distributedOptimizer applies the average (or sum) of every rank's gradients
//   broadcast: replicas built with other seeds start from rank 0's weights (root 1 for plain variables)
//   diverge:   rank 0 has one batch more than rank 1, with synchronized layers and metric averaging
//   extrasite: rank 0 builds one more synchronized layer (for inference) before the model both train
//   resume:    rank 0's Adam has state from steps of its own; after fit's broadcast, the replicas agree
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const tf = require('@tensorflow/tfjs');
const { distributed: dist } = require('syncbn');
const sbn = require('syncbn/tfjs');

const [mode, dir] = process.argv.slice(2);
const rank = Number(process.env.RANK);
const write = (r) => fs.writeFileSync(path.join(dir, `rank${rank}.json`), JSON.stringify({ rank, ...r }));

function model(seed) {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [5], units: 4, kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      sbn.syncBatchNormalization(),
      tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

const scenarios = {
  async optimizer() {
    const out = {};
    for (const op of ['avg', 'sum']) {
      const v = tf.variable(tf.zeros([3]), true, `v_${op}`);
      const w = tf.variable(tf.zeros([2]), true, `w_${op}`);
      const opt = sbn.distributedOptimizer(tf.train.sgd(1), { op });
      opt.applyGradients({ [v.name]: tf.fill([3], rank + 1), [w.name]: tf.fill([2], 10 * (rank + 1)) });
      opt.applyGradients([{ name: v.name, tensor: tf.fill([3], rank + 1) }]);
      out[op] = { v: Array.from(v.dataSync()), w: Array.from(w.dataSync()), iterations: opt.iterations, className: opt.getClassName() };
    }
    return out;
  },
  async broadcast() {
    const net = model(10 + rank);
    sbn.broadcastVariables(net);
    const vars = [tf.variable(tf.fill([2], rank)), tf.variable(tf.fill([3], 5 * rank))];
    sbn.broadcastVariables(vars, 1);
    return { weights: net.getWeights().map((t) => Array.from(t.dataSync())), vars: vars.map((v) => Array.from(v.dataSync())) };
  },
  async diverge() {
    const net = model(3);
    net.compile({ optimizer: sbn.distributedOptimizer(tf.train.sgd(0.1)), loss: 'meanSquaredError' });
    const n = rank === 0 ? 12 : 8;
    const start = Date.now();
    try {
      await net.fit(tf.randomNormal([n, 5], 0, 1, 'float32', 1), tf.randomNormal([n, 1], 0, 1, 'float32', 2), {
        batchSize: 4, epochs: 1, shuffle: false, verbose: 0, callbacks: [sbn.metricAverageCallback()],
      });
      return { error: null };
    } catch (e) {
      return { error: e.message, ms: Date.now() - start };
    }
  },
  async extrasite() {
    if (rank === 0) model(1);
    const net = model(3);
    net.compile({ optimizer: sbn.distributedOptimizer(tf.train.sgd(0.1)), loss: 'meanSquaredError' });
    try {
      await net.fit(tf.randomNormal([8, 5], 0, 1, 'float32', 1), tf.randomNormal([8, 1], 0, 1, 'float32', 2), { batchSize: 4, epochs: 1, verbose: 0 });
      return { error: null };
    } catch (e) {
      return { error: e.message };
    }
  },
  async resume() {
    const net = model(3 + rank);
    const adam = tf.train.adam(0.05);
    const xs = tf.randomNormal([8, 5], 0, 1, 'float32', 1);
    const ys = tf.randomNormal([8, 1], 0, 1, 'float32', 2);
    // Steps of rank 0's own, as a run that resumes from rank 0's checkpoint has behind it (in a group of one).
    const alone = await dist.newGroup([0]);
    if (rank === 0) {
      net.layers[1].processGroup = alone;
      net.compile({ optimizer: adam, loss: 'meanSquaredError' });
      await net.fit(xs, ys, { batchSize: 4, epochs: 1, shuffle: false, verbose: 0 });
      net.layers[1].processGroup = null;
    }
    net.compile({ optimizer: sbn.distributedOptimizer(adam), loss: 'meanSquaredError' });
    await net.fit(xs, ys, { batchSize: 4, epochs: 1, shuffle: false, verbose: 0, callbacks: [sbn.broadcastVariablesCallback()] });
    return { weights: net.getWeights().map((t) => Array.from(t.dataSync())), iterations: adam.iterations };
  },
};

(async () => {
  await tf.setBackend('cpu');
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs: 20000 });
  write(await scenarios[mode]());
})().catch((e) => {
  write({ failed: String(e && e.stack) });
  process.exitCode = 1;
});
