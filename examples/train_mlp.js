// Data-parallel training of a small MLP with SyncBatchNorm, one process per
// rank over Gloo. Start it with `npm run demo` (2 ranks), or
//   npx syncbn-run --nproc-per-node 4 examples/train_mlp.js
// examples/demo.js also runs train() in worker threads (backend 'threads')
// when the binary has no Gloo.
'use strict';

const { nn, distributed: dist, tensor, manualSeed, randn } = require('..');
const { Linear, ReLU, crossEntropy, sgdStep } = require('./mlp');

const FEATURES = 8;
const CLASSES = 3;
const HIDDEN = 32;
const BATCH = 32; // per rank
const STEPS_PER_EPOCH = 20;
const EPOCHS = 8;

/** Three Gaussian blobs in 8-D; each rank draws its own shard. */
function makeData(n, seed) {
  manualSeed(seed);
  const centers = [[2, 0, 0, 1], [-1, 2, 0, -1], [-1, -2, 1, 0]];
  const noise = randn([n, FEATURES]).data;
  const x = new Float32Array(n * FEATURES);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % CLASSES;
    for (let f = 0; f < FEATURES; f++) x[i * FEATURES + f] = (centers[y[i]][f % 4] ?? 0) + 1.2 * noise[i * FEATURES + f];
  }
  return { x, y };
}

function bar(fraction, width = 24) {
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

/** Trains on this rank; `init` goes to initProcessGroup (default: gloo, ranks from the environment). */
async function train(init = { backend: 'gloo' }) {
  await dist.initProcessGroup({ timeoutMs: 60000, ...init });
  const rank = dist.getRank();
  const world = dist.getWorldSize();
  manualSeed(1234);
  const net = nn.SyncBatchNorm.convertSyncBatchnorm(
    new nn.Sequential(new Linear(FEATURES, HIDDEN), new nn.BatchNorm1d(HIDDEN), new ReLU(), new Linear(HIDDEN, CLASSES)));
  // Every rank starts from rank 0's parameters, as DDP does.
  for (const p of net.parameters()) dist.broadcast(p, 0);
  if (rank === 0) console.log(`training on ${world} ranks over ${dist.getBackend()}:\n${net}`);

  const train = makeData(BATCH * STEPS_PER_EPOCH, 100 + rank);
  for (let epoch = 1; epoch <= EPOCHS; epoch++) {
    net.train();
    let lossSum = 0;
    let correct = 0;
    for (let s = 0; s < STEPS_PER_EPOCH; s++) {
      const xs = train.x.subarray(s * BATCH * FEATURES, (s + 1) * BATCH * FEATURES);
      const ys = train.y.subarray(s * BATCH, (s + 1) * BATCH);
      const logits = net.forward(tensor(xs, [BATCH, FEATURES]));
      const out = crossEntropy(logits, ys);
      net.zeroGrad();
      net.backward(out.grad);
      dist.allReduceGradients(net, { average: true });
      sgdStep(net, 0.2);
      lossSum += out.loss;
      correct += out.correct;
    }
    const stats = tensor([lossSum / STEPS_PER_EPOCH, correct, BATCH * STEPS_PER_EPOCH], [3], { dtype: 'float64' });
    dist.allReduce(stats);
    if (rank === 0) {
      const [loss, right, seen] = stats.toArray();
      console.log(`${bar(epoch / EPOCHS)} epoch ${epoch}/${EPOCHS}  loss ${(loss / world).toFixed(4)}  accuracy ${((100 * right) / seen).toFixed(1)}%`);
    }
  }

  net.eval();
  const test = makeData(300, 900 + rank);
  const out = crossEntropy(net.forward(tensor(test.x, [300, FEATURES])), test.y);
  const acc = tensor([out.correct, 300], [2], { dtype: 'float64' });
  dist.allReduce(acc);

  // Every rank must hold the same parameters and running statistics.
  const state = Object.values(net.stateDict()).flatMap((t) => Array.from(t.toArray()));
  const mine = tensor(state, [state.length], { dtype: 'float64' });
  const all = Array.from({ length: world }, () => tensor(new Float64Array(state.length), [state.length], { dtype: 'float64' }));
  dist.allGather(all, mine);
  const identical = all.every((t) => t.toArray().every((v, i) => v === all[0].toArray()[i]));
  if (rank === 0) {
    const [right, seen] = acc.toArray();
    console.log(`held-out accuracy ${((100 * right) / seen).toFixed(1)}% on ${seen} samples`);
    console.log(identical
      ? `check: parameters and running stats are identical on all ${world} ranks (${state.length} values)`
      : 'check FAILED: ranks hold different parameters or running stats');
  }
  await dist.destroyProcessGroup();
  if (!identical) process.exitCode = 1;
}

module.exports = { train };

if (require.main === module) {
  train().catch((e) => {
    console.error(e.stack || e.message);
    process.exit(1);
  });
}
