// One rank (worker thread) exercising the tensor collectives.
'use strict';

const path = require('node:path');
const { parentPort, workerData } = require('node:worker_threads');
const { nn, tensor, zeros, distributed: dist, getNumThreads } = require(path.resolve(__dirname, '../../../dist'));

async function main() {
  const { rank, worldSize, name } = workerData;
  const threadsBefore = getNumThreads();
  await dist.initProcessGroup({ backend: 'threads', rank, worldSize, initMethod: `local://${name}`, timeoutMs: 10000 });
  const out = { rank: dist.getRank(), worldSize: dist.getWorldSize(), backend: dist.getBackend(), threadsBefore, threadsAfter: getNumThreads() };
  const v = () => tensor([rank + 1, 10 * (rank + 1)], [2], { dtype: 'float64' });
  for (const op of ['sum', 'avg', 'min', 'max']) {
    const t = v();
    dist.allReduce(t, { op });
    out[op] = Array.from(t.toArray());
  }
  const counter = tensor([BigInt(rank)], [], { dtype: 'int64' });
  dist.allReduce(counter);
  out.int64 = counter.item();
  const outs = Array.from({ length: worldSize }, () => zeros([2]));
  dist.allGather(outs, tensor([rank, -rank]));
  out.gathered = outs.map((o) => Array.from(o.toArray()));
  const b = tensor([rank, rank]);
  dist.broadcast(b, 2);
  out.broadcast = Array.from(b.toArray());
  dist.barrier();
  const net = new nn.Sequential(new nn.BatchNorm1d(2));
  net.forward(tensor([1, 2, 3, 4 + rank, 5, 6], [3, 2]));
  net.backward(tensor([rank, 1, 0, 0, 0, 0], [3, 2]));
  dist.allReduceGradients(net);
  out.grads = net.parameters().map((p) => Array.from(p.grad.toArray()));
  out.localGrad = Array.from(net.at(0).bias.grad.toArray());
  const odd = await dist.newGroup([1, 3]);
  out.oddRank = odd.rank;
  if (odd.isMember()) {
    const t = tensor([rank]);
    dist.allReduce(t, { group: odd });
    out.oddSum = t.item();
  } else {
    try {
      dist.allReduce(tensor([1]), { group: odd });
    } catch (e) {
      out.nonMember = e.message;
    }
  }
  try {
    dist.broadcast(tensor([1]), 7);
  } catch (e) {
    out.badSrc = e.message;
  }
  await dist.destroyProcessGroup();
  out.initializedAfter = dist.isInitialized();
  return out;
}

main().then((o) => parentPort.postMessage(o), (e) => parentPort.postMessage({ error: e.stack }));
