// MomentumBatchNorm1d/2d/3d against a PyTorch reference written from the
// layer's rules: six forwards with backward, the last two in eval.
import * as lib from '../../lib';
import { cases, load } from './checks';

describe('MomentumBatchNorm vs the PyTorch reference', () => {
  test('fixture covers 1d (2D, 3D input), 2d, 3d x affine x two schedules x two dtypes', () => {
    expect(load('momentum.json').cases).toHaveLength(4 * 2 * 2 * 2);
  });

  // The cases and their checks are checks.js's, which the GPU suite runs on CUDA.
  for (const c of cases('momentum')) test(c.name, () => c.run(lib, 'cpu'));
});
