// SyncBatchNormalization on 2 and 3 Gloo processes (syncbn-run), with
// uneven, single-sample and empty batches: every rank's outputs, input
// gradients and moving statistics equal tfjs-layers' semantics (support.ts)
// on the concatenated batch, and its gamma and beta gradients sum over the
// ranks to the whole batch's.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../lib/native';
import { freePort, LAUNCHER, runNode } from '../distributed/support';
import { requireOrSkip } from '../support/require';
import { scratchDirs } from '../support/scratch';
import { close, LayerConfig, reference, seeded, Step, StepResult, useBackend, values, Weights } from './support';

const WORKER = path.join(__dirname, 'workers', 'layer_rank.js');
const tempDir = scratchDirs();
const gloo = requireOrSkip('gloo', native.features.gloo, `${native.features.file} was built without Gloo`);

interface Case {
  name: string;
  sizes: number[];
  tail: number[];
  layer: LayerConfig;
  train: number;
  infer: number;
}

const CASES: Case[] = [
  { name: '2 ranks, uneven batches, channels last (axis -1), rank 4', sizes: [3, 5], tail: [3, 2, 4], layer: { axis: -1, momentum: 0.9, epsilon: 1e-3, center: true, scale: true }, train: 2, infer: 1 },
  { name: '3 ranks, one empty, channels first (axis 1), rank 3, scale off', sizes: [2, 0, 4], tail: [3, 5], layer: { axis: 1, momentum: 0.8, epsilon: 1e-3, center: true, scale: false }, train: 2, infer: 1 },
  { name: '2 ranks, one sample on a rank, rank 5, center off', sizes: [1, 4], tail: [2, 3, 2, 3], layer: { axis: -1, momentum: 0.5, epsilon: 1e-4, center: false, scale: true }, train: 2, infer: 0 },
  { name: '2 ranks, both empty: empty outputs, moving statistics unchanged', sizes: [0, 0], tail: [4], layer: { axis: -1, momentum: 0.9, epsilon: 1e-3, center: true, scale: true }, train: 1, infer: 0 },
];

function scenario(c: Case, seed: number) {
  const random = seeded(seed);
  const shape = [c.sizes.reduce((a, b) => a + b, 0), ...c.tail];
  const size = shape.reduce((a, b) => a * b, 1);
  const C = c.tail[(c.layer.axis < 0 ? c.layer.axis + shape.length : c.layer.axis) - 1];
  const steps: Step[] = Array.from({ length: c.train + c.infer }, (_, i) => ({ training: i < c.train, x: values(size, random, 2, 3), dy: values(size, random) }));
  const weights: Weights = { gamma: values(C, random, 1, 0.5), beta: values(C, random), movingMean: values(C, random), movingVariance: values(C, random, 1.5, 0.5) };
  return { shape, steps, weights };
}

gloo('SyncBatchNormalization over Gloo processes', () => {
  beforeAll(() => useBackend('cpu'));

  test.each(CASES.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    const { shape, steps, weights } = scenario(c, 100 + i);
    const dir = tempDir('syncbn-tfjs-');
    const cfgFile = path.join(dir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ sizes: c.sizes, shape, layer: c.layer, weights, steps }));
    const port = await freePort();
    const run = await runNode([LAUNCHER, '--nproc-per-node', String(c.sizes.length), '--master-port', String(port), WORKER, cfgFile, dir]);
    const ranks = c.sizes.map((_, r) => JSON.parse(fs.readFileSync(path.join(dir, `rank${r}.json`), 'utf8')) as { error?: string; steps: StepResult[] });
    ranks.forEach((r, k) => expect([k, r.error]).toEqual([k, undefined]));
    expect(run.code).toBe(0);

    const want = reference(c.layer, shape, weights, steps);
    const per = c.tail.reduce((a, b) => a * b, 1);
    want.forEach((w, s) => {
      let start = 0;
      const C = w.movingMean.length;
      const dgamma = new Array(C).fill(0);
      const dbeta = new Array(C).fill(0);
      ranks.forEach((r, k) => {
        const got = r.steps[s];
        const at = `step ${s}, rank ${k}`;
        const slice = (v: number[]) => v.slice(start * per, (start + c.sizes[k]) * per);
        close(got.y, slice(w.y), `${at}: output`);
        close(got.dx, slice(w.dx), `${at}: grad x`);
        close(got.movingMean, w.movingMean, `${at}: moving mean`);
        close(got.movingVariance, w.movingVariance, `${at}: moving variance`);
        got.dgamma?.forEach((v, ch) => (dgamma[ch] += v));
        got.dbeta?.forEach((v, ch) => (dbeta[ch] += v));
        expect(got.dgamma === null).toBe(!c.layer.scale);
        expect(got.dbeta === null).toBe(!c.layer.center);
        start += c.sizes[k];
      });
      if (w.dgamma) close(dgamma, w.dgamma, `step ${s}: grad gamma summed over the ranks`);
      if (w.dbeta) close(dbeta, w.dbeta, `step ${s}: grad beta summed over the ranks`);
    });
    if (c.sizes.every((n) => n === 0)) {
      close(ranks[0].steps[0].movingMean, weights.movingMean, 'moving mean after an empty global batch');
    }
  });
});
