// The ATen-level ops against PyTorch: stats, gather over uneven workers (one
// with no data), elemt, backward reduce and elemt. Composed on one worker they
// must reproduce PyTorch's autograd of F.batch_norm (checks.js opsCase,
// which the GPU suite runs on CUDA).
import * as lib from '../../lib';
import { cases, load } from './checks';

describe('ATen-level ops vs PyTorch', () => {
  test('fixture covers 2D, 4D and 5D in both dtypes', () => {
    expect(load('ops.json').cases.map((c: { name: string }) => c.name).sort())
      .toEqual(['2D-float32', '2D-float64', '4D-float32', '4D-float64', '5D-float32', '5D-float64']);
  });

  for (const c of cases('ops')) test(c.name, () => c.run(lib, 'cpu'));
});
