// BatchNorm1d/2d/3d against real PyTorch (fixtures by test/golden/generate.py):
// three training steps then eval, forward and backward, grads accumulating,
// running stats and the counter, in both dtypes and both memory formats.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FloatDType } from '../../lib';
import { checkModuleSteps, formatsFor, ModuleInputs, ModuleStep } from './module_steps';

interface Case {
  kind: string;
  affine: boolean;
  track_running_stats: boolean;
  momentum: number | null;
  repr: string;
  steps: ModuleStep[];
}
interface Inputs extends ModuleInputs {
  module: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d';
}
interface Fixture {
  dtype: FloatDType;
  inputs: Record<string, Inputs>;
  cases: Case[];
}

const FIXTURES = path.join(__dirname, 'fixtures');

for (const dtype of ['float32', 'float64'] as const) {
  const fixture: Fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, `modules_${dtype}.json`), 'utf8'));

  describe(`BatchNorm vs PyTorch (${dtype})`, () => {
    test('fixture covers every kind x affine x tracking x momentum', () => {
      expect(fixture.dtype).toBe(dtype);
      expect(fixture.cases).toHaveLength(4 * 2 * 2 * 2);
    });

    for (const c of fixture.cases) {
      const inp = fixture.inputs[c.kind];
      for (const fmt of formatsFor(inp.shape)) {
        const name = `${c.kind} affine=${c.affine} track=${c.track_running_stats} momentum=${c.momentum} ${fmt}`;
        test(name, () => {
          checkModuleSteps({ ...c, module: inp.module, dtype }, inp, c.steps, fmt, name);
        });
      }
    }
  });
}
