// The GPU suite (test/gpu/check_cuda.js: the golden fixtures on 'cuda', fp32,
// fp64, fp16, bf16). It needs a GPU; without one it is skipped with its
// reason, and SYNCBN_REQUIRE=cuda turns the skip into a failure.
import * as path from 'node:path';
import { cuda } from '../../lib';
import { requireOrSkip } from '../support/require';
import { runNode } from '../distributed/support';

requireOrSkip('cuda', cuda.isAvailable(), `no usable GPU (${cuda.unavailableReason()})`)('BatchNorm on CUDA vs PyTorch', () => {
  test('every golden case passes on the GPU', async () => {
    const r = await runNode([path.join(__dirname, 'check_cuda.js')], {}, 600000);
    expect(r.stdout).toMatch(/^\d+ passed, 0 failed$/m);
    expect(r.code).toBe(0);
  });
});
