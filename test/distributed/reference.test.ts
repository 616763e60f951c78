// The distributed tests' float64 reference (reference.ts) against PyTorch's
// own numbers: the golden fixtures of BatchNorm with weight, bias and running
// stats, in float64 (momentum 0.1, None, 0.3, 1.0; eps 1e-5, 1e-3, 0.1), so
// the reference every rank is checked against is itself checked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertClose } from '../support/assert_close';
import { referenceBatchNorm } from './reference';
import type { ModuleInputs, ModuleSetup, ModuleStep } from '../golden/module_steps';

const FIXTURES = path.join(__dirname, '..', 'golden', 'fixtures');
const load = (f: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf8'));
const TOL = { rtol: 1e-12, atol: 1e-12 };

interface Case { name: string; setup: ModuleSetup; inp: ModuleInputs; steps: ModuleStep[] }

function cases(): Case[] {
  const out: Case[] = [];
  const modules = load('modules_float64.json');
  for (const c of modules.cases) {
    const inp = modules.inputs[c.kind];
    out.push({ name: `modules_float64 ${c.kind} momentum=${c.momentum}`, setup: { ...c, module: inp.module, dtype: 'float64' }, inp, steps: c.steps });
  }
  for (const c of load('varied.json').modules) {
    if (c.dtype === 'float64') out.push({ name: `varied ${c.module} [${c.shape}] eps=${c.eps} momentum=${c.momentum}`, setup: c, inp: c, steps: c.steps });
  }
  return out.filter((c) => c.setup.affine && c.setup.track_running_stats);
}

describe('the distributed tests\' reference vs PyTorch', () => {
  const all = cases();
  test('covers the momenta and eps values the distributed tests use', () => {
    expect(new Set(all.map((c) => c.setup.momentum))).toEqual(new Set([0.1, null, 0.3, 1]));
    expect(new Set(all.map((c) => c.setup.eps ?? 1e-5))).toEqual(new Set([1e-5, 1e-3, 0.1]));
  });

  test.each(all.map((c) => [c.name, c] as const))('%s', (_, c) => {
    const ref = referenceBatchNorm({
      shape: c.inp.shape, eps: c.setup.eps ?? 1e-5, momentum: c.setup.momentum, weight: c.inp.weight, bias: c.inp.bias, dtype: 'float64',
      steps: c.steps.map((s, i) => ({ training: s.training, x: c.inp.x[i], dy: c.inp.dy[i] })),
    });
    c.steps.forEach((s, i) => {
      const at = `step ${i}`;
      assertClose(ref[i].y, s.y, TOL, `${at} output`);
      assertClose(ref[i].dx, s.dx, TOL, `${at} grad input`);
      assertClose(ref[i].gradWeight, s.grad_weight!, TOL, `${at} grad weight`);
      assertClose(ref[i].gradBias, s.grad_bias!, TOL, `${at} grad bias`);
      assertClose(ref[i].runningMean, s.running_mean!, TOL, `${at} running mean`);
      assertClose(ref[i].runningVar, s.running_var!, TOL, `${at} running var`);
      expect(ref[i].counter).toBe(s.num_batches_tracked);
    });
  });
});
