// The oracle for the tfjs layers: tfjs-layers' BatchNormalization semantics
// written with tf ops (tf.moments and the formula, gradients by tf.grads),
// not with the layer itself, which is wrong in places. Tolerance: float32,
// |a - e| <= 1e-4 * (|e| + rms(e)) elementwise (the rms term covers values that
// cancel to near zero, such as a channel's gradient sums).
import * as tf from '@tensorflow/tfjs';
import { assertClose } from '../support/assert_close';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { runLayer: runLayerWith } = require('./run_layer') as {
  runLayer: (t: typeof tf, layer: tf.layers.Layer, shape: number[], steps: Step[]) => StepResult[];
};

export { tf };

export const RTOL = 1e-4;

/** Makes `name` tfjs's backend (wasm is loaded on first use). */
export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  if (name === 'wasm') require('@tensorflow/tfjs-backend-wasm');
  if (tf.getBackend() !== name) await tf.setBackend(name);
  await tf.ready();
  if (tf.getBackend() !== name) throw new Error(`tfjs backend '${name}' did not start (got '${tf.getBackend()}')`);
  // The cpu backend's first write advises tfjs-node, which cannot be installed here; once is enough.
  const warn = console.warn;
  console.warn = () => undefined;
  try {
    tf.tensor([0]).dispose();
  } finally {
    console.warn = warn;
  }
}

/** `actual` against `expected` within the stated float32 tolerance; a non-finite value where a finite one is expected fails. */
export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  for (let i = 0; i < Math.min(actual.length, expected.length); i++) {
    if (Number.isFinite(expected[i]) && !Number.isFinite(actual[i])) {
      throw new Error(`${label}: element ${i} is ${String(actual[i])}, expected ${expected[i]}`);
    }
  }
  let sq = 0;
  for (let i = 0; i < expected.length; i++) sq += expected[i] * expected[i];
  const rms = expected.length > 0 ? Math.sqrt(sq / expected.length) : 0;
  assertClose(actual, expected, { rtol: RTOL, atol: RTOL * rms }, label);
}

/** Runs `fn` in a tfjs scope: the tensors it makes are disposed at its end (tf.tidy for plain results). */
function scoped<T>(fn: () => T): T {
  tf.engine().startScope();
  try {
    return fn();
  } finally {
    tf.engine().endScope();
  }
}

/** mulberry32: reproducible values in every process. */
export function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` values near `offset`, spread `spread`. */
export function values(n: number, random: () => number, offset = 0, spread = 1): number[] {
  return Array.from({ length: n }, () => offset + spread * (2 * random() - 1));
}

export interface LayerConfig {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
}

export interface Step {
  training: boolean;
  x: number[];
  dy: number[];
}

export interface StepResult {
  y: number[];
  dx: number[];
  /** Null when the layer has no gamma (scale: false) / beta (center: false). */
  dgamma: number[] | null;
  dbeta: number[] | null;
  movingMean: number[];
  movingVariance: number[];
}

export interface Weights {
  gamma: number[];
  beta: number[];
  movingMean: number[];
  movingVariance: number[];
}

/**
 * tfjs-layers' BatchNormalization over `steps` of input `shape`: batch mean
 * and biased variance in training (moving = moving - (moving - batch) *
 * (1 - momentum) after each step), the moving statistics in inference;
 * gamma 1 and beta 0 where scale or center is off. An empty batch moves
 * nothing (tf.moments would make the moving statistics NaN).
 */
export function reference(cfg: LayerConfig, shape: number[], w: Weights, steps: Step[]): StepResult[] {
  const ndim = shape.length;
  const axis = cfg.axis < 0 ? cfg.axis + ndim : cfg.axis;
  const C = shape[axis];
  const reduce = shape.map((_, i) => i).filter((i) => i !== axis);
  const bshape = shape.map((d, i) => (i === axis ? d : 1));
  let movingMean = w.movingMean.slice();
  let movingVariance = w.movingVariance.slice();
  const empty = shape.reduce((a, b) => a * b, 1) === 0;
  if (empty) {
    // tf.grads cannot reduce an empty batch; the values are plain.
    const zeros = () => new Array(C).fill(0);
    return steps.map(() => ({
      y: [], dx: [], dgamma: cfg.scale ? zeros() : null, dbeta: cfg.center ? zeros() : null, movingMean, movingVariance,
    }));
  }
  return steps.map((s) => scoped(() => {
    const x = tf.tensor(s.x, shape);
    const dy = tf.tensor(s.dy, shape);
    const g = tf.tensor1d(cfg.scale ? w.gamma : new Array(C).fill(1));
    const b = tf.tensor1d(cfg.center ? w.beta : new Array(C).fill(0));
    const mm = tf.tensor1d(movingMean);
    const mv = tf.tensor1d(movingVariance);
    const f = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
      let mean: tf.Tensor = mm.reshape(bshape);
      let variance: tf.Tensor = mv.reshape(bshape);
      if (s.training) ({ mean, variance } = tf.moments(xx, reduce, true));
      return xx.sub(mean).mul(tf.rsqrt(variance.add(cfg.epsilon))).mul(gg.reshape(bshape)).add(bb.reshape(bshape));
    };
    const y = f(x, g, b);
    const [dx, dg, db] = tf.grads(f)([x, g, b], dy);
    if (s.training) {
      const { mean, variance } = tf.moments(x, reduce);
      const decay = 1 - cfg.momentum;
      movingMean = Array.from(mm.sub(mm.sub(mean).mul(decay)).dataSync());
      movingVariance = Array.from(mv.sub(mv.sub(variance).mul(decay)).dataSync());
    }
    return {
      y: Array.from(y.dataSync()),
      dx: Array.from(dx.dataSync()),
      dgamma: cfg.scale ? Array.from(dg.dataSync()) : null,
      dbeta: cfg.center ? Array.from(db.dataSync()) : null,
      movingMean,
      movingVariance,
    };
  }));
}

/** The layer's weights, as reference() takes them. */
export function weightsOf(layer: tf.layers.Layer, cfg: LayerConfig): Weights {
  const ws = layer.getWeights().map((t) => Array.from(t.dataSync()));
  const C = ws[ws.length - 1].length;
  let i = 0;
  const gamma = cfg.scale ? ws[i++] : new Array(C).fill(1);
  const beta = cfg.center ? ws[i++] : new Array(C).fill(0);
  return { gamma, beta, movingMean: ws[i++], movingVariance: ws[i++] };
}

/** Runs `steps` through `layer` as model code does (run_layer.js, shared with the ranks). */
export function runLayer(layer: tf.layers.Layer, shape: number[], steps: Step[]): StepResult[] {
  return runLayerWith(tf, layer, shape, steps);
}

/** Every field of `got` against `want`, step by step. */
export function expectSteps(got: StepResult[], want: StepResult[], label: string): void {
  expect(got).toHaveLength(want.length);
  want.forEach((w, i) => {
    const at = `${label}, step ${i}`;
    close(got[i].y, w.y, `${at}: output`);
    close(got[i].dx, w.dx, `${at}: grad x`);
    if (w.dgamma) close(got[i].dgamma!, w.dgamma, `${at}: grad gamma`);
    else expect(got[i].dgamma).toBeNull();
    if (w.dbeta) close(got[i].dbeta!, w.dbeta, `${at}: grad beta`);
    else expect(got[i].dbeta).toBeNull();
    close(got[i].movingMean, w.movingMean, `${at}: moving mean`);
    close(got[i].movingVariance, w.movingVariance, `${at}: moving variance`);
  });
}
