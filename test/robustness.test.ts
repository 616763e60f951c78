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

describe('the raw binding refuses outputs that share memory with inputs', () => {
  const shape = [2, 3, 4] as [number, number, number];
  const c3 = () => new Float32Array(3).fill(1);

  test('the same array, an overlapping view of one buffer, or two outputs in one place are refused, naming both arguments', () => {
    const x = new Float32Array(24).map((_, i) => i);
    const before = x.slice();
    const on = { dtype: 'float32', shape, channelsLast: false } as const;
    const elemt = (input: Float32Array, output: Float32Array) =>
      native.ops.elemt({ ...on, input, mean: c3(), invstd: c3(), weight: null, bias: null, output });
    expect(() => elemt(x, x)).toThrow(
      "syncbn native ops.elemt: output 'output' overlaps input 'input' in memory: outputs must not overlap inputs or other outputs");
    const buf = new Float32Array(40);
    buf.set(x);
    expect(() => elemt(buf.subarray(0, 24), buf.subarray(16, 40))).toThrow(/'output' overlaps input 'input'/);
    const stats = new Float32Array(5);
    expect(() => native.ops.stats({ ...on, input: x, eps: 1e-5, mean: stats.subarray(0, 3), invstd: stats.subarray(2, 5) }))
      .toThrow(/output 'mean' overlaps output 'invstd'/);
    const y = new Float32Array(24);
    expect(() => native.ops.forwardTraining({ ...on, input: x, weight: null, bias: null, eps: 1e-5, momentum: 0.1, runningMean: null,
      runningVar: null, output: y, saveMean: y.subarray(0, 3), saveInvstd: c3() })).toThrow(/'output' overlaps output 'saveMean'/);
    expect(() => native.ops.backward({ ...on, gradOutput: x, input: x, weight: null, mean: c3(), invstdOrVar: c3(), training: true,
      eps: 1e-5, gradInput: x, gradWeight: null, gradBias: null, accumulate: false })).toThrow(/'gradInput' overlaps input 'gradOutput'/);
    const rm = c3();
    expect(() => native.ops.blendStats({ dtype: 'float32', channels: 3, momentum: 0.5, meanA: rm, varA: c3(), meanB: null, varB: null,
      varScale: 1, runningMean: rm, runningVar: null, outMean: rm, outVar: c3() })).toThrow(/'outMean' overlaps input 'meanA'/);
    // The running stats may be the outputs' very arrays (an in-place blend), not a shifted view of them:
    // channel k would read what channel k - 1 wrote.
    const blend = (runningMean: Float32Array, outMean: Float32Array) => native.ops.blendStats({ dtype: 'float32', channels: 3,
      momentum: 0.5, meanA: c3(), varA: c3(), meanB: null, varB: null, varScale: 1, runningMean, runningVar: null, outMean, outVar: c3() });
    const running = new Float32Array(4).fill(3);
    expect(() => blend(running.subarray(0, 3), running.subarray(1, 4))).toThrow(
      /ops.blendStats: output 'outMean' overlaps input 'runningMean' in memory: .* \('runningMean' may be the same array\)/);
    expect(Array.from(running)).toEqual([3, 3, 3, 3]);
    const inPlace = new Float32Array(3).fill(3);
    blend(inPlace, inPlace);
    expect(Array.from(inPlace)).toEqual([2, 2, 2]);
    expect(Array.from(x)).toEqual(Array.from(before));
  });

  test('disjoint views of one ArrayBuffer are accepted and computed as separate arrays', () => {
    const buf = new Float64Array(48);
    const x = buf.subarray(0, 24);
    x.set(Array.from({ length: 24 }, (_, i) => (i * 7) % 5));
    const out = buf.subarray(24, 48);
    const mean = new Float64Array([1, 2, 3]);
    const invstd = new Float64Array([0.5, 1, 2]);
    native.ops.elemt({ dtype: 'float64', shape, channelsLast: false, input: x, mean, invstd, weight: null, bias: null, output: out });
    for (let i = 0; i < 24; i++) {
      const c = Math.floor(i / 4) % 3;
      expect(out[i]).toBe((x[i] - mean[c]) * invstd[c]);
    }
  });
});
