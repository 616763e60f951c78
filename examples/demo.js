// `npm run demo`: examples/train_mlp.js on 2 ranks over Gloo, through the
// syncbn-run launcher, on a free local port. A binary without Gloo runs the
// same training on 2 worker threads (backend 'threads') and says so.
'use strict';

const net = require('node:net');
const path = require('node:path');
const { Worker, isMainThread, workerData } = require('node:worker_threads');

const RANKS = 2;

if (!isMainThread) {
  require('./train_mlp').train({ backend: 'threads', initMethod: 'local://demo', ...workerData });
} else {
  const { distributed, features } = require('..');
  if (distributed.isGlooAvailable()) {
    const { launch } = require('../dist/distributed/launcher');
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      server.close(async () => {
        process.exitCode = await launch({
          nprocPerNode: RANKS,
          nnodes: 1,
          nodeRank: 0,
          masterAddr: '127.0.0.1',
          masterPort: port,
          script: path.join(__dirname, 'train_mlp.js'),
          args: [],
        });
      });
    });
  } else {
    console.log(`demo: ${features.file} has no Gloo, so the ${RANKS} ranks run as worker threads (backend 'threads'); ` +
      'the prebuilt binary and the CMake build have Gloo (README, Install)');
    for (let rank = 0; rank < RANKS; rank++) {
      const w = new Worker(__filename, { workerData: { rank, worldSize: RANKS } });
      w.on('error', (e) => {
        console.error(`rank ${rank}: ${e.stack || e.message}`);
        process.exitCode = 1;
      });
      w.on('exit', (code) => {
        if (code !== 0) process.exitCode = code;
      });
    }
  }
}
