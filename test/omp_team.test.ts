// The CPU kernels split a call's work over the threads they plan for (row
// ranges, channel shares, barriers: native/kernels/cpu/plan.h), so every
// planned thread must be in the team. OpenMP may give fewer: OMP_DYNAMIC=true
// lets the runtime shrink a team, and OMP_THREAD_LIMIT caps it. Under each, a
// training forward at 3 threads must write every output value and match one
// thread. Runs in a child process, since both are read when OpenMP starts.
import * as path from 'node:path';
import { runNode, ROOT } from './distributed/support';

const SCRIPT = `
const { native } = require(${JSON.stringify(path.join(ROOT, 'dist', 'native.js'))});
const n = 4096, C = 64, shape = [n, C, 1];
const x = new Float32Array(n * C);
for (let i = 0; i < x.length; i++) x[i] = Math.sin(i);
function forward(threads) {
  native.setNumThreads(threads);
  const y = new Float32Array(n * C).fill(NaN);
  native.ops.forwardTraining({ dtype: 'float32', shape, channelsLast: false, input: x, weight: null, bias: null, eps: 1e-5,
    momentum: 0.1, runningMean: null, runningVar: null, output: y, saveMean: new Float32Array(C), saveInvstd: new Float32Array(C) });
  return y;
}
const one = forward(1);
const three = forward(3);
let unwritten = 0, maxDiff = 0;
for (let i = 0; i < three.length; i++) {
  if (Number.isNaN(three[i])) unwritten++;
  else maxDiff = Math.max(maxDiff, Math.abs(three[i] - one[i]));
}
console.log(JSON.stringify({ unwritten, maxDiff, threads: native.getNumThreads() }));
`;

describe('a kernel team smaller than planned', () => {
  for (const [name, env, threads] of [
    ['OMP_DYNAMIC=true', { OMP_DYNAMIC: 'true' }, 3],
    ['OMP_THREAD_LIMIT=1', { OMP_THREAD_LIMIT: '1' }, 1],
  ] as const) {
    test(`${name}: every output value written, as on one thread`, async () => {
      const r = await runNode(['-e', SCRIPT], env, 60000);
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.unwritten).toBe(0);
      // Row ranges merge their sums in another order than one thread: rounding only.
      expect(out.maxDiff).toBeLessThan(1e-5);
      // The thread count the kernels report is the one they get.
      expect(out.threads).toBe(threads);
    });
  }
});
