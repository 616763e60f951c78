// The ATen-level ops against PyTorch: stats, gather over uneven workers (one
// with no data), elemt, backward reduce and elemt. Composed on one worker they
// must reproduce PyTorch's autograd of F.batch_norm.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { F, tensor, Tensor, FloatDType, MemoryFormat } from '../../lib';
import { assertClose, TOLERANCE } from '../support/assert_close';

interface Worker {
  count: number;
  mean?: number[];
  invstd?: number[];
}
interface OpsCase {
  name: string;
  dtype: FloatDType;
  shape: number[];
  eps: number;
  momentum: number;
  splits: number[];
  x: number[];
  dy: number[];
  weight: number[];
  bias: number[];
  running_mean: number[];
  running_var: number[];
  expected: Record<'mean' | 'invstd' | 'running_mean' | 'running_var' | 'y' | 'sum_dy' | 'sum_dy_xmu' | 'grad_weight' | 'grad_bias' | 'dx', number[]> & {
    workers: Worker[];
  };
}

const fixture: { cases: OpsCase[] } = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'ops.json'), 'utf8'));

/** Rows [start, start + n) of a logical-order batch. */
function batchSlice(values: number[], shape: number[], start: number, n: number): number[] {
  const per = values.length / shape[0];
  return values.slice(start * per, (start + n) * per);
}

describe('ATen-level ops vs PyTorch', () => {
  for (const c of fixture.cases) {
    const formats: MemoryFormat[] = c.shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
    for (const fmt of formats) {
      test(`${c.name} ${fmt}`, () => {
        const tol = TOLERANCE[c.dtype];
        const dtype = c.dtype;
        const C = c.shape[1];
        const vec = (v: number[]) => tensor(v, [C], { dtype });
        const x = tensor(c.x, c.shape, { dtype, memoryFormat: fmt });
        const dy = tensor(c.dy, c.shape, { dtype, memoryFormat: fmt });
        const weight = vec(c.weight);
        const bias = vec(c.bias);
        const e = c.expected;

        const { mean, invstd } = F.batchNormStats(x, c.eps);
        assertClose(mean, e.mean, tol, 'stats mean');
        assertClose(invstd, e.invstd, tol, 'stats invstd');

        // Each worker's local stats, then the merge with counts.
        const means: number[] = [];
        const invstds: number[] = [];
        let start = 0;
        c.splits.forEach((n, w) => {
          const part = tensor(batchSlice(c.x, c.shape, start, n), [n, ...c.shape.slice(1)], { dtype, memoryFormat: fmt });
          start += n;
          const local = F.batchNormStats(part, c.eps);
          const ew = e.workers[w];
          expect(ew.count).toBe(n === 0 ? 0 : part.numel() / C);
          if (n > 0) {
            assertClose(local.mean, ew.mean!, tol, `worker ${w} mean`);
            assertClose(local.invstd, ew.invstd!, tol, `worker ${w} invstd`);
          }
          means.push(...local.mean.toArray());
          invstds.push(...local.invstd.toArray());
        });
        const rm = vec(c.running_mean);
        const rv = vec(c.running_var);
        const world = c.splits.length;
        const g = F.batchNormGatherStatsWithCounts(tensor(means, [world, C], { dtype }), tensor(invstds, [world, C], { dtype }), rm, rv, {
          momentum: c.momentum,
          eps: c.eps,
          counts: e.workers.map((w) => w.count),
        });
        assertClose(g.mean, e.mean, tol, 'gathered mean');
        assertClose(g.invstd, e.invstd, tol, 'gathered invstd');
        assertClose(rm, e.running_mean, tol, 'running mean');
        assertClose(rv, e.running_var, tol, 'running var');

        const y = F.batchNormElemt(x, weight, bias, mean, invstd);
        expect(y.memoryFormat).toBe(fmt);
        assertClose(y, e.y, tol, 'elemt');

        const r = F.batchNormBackwardReduce(dy, x, mean, invstd, weight);
        assertClose(r.sumDy!, e.sum_dy, tol, 'sum_dy');
        assertClose(r.sumDyXmu!, e.sum_dy_xmu, tol, 'sum_dy_xmu');
        assertClose(r.gradWeight!, e.grad_weight, tol, 'grad weight');
        assertClose(r.gradBias!, e.grad_bias, tol, 'grad bias');

        const count = x.numel() / C;
        const dx = F.batchNormBackwardElemt(dy, x, mean, invstd, weight, r.sumDy!, r.sumDyXmu!, count);
        assertClose(dx, e.dx, tol, 'backward elemt');
      });
    }
  }

  test('F.batchNorm and F.batchNormBackward reproduce the same case', () => {
    const c = fixture.cases.find((k) => k.dtype === 'float64' && k.shape.length === 4)!;
    const dtype = c.dtype;
    const C = c.shape[1];
    const x = tensor(c.x, c.shape, { dtype });
    const rm = tensor(c.running_mean, [C], { dtype });
    const rv = tensor(c.running_var, [C], { dtype });
    const weight = tensor(c.weight, [C], { dtype });
    const bias = tensor(c.bias, [C], { dtype });
    const fwd = F.nativeBatchNorm(x, weight, bias, rm, rv, true, c.momentum, c.eps);
    const tol = TOLERANCE[dtype];
    assertClose(fwd.output, c.expected.y, tol, 'output');
    assertClose(rm, c.expected.running_mean, tol, 'running mean');
    const y = F.batchNorm(x, null, null, { weight, bias, training: true, eps: c.eps });
    assertClose(y, c.expected.y, tol, 'F.batchNorm output');
    const g = F.batchNormBackward(tensor(c.dy, c.shape, { dtype }), x, {
      weight, saveMean: fwd.saveMean, saveInvstd: fwd.saveInvstd, training: true, eps: c.eps,
    });
    assertClose(g.gradInput as Tensor, c.expected.dx, tol, 'grad input');
    assertClose(g.gradWeight as Tensor, c.expected.grad_weight, tol, 'grad weight');
    assertClose(g.gradBias as Tensor, c.expected.grad_bias, tol, 'grad bias');
  });
});
