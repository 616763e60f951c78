// `npm run demo`: examples/train_mlp.js on 2 ranks over Gloo, through the
// syncbn-run launcher, on a free local port.
'use strict';

const net = require('node:net');
const path = require('node:path');
const { launch } = require('../dist/distributed/launcher');

const server = net.createServer().listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  server.close(async () => {
    process.exitCode = await launch({
      nprocPerNode: 2,
      nnodes: 1,
      nodeRank: 0,
      masterAddr: '127.0.0.1',
      masterPort: port,
      script: path.join(__dirname, 'train_mlp.js'),
      args: [],
    });
  });
});
