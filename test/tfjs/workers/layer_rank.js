// One rank of a SyncBatchNormalization scenario (test/tfjs/sync.test.ts),
// started by syncbn-run: its rows of every step's batch through the layer,
// the results to <dir>/rank<N>.json (or the error that stopped it).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const tf = require('@tensorflow/tfjs');
const { distributed: dist } = require('syncbn');
const { syncBatchNormalization } = require('syncbn/tfjs');
const { runLayer } = require('../run_layer');

const [cfgFile, dir] = process.argv.slice(2);
const c = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
const rank = Number(process.env.RANK);

async function main() {
  await tf.setBackend('cpu');
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs: 20000 });
  const tail = c.shape.slice(1);
  const per = tail.reduce((a, b) => a * b, 1);
  const start = c.sizes.slice(0, rank).reduce((a, b) => a + b, 0);
  const rows = (v) => v.slice(start * per, (start + c.sizes[rank]) * per);
  const layer = syncBatchNormalization({ ...c.layer, name: 'bn' });
  layer.build([1, ...tail]);
  const w = c.weights;
  layer.setWeights([...(c.layer.scale ? [w.gamma] : []), ...(c.layer.center ? [w.beta] : []), w.movingMean, w.movingVariance]
    .map((v) => tf.tensor1d(v)));
  const steps = c.steps.map((s) => ({ training: s.training, x: rows(s.x), dy: rows(s.dy) }));
  const results = runLayer(tf, layer, [c.sizes[rank], ...tail], steps);
  fs.writeFileSync(path.join(dir, `rank${rank}.json`), JSON.stringify({ rank, steps: results }));
  await dist.destroyProcessGroup();
}

main().catch((e) => {
  fs.writeFileSync(path.join(dir, `rank${rank}.json`), JSON.stringify({ rank, error: String(e && e.message) }));
  process.exitCode = 1;
});
