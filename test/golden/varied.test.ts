// What users vary, against real PyTorch (test/golden/generate.py VARIED_*):
// eps 1e-3, 0.1 and 0; momentum 0.3, 1.0 and None; affine and tracking
// combinations; batch size 2; channel counts that are not multiples of a
// vector width (5, 7, 9, 17, 33), for the modules and the ops, in float32 and
// float64. The other fixtures keep eps = 1e-5 and momentum in {0.1, None},
// where a layer ignoring the user's eps or momentum would pass.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkModuleSteps, formatsFor, ModuleInputs, ModuleSetup, ModuleStep } from './module_steps';
import { checkOpsCase, OpsCase } from './ops_case';

type ModuleCase = ModuleSetup & ModuleInputs & { steps: ModuleStep[] };

const fixture: { modules: ModuleCase[]; ops: OpsCase[] } = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'fixtures', 'varied.json'), 'utf8'));

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

  for (const c of fixture.modules) {
    for (const fmt of formatsFor(c.shape)) {
      const name = `${c.module} [${c.shape}] ${c.dtype} eps=${c.eps} momentum=${c.momentum} affine=${c.affine} track=${c.track_running_stats} ${fmt}`;
      test(name, () => checkModuleSteps(c, c, c.steps, fmt, name));
    }
  }

  for (const c of fixture.ops) {
    for (const fmt of formatsFor(c.shape)) {
      test(`ops ${c.name} [${c.shape}] eps=${c.eps} momentum=${c.momentum} ${fmt}`, () => checkOpsCase(c, fmt));
    }
  }
});
