// Inputs that used to crash the process are refused with the range they must lie in.
import { getNumThreads, nn, randn, setNumThreads } from '../lib';
import { native } from '../lib/native';

describe('thread counts', () => {
  test('setNumThreads refuses counts the OpenMP runtime cannot start, at both layers, naming the range', () => {
    const max = native.maxNumThreads();
    expect(max).toBeGreaterThanOrEqual(64);
    const before = getNumThreads();
    for (const n of [100000, 65536, max + 1]) {
      expect(() => setNumThreads(n)).toThrow(`setNumThreads: expected an integer in [1, ${max}] (4x the cores, at least 64), got ${n}`);
      expect(() => native.setNumThreads(n)).toThrow(new RegExp(`'threads' must be an integer in \\[1, ${max}\\]`));
    }
    expect(() => setNumThreads(0)).toThrow(RangeError);
    expect(() => native.setNumThreads(0)).toThrow(/'threads'/);
    expect(getNumThreads()).toBe(before);
    // The largest accepted count runs a forward.
    setNumThreads(max);
    try {
      const y = new nn.BatchNorm1d(2).forward(randn([1 << 16, 2]));
      expect(y.shape).toEqual([1 << 16, 2]);
    } finally {
      setNumThreads(before);
    }
  });
});
