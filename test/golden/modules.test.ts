// BatchNorm1d/2d/3d against real PyTorch (fixtures by test/golden/generate.py):
// three training steps then eval, forward and backward, grads accumulating,
// running stats and the counter, in both dtypes and both memory formats. The
// cases and their checks are checks.js's, which the GPU suite runs on CUDA.
import * as lib from '../../lib';
import { cases, load } from './checks';

describe('BatchNorm vs PyTorch', () => {
  test('fixture covers every kind x affine x tracking x momentum, in both dtypes', () => {
    for (const dtype of ['float32', 'float64']) {
      const fixture = load(`modules_${dtype}.json`);
      expect(fixture.dtype).toBe(dtype);
      expect(fixture.cases).toHaveLength(4 * 2 * 2 * 2);
    }
  });

  for (const c of cases('modules')) test(c.name, () => c.run(lib, 'cpu'));
});
