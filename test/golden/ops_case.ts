// Checks one ATen-level ops fixture case (test/golden/generate.py ops_case):
// stats, gather over uneven workers (one may have no data), elemt, backward
// reduce and elemt; the fused F.nativeBatchNorm / F.batchNorm /
// F.batchNormBackward in training and, when recorded, in eval; and the
// Welford stats SyncBatchNorm all-reduces, finalized with the case's eps and momentum.
// Half cases (test/golden/generate_half_cpu.py) take float32 per-channel tensors.
import { F, tensor, Tensor, FloatingDType, MemoryFormat } from '../../lib';
import { assertClose, TOLERANCE } from '../support/assert_close';

interface Worker {
  count: number;
  mean?: number[];
  invstd?: number[];
}
type Expected = Record<'mean' | 'invstd' | 'running_mean' | 'running_var' | 'y' | 'sum_dy' | 'sum_dy_xmu' | 'grad_weight' | 'grad_bias' | 'dx', number[]>;
export interface OpsCase {
  name: string;
  dtype: FloatingDType;
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
  expected: Expected & {
    workers: Worker[];
    eval?: Record<'y' | 'dx' | 'grad_weight' | 'grad_bias', number[]>;
  };
}

/** Rows [start, start + n) of a logical-order batch. */
function batchSlice(values: number[], shape: number[], start: number, n: number): number[] {
  const per = values.length / shape[0];
  return values.slice(start * per, (start + n) * per);
}

export function checkOpsCase(c: OpsCase, fmt: MemoryFormat): void {
  const tol = TOLERANCE[c.dtype];
  const dtype = c.dtype;
  // Per-channel tensors (and the per-worker statistics) are float32 for half inputs.
  const pd = dtype === 'float64' ? 'float64' : 'float32';
  const C = c.shape[1];
  const vec = (v: number[]) => tensor(v, [C], { dtype: pd });
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
  const g = F.batchNormGatherStatsWithCounts(tensor(means, [world, C], { dtype: pd }), tensor(invstds, [world, C], { dtype: pd }), rm, rv, {
    momentum: c.momentum,
    eps: c.eps,
    counts: e.workers.map((w) => w.count),
  });
  assertClose(g.mean, e.mean, tol, 'gathered mean');
  assertClose(g.invstd, e.invstd, tol, 'gathered invstd');
  assertClose(rm, e.running_mean, tol, 'gathered running mean');
  assertClose(rv, e.running_var, tol, 'gathered running var');

  const y = F.batchNormElemt(x, weight, bias, mean, invstd);
  expect(y.memoryFormat).toBe(fmt);
  expect(y.dtype).toBe(dtype);
  assertClose(y, e.y, tol, 'elemt');

  const r = F.batchNormBackwardReduce(dy, x, mean, invstd, weight);
  assertClose(r.sumDy!, e.sum_dy, tol, 'sum_dy');
  assertClose(r.sumDyXmu!, e.sum_dy_xmu, tol, 'sum_dy_xmu');
  assertClose(r.gradWeight!, e.grad_weight, tol, 'grad weight');
  assertClose(r.gradBias!, e.grad_bias, tol, 'grad bias');

  const count = x.numel() / C;
  const dx = F.batchNormBackwardElemt(dy, x, mean, invstd, weight, r.sumDy!, r.sumDyXmu!, count);
  assertClose(dx, e.dx, tol, 'backward elemt');

  // The fused single-worker paths.
  const frm = vec(c.running_mean);
  const frv = vec(c.running_var);
  const fwd = F.nativeBatchNorm(x, weight, bias, frm, frv, true, c.momentum, c.eps);
  assertClose(fwd.output, e.y, tol, 'nativeBatchNorm output');
  assertClose(frm, e.running_mean, tol, 'nativeBatchNorm running mean');
  assertClose(frv, e.running_var, tol, 'nativeBatchNorm running var');
  const brm = vec(c.running_mean);
  const brv = vec(c.running_var);
  const yb = F.batchNorm(x, brm, brv, { weight, bias, training: true, momentum: c.momentum, eps: c.eps });
  assertClose(yb, e.y, tol, 'F.batchNorm output');
  assertClose(brm, e.running_mean, tol, 'F.batchNorm running mean');
  assertClose(brv, e.running_var, tol, 'F.batchNorm running var');
  const gt = F.batchNormBackward(dy, x, { weight, saveMean: fwd.saveMean, saveInvstd: fwd.saveInvstd, training: true, eps: c.eps });
  assertClose(gt.gradInput as Tensor, e.dx, tol, 'batchNormBackward grad input');
  assertClose(gt.gradWeight as Tensor, e.grad_weight, tol, 'batchNormBackward grad weight');
  assertClose(gt.gradBias as Tensor, e.grad_bias, tol, 'batchNormBackward grad bias');

  // What SyncBatchNorm merges: the Welford summary, finalized with eps and momentum.
  const wrm = vec(c.running_mean);
  const wrv = vec(c.running_var);
  const wf = F.batchNormWelfordFinalize(F.batchNormWelfordStats(x), wrm, wrv, { eps: c.eps, momentum: c.momentum, dtype: pd });
  assertClose(wf.mean, e.mean, tol, 'welford mean');
  assertClose(wf.invstd, e.invstd, tol, 'welford invstd');
  assertClose(wrm, e.running_mean, tol, 'welford running mean');
  assertClose(wrv, e.running_var, tol, 'welford running var');

  if (e.eval) {
    const erm = vec(c.running_mean);
    const erv = vec(c.running_var);
    const ye = F.batchNorm(x, erm, erv, { weight, bias, training: false, momentum: c.momentum, eps: c.eps });
    assertClose(ye, e.eval.y, tol, 'eval output');
    expect(Array.from(erm.toArray())).toEqual(Array.from(vec(c.running_mean).toArray()));
    const ge = F.batchNormBackward(dy, x, { weight, runningMean: erm, runningVar: erv, training: false, eps: c.eps });
    assertClose(ge.gradInput as Tensor, e.eval.dx, tol, 'eval grad input');
    assertClose(ge.gradWeight as Tensor, e.eval.grad_weight, tol, 'eval grad weight');
    assertClose(ge.gradBias as Tensor, e.eval.grad_bias, tol, 'eval grad bias');
  }
}
