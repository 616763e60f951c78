// The few layers the demo's MLP needs besides BatchNorm: Linear, ReLU, a
// softmax cross-entropy loss and SGD. Written for the example, plainly: they
// are not part of syncbn's API.
'use strict';

const { nn, Tensor, Parameter, randn, zeros } = require('..');

/** y = x W^T + b, for x of shape [N, in]. Cf. torch.nn.Linear. */
class Linear extends nn.Module {
  constructor(inFeatures, outFeatures) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const w = randn([outFeatures, inFeatures]);
    const bound = 1 / Math.sqrt(inFeatures);
    for (let i = 0; i < w.data.length; i++) w.data[i] *= bound;
    // Parameters assigned to fields register, as in PyTorch.
    this.weight = new Parameter(w);
    this.bias = new Parameter(zeros([outFeatures]));
  }
  forward(x) {
    this.input = x;
    const [n] = x.shape;
    const { inFeatures: k, outFeatures: m } = this;
    const a = x.data, w = this.weight.data, b = this.bias.data;
    const y = new Float32Array(n * m);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let s = b[j];
        for (let t = 0; t < k; t++) s += a[i * k + t] * w[j * k + t];
        y[i * m + j] = s;
      }
    }
    return new Tensor(y, [n, m]);
  }
  backward(dy) {
    const x = this.input;
    const [n] = x.shape;
    const { inFeatures: k, outFeatures: m } = this;
    const a = x.data, w = this.weight.data, g = dy.data;
    const dx = new Float32Array(n * k);
    const dw = this.weight.grad ? this.weight.grad.data : new Float32Array(m * k);
    const db = this.bias.grad ? this.bias.grad.data : new Float32Array(m);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        const gij = g[i * m + j];
        db[j] += gij;
        for (let t = 0; t < k; t++) {
          dw[j * k + t] += gij * a[i * k + t];
          dx[i * k + t] += gij * w[j * k + t];
        }
      }
    }
    this.weight.grad = new Tensor(dw, [m, k]);
    this.bias.grad = new Tensor(db, [m]);
    return new Tensor(dx, [n, k]);
  }
  extraRepr() { return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=True`; }
}

class ReLU extends nn.Module {
  forward(x) {
    this.input = x;
    return new Tensor(x.data.map((v) => (v > 0 ? v : 0)), x.shape);
  }
  backward(dy) {
    const x = this.input.data;
    return new Tensor(dy.data.map((g, i) => (x[i] > 0 ? g : 0)), dy.shape);
  }
}

/** Mean softmax cross-entropy of logits [N, K] against integer labels; its gradient too. */
function crossEntropy(logits, labels) {
  const [n, k] = logits.shape;
  const z = logits.data;
  const grad = new Float32Array(n * k);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < k; j++) if (z[i * k + j] > max) { max = z[i * k + j]; arg = j; }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(z[i * k + j] - max);
    loss += Math.log(sum) + max - z[i * k + labels[i]];
    for (let j = 0; j < k; j++) grad[i * k + j] = (Math.exp(z[i * k + j] - max) / sum - (j === labels[i] ? 1 : 0)) / n;
    if (arg === labels[i]) correct++;
  }
  return { loss: loss / n, correct, grad: new Tensor(grad, [n, k]) };
}

/** Plain SGD step over every parameter with a gradient. */
function sgdStep(module, lr) {
  for (const p of module.parameters()) {
    if (!p.grad) continue;
    const g = p.grad.data;
    for (let i = 0; i < p.data.length; i++) p.data[i] -= lr * g[i];
  }
}

module.exports = { Linear, ReLU, crossEntropy, sgdStep };
