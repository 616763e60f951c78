// MomentumBatchNorm1d/2d/3d against a PyTorch reference written from the
// layer's rules: six forwards with backward, the last two in eval.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nn, tensor, FloatDType, MemoryFormat } from '../../lib';
import { assertClose, TOLERANCE } from '../support/assert_close';

interface Step {
  training: boolean;
  y: number[];
  dx: number[];
  running_mean: number[];
  running_var: number[];
  cur_iter: number;
  momentum: number;
  grad_weight?: number[];
  grad_bias?: number[];
}
interface Case {
  module: 'MomentumBatchNorm1d' | 'MomentumBatchNorm2d' | 'MomentumBatchNorm3d';
  kind: string;
  dtype: FloatDType;
  inputs: string;
  affine: boolean;
  momentum: number;
  total_iters: number;
  steps: Step[];
}
interface Inputs {
  shape: number[];
  weight: number[];
  bias: number[];
  x: number[][];
  dy: number[][];
}

const fixture: { inputs: Record<string, Inputs>; cases: Case[] } = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'fixtures', 'momentum.json'), 'utf8'));

describe('MomentumBatchNorm vs the PyTorch reference', () => {
  test('fixture covers 1d (2D, 3D input), 2d, 3d x affine x two schedules x two dtypes', () => {
    expect(fixture.cases).toHaveLength(4 * 2 * 2 * 2);
  });

  for (const c of fixture.cases) {
    const inp = fixture.inputs[c.inputs];
    const formats: MemoryFormat[] = inp.shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
    for (const fmt of formats) {
      const name = `${c.module} ${c.kind} ${c.dtype} affine=${c.affine} momentum=${c.momentum} totalIters=${c.total_iters} ${fmt}`;
      test(name, () => {
        const tol = TOLERANCE[c.dtype];
        const dtype = c.dtype;
        const C = inp.shape[1];
        const bn = new nn[c.module](C, { affine: c.affine, momentum: c.momentum, totalIters: c.total_iters, dtype });
        if (c.affine) {
          bn.weight!.copy_(tensor(inp.weight, [C], { dtype }));
          bn.bias!.copy_(tensor(inp.bias, [C], { dtype }));
        }
        c.steps.forEach((s, i) => {
          const at = `${name} step ${i}`;
          bn.train(s.training);
          const y = bn.forward(tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt }));
          assertClose(y, s.y, tol, `${at} output`);
          const dx = bn.backward(tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt }));
          assertClose(dx, s.dx, tol, `${at} grad input`);
          assertClose(bn.runningMean!, s.running_mean, tol, `${at} running mean`);
          assertClose(bn.runningVar!, s.running_var, tol, `${at} running var`);
          expect(bn.curIter).toBe(s.cur_iter);
          expect(bn.momentum).toBeCloseTo(s.momentum, 14);
          if (c.affine) {
            assertClose(bn.weight!.grad!, s.grad_weight!, tol, `${at} grad weight`);
            assertClose(bn.bias!.grad!, s.grad_bias!, tol, `${at} grad bias`);
          }
        });
      });
    }
  }
});
