// The CPU kernels' float16 and bfloat16 loads and stores (native/kernels/cpu/half.h),
// in the build this CPU runs and in the baseline build (SYNCBN_CPU_ISA=baseline),
// each in a child process (test/support/isa_child.js): every one of the 65,536
// patterns of each type goes through a normalization that leaves it unchanged,
// and float32 products are rounded to nearest even as lib/half_float.ts (a
// separate codec, PyTorch's rounding) rounds them, over runs and over rows of 13
// and 4096 channels, so the vector paths, their ends and the row passes all
// convert. And the two builds agree on whole ops in every dtype.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { assertClose, TOLERANCE } from './support/assert_close';

const CHILD = path.join(__dirname, 'support', 'isa_child.js');

function run(env: NodeJS.ProcessEnv): { isa: string; conversions: string; ops: Record<string, number[]> } {
  const r = spawnSync(process.execPath, [CHILD], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120000, maxBuffer: 1 << 26 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
}

type Child = ReturnType<typeof run>;

describe('float16 and bfloat16 in the CPU kernels, both builds', () => {
  let native: Child;
  let baseline: Child;
  beforeAll(() => {
    native = run({ SYNCBN_CPU_ISA: '' });
    baseline = run({ SYNCBN_CPU_ISA: 'baseline' });
  });

  test("every pattern and RNE rounding, this CPU's build", () => {
    expect(native.conversions).toBe('ok');
  });

  test('every pattern and RNE rounding, the baseline build', () => {
    expect(baseline.isa).toBe('baseline');
    expect(baseline.conversions).toBe('ok');
  });

  test('the baseline build computes every op as this CPU\'s does (float32, float16, bfloat16; both layouts)', () => {
    expect(Object.keys(baseline.ops).sort()).toEqual(Object.keys(native.ops).sort());
    expect(Object.keys(native.ops).length).toBe(60);
    for (const [key, values] of Object.entries(baseline.ops)) {
      const dtype = key.split(' ')[0] as keyof typeof TOLERANCE;
      assertClose(values, native.ops[key], TOLERANCE[dtype], `baseline vs ${native.isa}: ${key}`);
    }
  });
});
