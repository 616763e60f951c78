// Data parallel in one process: 4 replicas of a small MLP with
// SynchronizedBatchNorm1d, one per worker thread (the threads backend), as
// vacancy's SynchronizedBatchNorm runs under DataParallel. One call starts
// them (dist.spawn); rank 0's weights go to every replica
// (dist.broadcastParameters); gradients are averaged after each backward
// (dist.allReduceGradients); rank 0 saves a checkpoint PyTorch can load.
//
//   node examples/data_parallel_threads.js [replicas] [checkpoint.pt]
'use strict';

const os = require('node:os');
const path = require('node:path');
const { isMainThread } = require('node:worker_threads');
const { nn, distributed: dist, tensor, manualSeed, randn, save } = require('..');
const { Linear, ReLU, crossEntropy, sgdStep } = require('./mlp');

const FEATURES = 8;
const CLASSES = 3;
const HIDDEN = 32;
const BATCH = 16; // per replica
const STEPS = 60;

/** Children held in fields register as in PyTorch: no registerModule calls. */
class Net extends nn.Module {
  constructor() {
    super();
    this.fc1 = new Linear(FEATURES, HIDDEN);
    this.bn = new nn.SynchronizedBatchNorm1d(HIDDEN);
    this.relu = new ReLU();
    this.fc2 = new Linear(HIDDEN, CLASSES);
  }
  forward(x) {
    return this.fc2.forward(this.relu.forward(this.bn.forward(this.fc1.forward(x))));
  }
  backward(dy) {
    return this.fc1.backward(this.bn.backward(this.relu.backward(this.fc2.backward(dy))));
  }
}

/** Three Gaussian blobs; each replica draws its own shard. */
function batch(n, seed) {
  manualSeed(seed);
  const centers = [[2, 0, 0, 1], [-1, 2, 0, -1], [-1, -2, 1, 0]];
  const noise = randn([n, FEATURES]).data;
  const x = new Float32Array(n * FEATURES);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = (i + seed) % CLASSES;
    for (let f = 0; f < FEATURES; f++) x[i * FEATURES + f] = centers[y[i]][f % 4] + 1.2 * noise[i * FEATURES + f];
  }
  return { x: tensor(x, [n, FEATURES]), y };
}

async function replica() {
  const [checkpoint] = dist.spawnArgs();
  await dist.initProcessGroup({ backend: 'threads', timeoutMs: 60000 });
  const rank = dist.getRank();
  const world = dist.getWorldSize();
  manualSeed(rank); // different initial weights on purpose...
  const net = new Net();
  dist.broadcastParameters(net, 0); // ...until every replica takes rank 0's

  let correct = 0;
  let seen = 0;
  for (let step = 0; step < STEPS; step++) {
    const { x, y } = batch(BATCH, 1000 * step + rank);
    const out = crossEntropy(net.forward(x), y);
    net.zeroGrad();
    net.backward(out.grad);
    dist.allReduceGradients(net, { op: 'avg' });
    sgdStep(net, 0.2);
    if (step >= STEPS - 10) {
      correct += out.correct;
      seen += BATCH;
    }
  }
  const acc = tensor([correct, seen], [2], { dtype: 'float64' });
  dist.allReduce(acc);

  // The replicas must agree on every parameter and running statistic.
  const state = Object.values(net.stateDict()).flatMap((t) => Array.from(t.toArray()));
  const all = Array.from({ length: world }, () => tensor(new Float64Array(state.length), [state.length], { dtype: 'float64' }));
  dist.allGather(all, tensor(state, [state.length], { dtype: 'float64' }));
  const identical = all.every((t) => t.toArray().every((v, i) => v === all[0].toArray()[i]));
  if (rank === 0) {
    const [right, total] = acc.toArray();
    console.log(`${world} replicas on worker threads, ${STEPS} steps of ${BATCH} per replica`);
    console.log(`accuracy over the last 10 steps: ${((100 * right) / total).toFixed(1)}%`);
    console.log(identical ? `replicas identical (${state.length} values)` : 'replicas DIFFER');
    save(net.stateDict(), checkpoint);
    console.log(`saved ${checkpoint}`);
  }
  await dist.destroyProcessGroup();
  if (!identical) throw new Error('replicas hold different parameters or running statistics');
}

async function main() {
  const replicas = Number(process.argv[2] ?? 4);
  const checkpoint = path.resolve(process.argv[3] ?? path.join(os.tmpdir(), 'data_parallel_threads.pt'));
  await dist.spawn(__filename, { nprocs: replicas, backend: 'threads', args: [checkpoint] });
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e.stack || e.message);
    process.exit(1);
  });
} else {
  replica().catch((e) => {
    // Rethrown outside the promise: the worker's 'error' event carries it to spawn().
    setImmediate(() => {
      throw e;
    });
  });
}
