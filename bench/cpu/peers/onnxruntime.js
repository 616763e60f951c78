// onnxruntime-node, inference only (ONNX Runtime trains nothing here): a
// one-node BatchNormalization model, written as ONNX protobuf below. ONNX
// takes NCHW, so channels-last cases are not run.
'use strict';

let ort = null;
let loadError = null;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  loadError = e;
}

// ---- minimal protobuf writer -------------------------------------------------
function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}
const key = (field, wire) => varint((field << 3) | wire);
const vint = (field, n) => Buffer.concat([key(field, 0), varint(n)]);
const bytes = (field, b) => Buffer.concat([key(field, 2), varint(b.length), b]);
const str = (field, s) => bytes(field, Buffer.from(s));
const f32 = (field, v) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return Buffer.concat([key(field, 5), b]);
};

const FLOAT = 1;
function tensorProto(name, values) {
  const raw = Buffer.from(Float32Array.from(values).buffer);
  return Buffer.concat([bytes(1, Buffer.concat([varint(values.length)])), vint(2, FLOAT), str(8, name), bytes(9, raw)]);
}
function valueInfo(name, shape) {
  const dims = Buffer.concat(shape.map((d) => bytes(1, vint(1, d))));
  const tensorType = Buffer.concat([vint(1, FLOAT), bytes(2, dims)]);
  return Buffer.concat([str(1, name), bytes(2, bytes(1, tensorType))]);
}

function batchNormModel(shape) {
  const C = shape[1];
  const attr = Buffer.concat([str(1, 'epsilon'), f32(2, 1e-5), vint(20, 1)]);
  const node = Buffer.concat([...['X', 'scale', 'B', 'mean', 'var'].map((n) => str(1, n)), str(2, 'Y'), str(4, 'BatchNormalization'), bytes(5, attr)]);
  const ones = new Array(C).fill(1);
  const zeros = new Array(C).fill(0);
  const graph = Buffer.concat([
    bytes(1, node),
    str(2, 'batchnorm'),
    bytes(5, tensorProto('scale', ones)),
    bytes(5, tensorProto('B', zeros)),
    bytes(5, tensorProto('mean', zeros)),
    bytes(5, tensorProto('var', ones)),
    bytes(11, valueInfo('X', shape)),
    bytes(12, valueInfo('Y', shape)),
  ]);
  const opset = Buffer.concat([str(1, ''), vint(2, 15)]);
  return Buffer.concat([vint(1, 8), bytes(8, opset), bytes(7, graph)]);
}

let threadCount = 1;
module.exports = {
  name: 'onnxruntime',
  async init(threads) {
    if (!ort) return { available: false, reason: `onnxruntime-node is not installed (${loadError.message.split('\n')[0]})` };
    threadCount = threads;
    return { available: true, version: require('onnxruntime-node/package.json').version, threads, detail: 'inference only, NCHW only' };
  },
  supports(c) {
    if (c.mode !== 'infer') return 'ONNX Runtime has no training mode';
    if (c.format !== 'contiguous') return 'ONNX BatchNormalization takes NCHW only';
    return null;
  },
  async prepareAsync(c) {
    const session = await ort.InferenceSession.create(batchNormModel(c.shape), {
      intraOpNumThreads: threadCount,
      interOpNumThreads: 1,
      executionProviders: ['cpu'],
    });
    const n = c.shape.reduce((a, b) => a * b, 1);
    const x = new ort.Tensor('float32', Float32Array.from({ length: n }, () => Math.random() - 0.5), c.shape);
    return { runAsync: () => session.run({ X: x }), release: () => session.release() };
  },
};
