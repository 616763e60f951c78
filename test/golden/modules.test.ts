// BatchNorm1d/2d/3d against real PyTorch (fixtures by test/golden/generate.py):
// three training steps then eval, forward and backward, grads accumulating,
// running stats and the counter, in both dtypes and both memory formats.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nn, tensor, FloatDType, MemoryFormat } from '../../lib';
import { assertClose, TOLERANCE } from '../support/assert_close';

interface Step {
  training: boolean;
  y: number[];
  dx: number[];
  grad_weight?: number[];
  grad_bias?: number[];
  running_mean?: number[];
  running_var?: number[];
  num_batches_tracked?: number;
}
interface Case {
  kind: string;
  affine: boolean;
  track_running_stats: boolean;
  momentum: number | null;
  repr: string;
  steps: Step[];
}
interface Inputs {
  module: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d';
  shape: number[];
  weight: number[];
  bias: number[];
  x: number[][];
  dy: number[][];
}
interface Fixture {
  dtype: FloatDType;
  inputs: Record<string, Inputs>;
  cases: Case[];
}

const FIXTURES = path.join(__dirname, 'fixtures');

for (const dtype of ['float32', 'float64'] as const) {
  const fixture: Fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, `modules_${dtype}.json`), 'utf8'));
  const tol = TOLERANCE[dtype];

  describe(`BatchNorm vs PyTorch (${dtype})`, () => {
    test('fixture covers every kind x affine x tracking x momentum', () => {
      expect(fixture.dtype).toBe(dtype);
      expect(fixture.cases).toHaveLength(4 * 2 * 2 * 2);
    });

    for (const c of fixture.cases) {
      const inp = fixture.inputs[c.kind];
      const formats: MemoryFormat[] = inp.shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
      for (const fmt of formats) {
        const name = `${c.kind} affine=${c.affine} track=${c.track_running_stats} momentum=${c.momentum} ${fmt}`;
        test(name, () => {
          const bn = new nn[inp.module](inp.shape[1], {
            momentum: c.momentum,
            affine: c.affine,
            trackRunningStats: c.track_running_stats,
            dtype,
          });
          expect(bn.toString()).toBe(c.repr);
          if (c.affine) {
            bn.weight!.copy_(tensor(inp.weight, [inp.shape[1]], { dtype }));
            bn.bias!.copy_(tensor(inp.bias, [inp.shape[1]], { dtype }));
          }
          c.steps.forEach((s, i) => {
            const at = `${name} step ${i} (${s.training ? 'train' : 'eval'})`;
            bn.train(s.training);
            const x = tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt });
            const dy = tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt });
            const xBefore = x.toArray();
            const y = bn.forward(x);
            expect(y.memoryFormat).toBe(fmt);
            assertClose(y, s.y, tol, `${at} output`);
            const dx = bn.backward(dy);
            expect(dx.memoryFormat).toBe(fmt);
            assertClose(dx, s.dx, tol, `${at} grad input`);
            expect(x.toArray()).toEqual(xBefore);
            if (c.affine) {
              assertClose(bn.weight!.grad!, s.grad_weight!, tol, `${at} grad weight`);
              assertClose(bn.bias!.grad!, s.grad_bias!, tol, `${at} grad bias`);
            } else {
              expect(bn.weight).toBeNull();
            }
            if (c.track_running_stats) {
              assertClose(bn.runningMean!, s.running_mean!, tol, `${at} running mean`);
              assertClose(bn.runningVar!, s.running_var!, tol, `${at} running var`);
              expect(bn.numBatchesTracked!.item()).toBe(s.num_batches_tracked);
            } else {
              expect(bn.runningMean).toBeNull();
            }
          });
        });
      }
    }
  });
}
