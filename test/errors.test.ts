// Bad input: clear errors with PyTorch's wording, no crash, nothing changed.
import { nn, F, tensor, randn, zeros, manualSeed, Tensor } from '../lib';
import { native } from '../lib/native';

describe('errors', () => {
  beforeEach(() => manualSeed(5));

  test('wrong rank, in PyTorch words', () => {
    expect(() => new nn.BatchNorm2d(3).forward(randn([2, 3, 4]))).toThrow(new RangeError('expected 4D input (got 3D input)'));
    expect(() => new nn.BatchNorm1d(3).forward(randn([3]))).toThrow(new RangeError('expected 2D or 3D input (got 1D input)'));
    expect(() => new nn.BatchNorm3d(3).forward(randn([2, 3, 4, 4]))).toThrow(new RangeError('expected 5D input (got 4D input)'));
  });

  test('one value per channel when training', () => {
    expect(() => new nn.BatchNorm1d(8).forward(randn([1, 8]))).toThrow(
      new RangeError('Expected more than 1 value per channel when training, got input size [1, 8]'));
    expect(() => new nn.BatchNorm2d(2).forward(randn([1, 2, 1, 1]))).toThrow(/got input size \[1, 2, 1, 1\]/);
    const bn = new nn.BatchNorm1d(8);
    bn.eval();
    expect(bn.forward(randn([1, 8])).shape).toEqual([1, 8]);
  });

  test('wrong channel count names the tensor, as ATen does', () => {
    expect(() => new nn.BatchNorm2d(8).forward(randn([2, 3, 4, 4]))).toThrow('running_mean should contain 3 elements not 8');
    expect(() => new nn.BatchNorm2d(8, { trackRunningStats: false }).forward(randn([2, 3, 4, 4]))).toThrow(
      'weight should contain 3 elements not 8');
  });

  test('dtype mismatch between input and layer', () => {
    expect(() => new nn.BatchNorm1d(3).forward(randn([4, 3], { dtype: 'float64' }))).toThrow(
      new TypeError('BatchNorm1d.forward: expected input of dtype float32 (the layer\'s dtype, or float16 or bfloat16), got float64'));
    // A half layer takes its own dtype only, as PyTorch's all-half layers do.
    expect(() => new nn.BatchNorm1d(3).bfloat16().forward(randn([4, 3]))).toThrow(
      new TypeError('BatchNorm1d.forward: expected input of dtype bfloat16 (the layer\'s dtype), got float32'));
    expect(() => new nn.BatchNorm1d(3, { dtype: 'float64' }).forward(randn([4, 3], { dtype: 'float16' }))).toThrow(
      new TypeError('BatchNorm1d.forward: expected input of dtype float64 (the layer\'s dtype), got float16'));
    expect(() => F.batchNorm(randn([4, 3]), zeros([3], { dtype: 'float64' }), zeros([3]))).toThrow(/expected running_mean to have dtype float32 \(for the input's float32\), got float64/);
    expect(() => new nn.BatchNorm1d(3).forward(zeros([4, 3], { dtype: 'int64' }))).toThrow(TypeError);
  });

  test('backward before forward, and twice after one forward', () => {
    const bn = new nn.BatchNorm1d(3);
    expect(() => bn.backward(randn([4, 3]))).toThrow('BatchNorm1d.backward() called before forward(): there is no saved forward to differentiate');
    bn.forward(randn([4, 3]));
    bn.backward(randn([4, 3]));
    expect(() => bn.backward(randn([4, 3]))).toThrow(/called before forward/);
  });

  test('a gradient of the wrong shape or dtype is refused', () => {
    const bn = new nn.BatchNorm1d(3);
    bn.forward(randn([4, 3]));
    expect(() => bn.backward(randn([4, 2]))).toThrow(/gradOutput shape \[4, 2\] does not match input shape \[4, 3\]/);
    expect(() => bn.backward(randn([4, 3], { dtype: 'float64' }))).toThrow(/gradOutput to have the input's dtype/);
  });

  test('a failed forward changes neither the input nor the layer', () => {
    const bn = new nn.BatchNorm2d(8);
    const x = randn([2, 3, 4, 4]);
    const xBefore = x.toArray();
    const state = Object.fromEntries(Object.entries(bn.stateDict()).map(([k, v]) => [k, v.toArray()]));
    expect(() => bn.forward(x)).toThrow();
    expect(x.toArray()).toEqual(xBefore);
    for (const [k, v] of Object.entries(bn.stateDict())) expect(v.toArray()).toEqual(state[k]);
    expect(bn.numBatchesTracked!.item()).toBe(0);
  });

  test('a successful forward and backward leave input and gradient untouched', () => {
    const bn = new nn.BatchNorm2d(3);
    const x = randn([2, 3, 4, 4], { memoryFormat: 'channelsLast' });
    const dy = randn([2, 3, 4, 4]);
    const xs = x.toArray();
    const dys = dy.toArray();
    bn.forward(x);
    bn.backward(dy);
    expect(x.toArray()).toEqual(xs);
    expect(dy.toArray()).toEqual(dys);
  });

  test('constructor options are checked', () => {
    expect(() => new nn.BatchNorm2d(0)).toThrow(/numFeatures must be a positive integer/);
    expect(() => new nn.BatchNorm2d(2.5)).toThrow(RangeError);
    expect(() => new nn.BatchNorm2d(2, { eps: -1 })).toThrow(/eps/);
    expect(() => new nn.BatchNorm2d(2, { momentum: NaN })).toThrow(/momentum/);
    expect(() => new nn.BatchNorm2d(2, { dtype: 'int64' as never })).toThrow(TypeError);
  });

  test('functional ops check their arguments', () => {
    expect(() => F.batchNorm('x' as unknown as Tensor, null, null)).toThrow(new TypeError('batch_norm: input must be a Tensor'));
    expect(() => F.batchNorm(randn([4]), null, null, { training: true })).toThrow(/at least 2 dimensions/);
    expect(() => F.batchNorm(randn([4, 3]), null, null)).toThrow(/running_mean is required/);
    expect(() => F.batchNormStats(randn([4, 3]), -1)).toThrow(/eps must be a finite number >= 0/);
    expect(() => F.batchNormGatherStatsWithCounts(randn([2, 3]), randn([2, 3]), null, null, { momentum: 0.1, eps: 1e-5, counts: [1] })).toThrow(
      /counts must have 2 entries/);
  });

  // PyTorch's errors name the condition and the numbers (torch.Size([1, 10, 1]), "3 elements not 4"), and so
  // do these: a user sees what was wrong without a debugger (issue #32, the ported test_nn.py checks).
  test('messages keep the condition and the numbers', () => {
    const g = (counts: number[], invstd = randn([2, 3])) => () =>
      F.batchNormGatherStatsWithCounts(randn([2, 3]), invstd, null, null, { momentum: 0.1, eps: 1e-5, counts });
    expect(g([1])).toThrow('batch_norm_gather_stats_with_counts: counts must have 2 entries, one per worker, got 1');
    expect(g([4, -1])).toThrow('batch_norm_gather_stats_with_counts: counts must be finite and >= 0, got -1 for worker 1');
    expect(g([4, 4], randn([2, 4]))).toThrow("invstd must be a Tensor of mean's shape [2, 3], got shape [2, 4]");
    expect(() => F.batchNormWelfordFinalize(new Float64Array(4), null, null, { eps: 1e-5, momentum: 0.1, dtype: 'float32' }))
      .toThrow('summary must be a Float64Array of (count, mean, m2) triples (a non-zero multiple of 3 values), got 4 values');
    expect(() => new nn.BatchNorm1d(10).forward(randn([1, 10, 1]))).toThrow('Expected more than 1 value per channel when training, got input size [1, 10, 1]');
    expect(() => new nn.BatchNorm1d(3).forward(randn([4, 4]))).toThrow('running_mean should contain 4 elements not 3');
  });

  describe('the native boundary checks again', () => {
    const shape: [number, number, number] = [2, 3, 4];
    const x = new Float32Array(24);
    const c3 = () => new Float32Array(3);

    const stats = (over: Record<string, unknown> = {}) => native.ops.stats({
      dtype: 'float32', shape, channelsLast: false, input: x, eps: 1e-5, mean: c3(), invstd: c3(), ...over,
    } as never);

    test('one object of named arguments', () => {
      expect(() => (native.ops.stats as (...a: unknown[]) => void)(x)).toThrow(
        new TypeError('syncbn native ops.stats: expected one argument, an object of named arguments, got Float32Array of 24 elements'));
      expect(() => (native.ops.stats as (...a: unknown[]) => void)({}, {})).toThrow(/expected one argument, an object of named arguments, got 2 arguments/);
      expect(() => stats({ dtype: 'half' })).toThrow(/ops.stats: 'dtype' must be 'float32', 'float64', 'float16' or 'bfloat16', got a string/);
      expect(() => stats({ input: undefined })).toThrow(/ops.stats: 'input' must be a Float32Array or a DeviceBuffer, got undefined/);
      // The 16-bit floats are Uint16Array bits on the host; their per-channel arrays float32.
      expect(() => stats({ dtype: 'bfloat16', input: undefined })).toThrow(/ops.stats: 'input' must be a Uint16Array or a DeviceBuffer, got undefined/);
      expect(() => stats({ dtype: 'float16' })).toThrow(/ops.stats: 'input' must be a Uint16Array of 24 elements, got Float32Array of 24 elements/);
      expect(() => stats({ dtype: 'float16', input: new Uint16Array(24), mean: new Uint16Array(3) })).toThrow(
        /ops.stats: 'mean' must be a Float32Array of 3 elements, got Uint16Array of 3 elements/);
      expect(() => stats({ dtype: 'bfloat16', input: new Uint16Array(23) })).toThrow(/'input' must have 24 elements, got 23/);
      const mean = new Float32Array(3);
      stats({ dtype: 'bfloat16', input: new Uint16Array(24).fill(0x4000), mean });
      expect(Array.from(mean)).toEqual([2, 2, 2]);
    });

    test('a buffer too short for the shape is refused, not read past its end', () => {
      expect(() => stats({ input: new Float32Array(10) })).toThrow(
        new RangeError("syncbn native ops.stats: 'input' must have 24 elements, got 10"));
      expect(() => native.ops.forwardTraining({ dtype: 'float32', shape, channelsLast: false, input: x, weight: null, bias: null,
        eps: 1e-5, momentum: 0.1, runningMean: null, runningVar: null, output: new Float32Array(23), saveMean: c3(), saveInvstd: c3() })).toThrow(
        /'output' must have 24 elements, got 23/);
    });

    test('mixed or wrong array kinds are refused', () => {
      expect(() => stats({ mean: new Float64Array(3) })).toThrow(
        new TypeError("syncbn native ops.stats: 'mean' must be a Float32Array of 3 elements, got Float64Array of 3 elements"));
      expect(() => stats({ input: new Int32Array(24) })).toThrow(/'input' must be a Float32Array of 24 elements, got Int32Array of 24 elements/);
      expect(() => stats({ dtype: 'float64' })).toThrow(/'input' must be a Float64Array of 24 elements, got Float32Array/);
      expect(() => stats({ invstd: null })).toThrow(/'invstd' must be a Float32Array of 3 elements, got null/);
      expect(() => native.ops.elemt({ dtype: 'float32', shape, channelsLast: false, input: x, mean: c3(), invstd: c3(),
        weight: [1, 2, 3] as never, bias: null, output: new Float32Array(24) })).toThrow(/'weight' must be a Float32Array of 3 elements or null, got an Array/);
    });

    test('bad shapes and scalars are refused', () => {
      expect(() => stats({ shape: [2, 0, 4] })).toThrow(/shape.c must be an integer >= 1/);
      // Errors from the addon come from Node's realm, not jest's: match by message.
      expect(() => stats({ shape: [2, 3.5, 4] })).toThrow(/shape.c must be an integer/);
      expect(() => stats({ shape: [1e12, 1e12, 1e12] })).toThrow(/too many elements/);
      // world x channels would overflow the lengths of means and invstds.
      expect(() => native.ops.gatherStatsWithCounts({ dtype: 'float32', means: c3(), invstds: c3(), counts: new Float64Array(1),
        world: 2 ** 40, channels: 2 ** 30, momentum: 0.1, eps: 1e-5, mean: c3(), invstd: c3(), runningMean: null, runningVar: null }))
        .toThrow(/ops.gatherStatsWithCounts: 'channels' must be at most 8191 for 1099511627776 workers/);
      expect(() => stats({ shape: undefined })).toThrow(/'shape' must be an array \[n, c, inner\], got undefined/);
      expect(() => stats({ channelsLast: 'no' })).toThrow(/'channelsLast' must be a boolean/);
      expect(() => stats({ eps: NaN })).toThrow(/ops.stats: 'eps' must be a finite number/);
      expect(() => stats({ eps: -1 })).toThrow(/ops.stats: 'eps' must be a number >= 0/);
      expect(() => native.ops.moments({ dtype: 'float32', shape, channelsLast: false, input: x, mean: c3(), variance: c3() })).not.toThrow();
      expect(() => native.setNumThreads(0)).toThrow(/'threads' must be an integer >= 1/);
      expect(() => native.convertMemoryFormat(x, x, shape, true)).toThrow(/must not overlap/);
      expect(() => native.convertMemoryFormat(x, new Float64Array(24), shape, true)).toThrow(/same kind of TypedArray/);
    });
  });
});
