// One rank of bench:tfjs's sync measurement: SyncBatchNormalization's
// forward + backward on a local batch of SYNC_SHAPE, timed; at world 2 (under
// syncbn-run) each call syncs twice. Prints {"rank", "ms"} as JSON.
'use strict';

const tf = require('@tensorflow/tfjs');
const { distributed: dist } = require('syncbn');
const { syncBatchNormalization } = require('syncbn/tfjs');

async function main() {
  const warn = console.warn;
  console.warn = () => undefined;
  await tf.setBackend('cpu');
  tf.tensor([0]).dispose();
  console.warn = warn;
  const world = process.env.WORLD_SIZE !== undefined;
  if (world) await dist.initProcessGroup({ backend: 'gloo' });
  const shape = JSON.parse(process.env.SYNC_SHAPE);
  const reps = Number(process.env.SYNC_REPS);
  const layer = syncBatchNormalization();
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1 + (world ? dist.getRank() : 0));
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 7);
  const step = () => tf.dispose(tf.grads((xx) => layer.apply(xx, { training: true }))([x], dy));
  for (let i = 0; i < 3; i++) step();
  const samples = [];
  for (let i = 0; i < reps * 2; i++) {
    if (world) dist.barrier();
    const t0 = process.hrtime.bigint();
    step();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  samples.sort((a, b) => a - b);
  console.log(JSON.stringify({ rank: world ? dist.getRank() : 0, ms: samples[samples.length >> 1] }));
  if (world) await dist.destroyProcessGroup();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
