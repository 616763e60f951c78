// What users vary, against real PyTorch (test/golden/generate.py VARIED_*):
// eps 1e-3, 0.1 and 0; momentum 0.3, 1.0 and None; affine and tracking
// combinations; batch size 2; channel counts that are not multiples of a
// vector width (5, 7, 9, 17, 33), for the modules and the ops, in float32 and
// float64. The other fixtures keep eps = 1e-5 and momentum in {0.1, None},
// where a layer ignoring the user's eps or momentum would pass.
import * as lib from '../../lib';
import { cases, load } from './checks';
import type { ModuleInputs, ModuleSetup, ModuleStep } from './module_steps';
import type { OpsCase } from './ops_case';

type ModuleCase = ModuleSetup & ModuleInputs & { steps: ModuleStep[] };

const fixture: { modules: ModuleCase[]; ops: OpsCase[] } = load('varied.json');

describe('BatchNorm vs PyTorch with the options users vary', () => {
  test('fixture covers the varied eps, momentum, flags, batch 2 and odd channel counts in both dtypes', () => {
    const m = fixture.modules;
    for (const dtype of ['float32', 'float64']) {
      const mine = m.filter((c) => c.dtype === dtype);
      expect(new Set(mine.map((c) => c.eps))).toEqual(new Set([1e-3, 0.1, 0]));
      expect(new Set(mine.map((c) => c.momentum))).toEqual(new Set([0.3, 1, null]));
      expect(new Set(mine.map((c) => `${c.affine}/${c.track_running_stats}`))).toEqual(new Set(['true/true', 'true/false', 'false/true', 'false/false']));
      expect(mine.every((c) => c.shape[0] <= 2 && c.shape[1] % 4 !== 0)).toBe(true);
      expect(mine.some((c) => c.track_running_stats && (c.eps ?? 0) >= 1e-3 && c.steps.some((s) => !s.training))).toBe(true);
      expect(new Set(fixture.ops.filter((c) => c.dtype === dtype).map((c) => c.eps))).toEqual(new Set([1e-3, 0, 0.1]));
    }
  });

  // The cases and their checks are checks.js's, which the GPU suite runs on CUDA.
  for (const c of cases('varied')) test(c.name, () => c.run(lib, 'cpu'));
});
