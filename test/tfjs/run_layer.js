// Runs input steps through a tfjs layer as model code does (apply, then
// tf.valueAndGrads with dy for x and the trainable weights), for the jest
// suites and for the ranks they start alike. Plain JavaScript: the ranks run
// it in plain Node processes, with their own tfjs.
'use strict';

/**
 * @param tf the @tensorflow/tfjs the layer was made with
 * @param layer a built batch normalization layer
 * @param {number[]} shape every step's input shape
 * @param {{training: boolean, x: number[], dy: number[]}[]} steps
 * @returns {{y: number[], dx: number[], dgamma: number[] | null, dbeta: number[] | null, movingMean: number[], movingVariance: number[]}[]}
 */
function runLayer(tf, layer, shape, steps) {
  return steps.map((s) => {
    tf.engine().startScope();
    try {
      const x = tf.tensor(s.x, shape);
      const dy = tf.tensor(s.dy, shape);
      const params = layer.trainableWeights.map((v) => v.read());
      const names = layer.trainableWeights.map((v) => v.originalName.split('/').pop());
      const f = (xx) => layer.apply(xx, { training: s.training });
      const { value: y, grads } = tf.valueAndGrads(f)([x, ...params], dy);
      const byName = (n) => {
        const i = names.indexOf(n);
        return i < 0 ? null : Array.from(grads[1 + i].dataSync());
      };
      const w = layer.getWeights();
      return {
        y: Array.from(y.dataSync()),
        dx: Array.from(grads[0].dataSync()),
        dgamma: byName('gamma'),
        dbeta: byName('beta'),
        movingMean: Array.from(w[w.length - 2].dataSync()),
        movingVariance: Array.from(w[w.length - 1].dataSync()),
      };
    } finally {
      tf.engine().endScope();
    }
  });
}

module.exports = { runLayer };
