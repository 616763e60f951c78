// NaN and infinities propagate as in PyTorch (fixtures by
// test/golden/generate_nonfinite.py): running stats, outputs and grads of
// BatchNorm1d/2d in training and eval, both dtypes and memory formats, on
// small batches and on batches large enough for the multi-threaded and fused
// kernel paths. A non-finite expected value must be matched exactly (NaN by
// NaN, +Inf by +Inf); finite values within the stated tolerance.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FloatDType, MemoryFormat, nn, Tensor, tensor } from '../../lib';
import { formatsFor } from './module_steps';
import { dec, Enc, expectSame } from './encoded_values';

interface Step {
  training: boolean;
  grad_weight: Enc[];
  grad_bias: Enc[];
  running_mean: Enc[];
  running_var: Enc[];
  y?: Enc[];
  dx?: Enc[];
  y_summary?: [number, number, number, number][];
  dx_summary?: [number, number, number, number][];
}
interface Case {
  name: string;
  module: 'BatchNorm1d' | 'BatchNorm2d';
  shape: number[];
  dtype: FloatDType;
  train: Step[];
  eval: Step[];
}
const fixture: { poison: Record<string, [number, Enc][]>; cases: Case[] } = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'fixtures', 'nonfinite.json'), 'utf8'),
);

// Element-wise values: float32 ~1e-5, float64 ~1e-12 (as the other golden suites);
// per-channel sums of thousands of values: 1e-4 / 1e-9 relative.
const TOL = { float32: { value: 1e-5, sum: 1e-4 }, float64: { value: 1e-12, sum: 1e-9 } };

/** The generator's t[k] = ((k * mul) % mod) / div - off + c, then the poison (logical order). */
function formula(shape: number[], mul: number, mod: number, div: number, off: number, poison: boolean): Float64Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const c = shape[1];
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const t = new Float64Array(n);
  for (let k = 0; k < n; k++) t[k] = ((k * mul) % mod) / div - off + (Math.floor(k / inner) % c);
  if (poison) {
    for (const [ch, hits] of Object.entries(fixture.poison)) {
      for (const [j, v] of hits) t[(Math.floor(j / inner) * c + Number(ch)) * inner + (j % inner)] = dec(v);
    }
  }
  return t;
}

function summary(t: Tensor, c: number): number[][] {
  const v = t.toArray();
  const inner = t.shape.slice(2).reduce((a, b) => a * b, 1);
  const out = Array.from({ length: c }, () => [0, 0, 0, 0]);
  for (let k = 0; k < v.length; k++) {
    const s = out[Math.floor(k / inner) % c];
    const x = v[k];
    if (Number.isNaN(x)) s[0]++;
    else if (x === Infinity) s[1]++;
    else if (x === -Infinity) s[2]++;
    else s[3] += Math.abs(x);
  }
  return out;
}

function checkStep(bn: nn.BatchNorm1d | nn.BatchNorm2d, s: Step, x: Float64Array, dy: Float64Array, c: Case, fmt: MemoryFormat, at: string): void {
  const tol = TOL[c.dtype];
  const C = c.shape[1];
  bn.train(s.training);
  const xt = tensor(x, c.shape, { dtype: c.dtype, memoryFormat: fmt });
  const y = bn.forward(xt);
  const dx = bn.backward(tensor(dy, c.shape, { dtype: c.dtype, memoryFormat: fmt }));
  if (s.y) {
    expectSame(y.toArray(), s.y, tol.value, `${at} output`);
    expectSame(dx.toArray(), s.dx!, tol.value, `${at} grad input`);
  } else {
    const ys = summary(y, C);
    const dxs = summary(dx, C);
    for (let ch = 0; ch < C; ch++) {
      expect([ch, ...ys[ch].slice(0, 3)]).toEqual([ch, ...s.y_summary![ch].slice(0, 3)]);
      expect([ch, ...dxs[ch].slice(0, 3)]).toEqual([ch, ...s.dx_summary![ch].slice(0, 3)]);
      expectSame([ys[ch][3]], [s.y_summary![ch][3]], tol.sum, `${at} channel ${ch} output sum`);
      expectSame([dxs[ch][3]], [s.dx_summary![ch][3]], tol.sum, `${at} channel ${ch} grad input sum`);
    }
  }
  expectSame(bn.weight!.grad!.toArray(), s.grad_weight, tol.value * 10, `${at} grad weight`);
  expectSame(bn.bias!.grad!.toArray(), s.grad_bias, tol.value * 10, `${at} grad bias`);
  expectSame(bn.runningMean!.toArray(), s.running_mean, tol.value, `${at} running mean`);
  expectSame(bn.runningVar!.toArray(), s.running_var, tol.value, `${at} running var`);
}

describe('NaN and infinities propagate as in PyTorch', () => {
  test('the fixture covers small and large batches in both dtypes', () => {
    expect(fixture.cases).toHaveLength(8);
  });

  for (const c of fixture.cases) {
    for (const fmt of formatsFor(c.shape)) {
      const name = `${c.name} ${c.dtype} ${fmt}`;
      test(name, () => {
        const C = c.shape[1];
        const make = () => {
          const bn = new nn[c.module](C, { dtype: c.dtype });
          bn.weight!.copy_(tensor(Array.from({ length: C }, (_, i) => i * 0.25 + 0.5), [C], { dtype: c.dtype }));
          bn.bias!.copy_(tensor(Array.from({ length: C }, (_, i) => i * 0.5 - 1), [C], { dtype: c.dtype }));
          return bn;
        };
        const xBad = formula(c.shape, 7919, 1000, 100, 5, true);
        const xOk = formula(c.shape, 7919, 1000, 100, 5, false);
        const dyBad = formula(c.shape, 104729, 997, 250, 2, true);
        const dyOk = formula(c.shape, 104729, 997, 250, 2, false);
        const bn = make();
        checkStep(bn, c.train[0], xBad, dyOk, c, fmt, `${name} train step 0 (NaN/Inf in x)`);
        checkStep(bn, c.train[1], xOk, dyBad, c, fmt, `${name} train step 1 (NaN/Inf in dy)`);
        // Eval: dx depends on dy, weight and running var only, never on x.
        checkStep(make(), c.eval[0], xBad, dyOk, c, fmt, `${name} eval (NaN/Inf in x)`);
      });
    }
  }
});
