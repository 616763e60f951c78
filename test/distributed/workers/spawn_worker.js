// A worker started by dist.spawn in test/distributed/spawn.test.ts, as a
// thread or a process. Its mode (from spawnArgs) says what it does; it
// writes what it saw to <out>/<rank>.json.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { isMainThread } = require('node:worker_threads');
const { nn, tensor, distributed: dist } = require(path.resolve(__dirname, '../../../dist'));

async function main() {
  const [mode, out, backend] = dist.spawnArgs();
  const env = { RANK: process.env.RANK, WORLD_SIZE: process.env.WORLD_SIZE, LOCAL_RANK: process.env.LOCAL_RANK };
  if ((mode === 'throw' || mode === 'straggle') && process.env.RANK === '1') throw new Error('rank 1 gave up on purpose');
  // The other threads leave at once: a thread left waiting in the native rendezvous
  // would end only at its timeout, inside jest's process.
  if (mode === 'throw' && backend === 'threads') return;
  if (mode === 'exit' && process.env.RANK === '2') process.exit(3);
  // 'straggle': the others wait in the rendezvous until it times out, then throw and exit at once.
  await dist.initProcessGroup({ backend, timeoutMs: mode === 'straggle' ? 1000 : 3000 });
  const rank = dist.getRank();
  const world = dist.getWorldSize();
  // Different weights, statistics and counters on every rank, then rank 1's everywhere.
  const bn = new nn.BatchNorm1d(3, { dtype: 'float64' });
  bn.weight.fill_(rank + 1);
  bn.runningMean.fill_(10 * rank);
  bn.numBatchesTracked.fill_(100 + rank);
  const extra = new nn.BatchNorm1d(2);
  extra.bias.fill_(rank);
  const net = new nn.Sequential(bn, extra);
  dist.broadcastParameters(net, 1);
  const afterBroadcast = {
    weight: Array.from(bn.weight.toArray()), runningMean: Array.from(bn.runningMean.toArray()),
    counter: bn.numBatchesTracked.item(), extraBias: Array.from(extra.bias.toArray()), same: net.parameters()[0] === bn.weight,
  };
  // Gradients rank + 1: their sum and mean over the ranks.
  const grads = {};
  for (const op of ['sum', 'avg']) {
    for (const p of net.parameters()) p.grad = tensor(new Array(p.numel()).fill(rank + 1), p.shape, { dtype: p.dtype });
    dist.allReduceGradients(net, { op });
    grads[op] = net.parameters().map((p) => Array.from(p.grad.toArray()));
  }
  fs.writeFileSync(path.join(out, `${rank}.json`), JSON.stringify({ env, rank, world, afterBroadcast, grads }));
  await dist.destroyProcessGroup();
}

main().catch((e) => {
  if (isMainThread) {
    console.error(e.message);
    process.exit(1);
  }
  setImmediate(() => {
    throw e;
  });
});
