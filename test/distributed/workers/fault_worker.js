// One gloo rank of a fault scenario (test/distributed/faults.test.ts), started
// by hand (not by syncbn-run, which would stop the survivors itself). Prints
// one JSON line: the error this rank got, and how long after the faulty
// collective began.
'use strict';

const path = require('node:path');
const { nn, randn, tensor, distributed: dist } = require(path.resolve(__dirname, '../../../dist'));

const [scenario, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 3000);
const rank = Number(process.env.RANK);

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function main() {
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs });
  if (scenario === 'addresses') {
    // What Gloo published for each rank, read back with the job's secret.
    const store = await dist.TCPStore.create({ host: '127.0.0.1', port: Number(process.env.MASTER_PORT), isServer: false, timeoutMs, secret: process.env.SYNCBN_SECRET });
    const published = [];
    for (const r of [0, 1]) published.push((await store.get(`syncbn_world_/${r}`, timeoutMs)).toString('hex'));
    await store.close();
    dist.barrier();
    console.log(JSON.stringify({ rank, error: null, ms: 0, published }));
    process.exit(0);
  }
  const bn = new nn.SyncBatchNorm(4, { dtype: 'float64' });
  bn.layerName = 'features.bn1';
  const x = randn([3, 4, 2], { dtype: 'float64' });
  const warm = tensor([rank]);
  dist.allReduce(warm);
  let start = Date.now();
  try {
    switch (scenario) {
      case 'forward-only': {
        // Rank 0 skips the backward and runs the next forward.
        bn.forward(x);
        if (rank !== 0) bn.backward(randn([3, 4, 2], { dtype: 'float64' }));
        start = Date.now();
        bn.forward(x);
        break;
      }
      case 'mixed':
        // Rank 0 reduces a tensor of the size of the layer's statistics.
        if (rank === 0) dist.allReduce(randn([12], { dtype: 'float64' }));
        else bn.forward(x);
        break;
      case 'kill':
        if (rank === 1) process.kill(process.pid, 'SIGKILL');
        bn.forward(x);
        break;
      case 'stall':
        if (rank === 1) {
          sleepMs(timeoutMs + 1500);
          process.exit(0);
        }
        bn.forward(x);
        break;
      case 'nonfinite': {
        // Rank 0's batch holds +Inf in channel 1 (merged first, where a
        // difference of means would give NaN), rank 1's NaN in channel 2.
        const xi = x.toArray();
        if (rank === 0) xi[2] = Infinity;
        if (rank === 1) xi[4] = NaN;
        const y = bn.forward(tensor(xi, [3, 4, 2], { dtype: 'float64' }));
        const ys = y.toArray();
        console.log(JSON.stringify({ rank, error: null, ms: 0, runningMean: Array.from(bn.runningMean.toArray(), String), runningVar: Array.from(bn.runningVar.toArray(), String), y0: String(ys[0]), y2: String(ys[2]) }));
        process.exit(0);
        break;
      }
      default:
        throw new Error(`unknown scenario ${scenario}`);
    }
    console.log(JSON.stringify({ rank, error: null, ms: Date.now() - start }));
  } catch (e) {
    console.log(JSON.stringify({ rank, error: e.message, ms: Date.now() - start }));
    // Rank 0 hosts the store that the others' roll call still reads.
    sleepMs(1500);
  }
  process.exit(0);
}

main().catch((e) => {
  console.log(JSON.stringify({ rank, error: `setup: ${e.message}`, ms: -1 }));
  process.exit(1);
});
