// float16 and bfloat16 inputs through float32 layers (half.json, written by
// test/golden/generate.py for the CUDA kernels) on the CPU: the same cases
// the GPU suite runs on CUDA (checks.js), tolerances PyTorch's for the half types.
import * as lib from '../../lib';
import { cases } from './checks';

describe('half-precision inputs vs PyTorch (half.json) on the CPU', () => {
  for (const c of cases('half')) test(c.name, () => c.run(lib, 'cpu'));
});
