// The ATen-level ops against PyTorch: stats, gather over uneven workers (one
// with no data), elemt, backward reduce and elemt. Composed on one worker they
// must reproduce PyTorch's autograd of F.batch_norm (see ops_case.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkOpsCase, OpsCase } from './ops_case';
import { formatsFor } from './module_steps';

const fixture: { cases: OpsCase[] } = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'ops.json'), 'utf8'));

describe('ATen-level ops vs PyTorch', () => {
  test('fixture covers 2D, 4D and 5D in both dtypes', () => {
    expect(fixture.cases.map((c) => c.name).sort()).toEqual(['2D-float32', '2D-float64', '4D-float32', '4D-float64', '5D-float32', '5D-float64']);
  });

  for (const c of fixture.cases) {
    for (const fmt of formatsFor(c.shape)) {
      test(`${c.name} ${fmt}`, () => checkOpsCase(c, fmt));
    }
  }
});
