// One training step of SyncBatchNorm2d on 2 Gloo ranks, each holding half of
// the batch, against single-process BatchNorm2d on the whole batch: outputs,
// input gradients, the summed weight/bias gradients and the running
// statistics must agree to 1e-12 (float64; the reductions run in a different
// order). Run by .ci/run with the installed package's own launcher:
//   npx syncbn-run --nproc-per-node 2 gloo-syncbn-step.js
'use strict';

const { nn, distributed: dist, features, manualSeed, randn, tensor } = require('syncbn');

const N = 8;
const C = 3;
const HW = [5, 4];
const TOL = 1e-12;

function rows(t, start, n) {
  const per = t.numel() / t.shape[0];
  return tensor(t.toArray().slice(start * per, (start + n) * per), [n, ...t.shape.slice(1)], { dtype: 'float64' });
}

function maxDiff(a, b) {
  const x = a.toArray();
  const y = b.toArray();
  if (x.length !== y.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  return worst;
}

async function main() {
  if (!dist.isGlooAvailable()) throw new Error(`${features.file} has no Gloo`);
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs: 30000 });
  const rank = dist.getRank();
  const world = dist.getWorldSize();
  manualSeed(2024); // same draws on every rank: the whole batch, then each rank takes its rows
  const x = randn([N, C, ...HW], { dtype: 'float64' });
  const dy = randn([N, C, ...HW], { dtype: 'float64' });
  const weight = randn([C], { dtype: 'float64' });
  const bias = randn([C], { dtype: 'float64' });

  const reference = new nn.BatchNorm2d(C, { dtype: 'float64' });
  const sync = new nn.SyncBatchNorm(C, { dtype: 'float64' });
  for (const bn of [reference, sync]) {
    bn.weight.copy_(weight);
    bn.bias.copy_(bias);
  }
  const yRef = reference.forward(x);
  const dxRef = reference.backward(dy);

  const per = N / world;
  const y = sync.forward(rows(x, rank * per, per));
  const dx = sync.backward(rows(dy, rank * per, per));
  // Each rank holds its own part of the parameter gradients, as in PyTorch; DDP would sum them.
  dist.allReduce(sync.weight.grad);
  dist.allReduce(sync.bias.grad);

  const diffs = {
    y: maxDiff(y, rows(yRef, rank * per, per)),
    dx: maxDiff(dx, rows(dxRef, rank * per, per)),
    gradWeight: maxDiff(sync.weight.grad, reference.weight.grad),
    gradBias: maxDiff(sync.bias.grad, reference.bias.grad),
    runningMean: maxDiff(sync.runningMean, reference.runningMean),
    runningVar: maxDiff(sync.runningVar, reference.runningVar),
  };
  const bad = Object.entries(diffs).filter(([, d]) => !(d <= TOL));
  console.log(`${features.build} ${features.file.replace(/.*node_modules\//, '')} (gloo ${features.gloo}, cuda ${features.cuda}, ${features.isa}): ` +
    `rank ${rank}/${world} max |SyncBatchNorm - BatchNorm on the whole batch|: ` +
    Object.entries(diffs).map(([k, d]) => `${k} ${d.toExponential(1)}`).join(', '));
  await dist.destroyProcessGroup();
  if (bad.length) {
    console.error(`rank ${rank}: ${bad.map(([k]) => k).join(', ')} differ by more than ${TOL}`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e.stack || e.message);
  process.exit(1);
});
