// TensorFlow.js: its pure-JavaScript CPU backend and its WebAssembly
// backend. tf.batchNorm normalizes along the last axis only, so it gets the
// NHWC bytes (channels-last) of every case, and 5D runs as a 4D view.
// Training forward = tf.moments + tf.batchNorm; backward = tf.grads of it.
'use strict';

const path = require('node:path');

let tf = null;
let loadError = null;
try {
  // The union package: core with every gradient registered, and the CPU backend.
  tf = require('@tensorflow/tfjs');
} catch (e) {
  loadError = e;
}

function nhwc(shape) {
  // [N, C, ...spatial] -> [N, prod(spatial), 1, C]: the same bytes as channels-last.
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  return [shape[0], inner, 1, shape[1]];
}

function peer(name, backend) {
  let wasm = null;
  return {
    name,
    async init(threads) {
      if (!tf) return { available: false, reason: `@tensorflow/tfjs is not installed (${loadError.message.split('\n')[0]})` };
      let detail = '';
      if (backend === 'wasm') {
        try {
          wasm = require('@tensorflow/tfjs-backend-wasm');
        } catch (e) {
          return { available: false, reason: `@tensorflow/tfjs-backend-wasm is not installed (${e.message.split('\n')[0]})` };
        }
        wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + path.sep);
        try {
          wasm.setThreadsCount(threads);
        } catch {
          // Older builds take no thread count.
        }
      }
      if (!(await tf.setBackend(backend))) return { available: false, reason: `tf.setBackend('${backend}') failed` };
      await tf.ready();
      if (backend === 'wasm') detail = `wasm threads: ${wasm.getThreadsCount ? wasm.getThreadsCount() : 1}`;
      return { available: true, version: tf.version_core, threads: backend === 'cpu' ? 1 : wasm.getThreadsCount ? wasm.getThreadsCount() : 1, detail: detail || 'pure JavaScript, one thread' };
    },
    async activate() {
      if (tf.getBackend() !== backend) await tf.setBackend(backend);
    },
    prepare(c) {
      const shape = nhwc(c.shape);
      const C = c.shape[1];
      const x = tf.randomNormal(shape);
      const dy = tf.randomNormal(shape);
      const gamma = tf.ones([C]);
      const beta = tf.zeros([C]);
      const mean = tf.zeros([C]);
      const variance = tf.ones([C]);
      const forward = (xi, g, b) => {
        const m = tf.moments(xi, [0, 1, 2]);
        return tf.batchNorm(xi, m.mean, m.variance, b, g, 1e-5);
      };
      const grads = tf.grads(forward);
      const run = {
        'train-fwd': () => tf.tidy(() => forward(x, gamma, beta).dataSync()),
        'train-fwdbwd': () => tf.tidy(() => {
          const y = forward(x, gamma, beta);
          y.dataSync();
          const [dx] = grads([x, gamma, beta], dy);
          dx.dataSync();
        }),
        infer: () => tf.tidy(() => tf.batchNorm(x, mean, variance, beta, gamma, 1e-5).dataSync()),
      }[c.mode];
      return { run, release: () => tf.dispose([x, dy, gamma, beta, mean, variance]) };
    },
  };
}

const tfjsNode = {
  name: 'tfjs-node',
  async init() {
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      return { available: false, reason: '@tensorflow/tfjs-node cannot be installed here: its install script downloads libtensorflow, and this machine reaches only the npm and Debian registries' };
    }
    return { available: false, reason: 'installed, but not wired into this harness' };
  },
};

module.exports = { tfjsCpu: peer('tfjs-cpu', 'cpu'), tfjsWasm: peer('tfjs-wasm', 'wasm'), tfjsNode };
