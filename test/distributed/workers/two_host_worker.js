// One gloo rank of an emulated two-host scenario (test/distributed/two_hosts.test.ts),
// started by syncbn-run inside a network namespace. Prints JSON lines:
//   {"event":"ready"}   (loop) after its first steps
//   {"event":"done" | "failed", "error", "at": Date.now(), "ms": since initProcessGroup began}
// and exits 0 either way, so that the launcher does not stop the rank's
// neighbour before it has reported.
//
//   loop TIMEOUT_MS   SyncBatchNorm steps until a collective fails
//   init TIMEOUT_MS   the rendezvous and one barrier
//   iface NAME        GLOO_SOCKET_IFNAME=NAME checked by initProcessGroup and by the raw binding
'use strict';

const path = require('node:path');
const { nn, randn, distributed: dist } = require(path.resolve(__dirname, '../../../dist'));
const { native } = require(path.resolve(__dirname, '../../../dist/native'));

const [mode, arg] = process.argv.slice(2);
const rank = Number(process.env.RANK);

function say(o) {
  console.log(JSON.stringify({ rank, ...o }));
}

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function iface(name) {
  process.env.GLOO_SOCKET_IFNAME = name;
  const errors = [];
  await dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 1, initMethod: 'tcp://127.0.0.1:29400', timeoutMs: 3000 })
    .then(() => errors.push('initProcessGroup: no error'), (e) => errors.push(e.message));
  await native.glooConnect('127.0.0.1', 29400, '', 'p', '', name, 0, 1, 2000, '')
    .then(() => errors.push('glooConnect: no error'), (e) => errors.push(e.message));
  say({ event: 'failed', errors });
}

async function main() {
  if (mode === 'iface') return iface(arg);
  const timeoutMs = Number(arg);
  const start = Date.now();
  try {
    await dist.initProcessGroup({ backend: 'gloo', timeoutMs });
    if (mode === 'loop') {
      const bn = new nn.SyncBatchNorm(4, { dtype: 'float64' });
      const x = randn([3, 4, 2], { dtype: 'float64' });
      for (let step = 0; ; step++) {
        bn.forward(x);
        bn.backward(x);
        if (step === 3) say({ event: 'ready' });
        sleepMs(20);
      }
    }
    dist.barrier();
    say({ event: 'done', error: null, at: Date.now(), ms: Date.now() - start });
  } catch (e) {
    say({ event: 'failed', error: e.message, at: Date.now(), ms: Date.now() - start });
    // Rank 0 hosts the store that the others' roll call still reads.
    sleepMs(1500);
  }
}

main().then(() => process.exit(0));
