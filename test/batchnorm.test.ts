// BatchNorm semantics that must match PyTorch, each stated on its own.
import { nn, tensor, randn, ones, zeros, manualSeed, Tensor } from '../lib';

const x4 = () => tensor([1, 2, 3, 4, 10, 20, 30, 40], [2, 2, 2, 1]);

describe('BatchNorm semantics', () => {
  beforeEach(() => manualSeed(1234));

  test('defaults: eps 1e-5, momentum 0.1, weight 1, bias 0, running mean 0, var 1, counter 0', () => {
    const bn = new nn.BatchNorm2d(3);
    expect(bn.numFeatures).toBe(3);
    expect(bn.eps).toBe(1e-5);
    expect(bn.momentum).toBe(0.1);
    expect(bn.affine).toBe(true);
    expect(bn.trackRunningStats).toBe(true);
    expect(bn.training).toBe(true);
    expect(Array.from(bn.weight!.toArray())).toEqual([1, 1, 1]);
    expect(Array.from(bn.bias!.toArray())).toEqual([0, 0, 0]);
    expect(Array.from(bn.runningMean!.toArray())).toEqual([0, 0, 0]);
    expect(Array.from(bn.runningVar!.toArray())).toEqual([1, 1, 1]);
    expect(bn.numBatchesTracked!.item()).toBe(0);
    expect(bn.numBatchesTracked!.dtype).toBe('int64');
  });

  test('training normalizes with the biased variance and stores the unbiased one', () => {
    // Channel 0 holds 1, 2, 10, 20 (N=2, H=2): mean 8.25, biased var 55.1875, unbiased 73.5833.
    const bn = new nn.BatchNorm2d(2, { dtype: 'float64' });
    const x = tensor([1, 2, 3, 4, 10, 20, 30, 40], [2, 2, 2, 1], { dtype: 'float64' });
    const y = bn.forward(x).toArray();
    const mean = 8.25;
    const biased = ((1 - mean) ** 2 + (2 - mean) ** 2 + (10 - mean) ** 2 + (20 - mean) ** 2) / 4;
    expect(y[0]).toBeCloseTo((1 - mean) / Math.sqrt(biased + 1e-5), 12);
    expect(bn.runningMean!.toArray()[0]).toBeCloseTo(0.1 * mean, 12);
    expect(bn.runningVar!.toArray()[0]).toBeCloseTo(0.9 + 0.1 * (biased * 4) / 3, 12);
  });

  test('momentum null is a cumulative average over the batches seen', () => {
    const bn = new nn.BatchNorm1d(1, { momentum: null, dtype: 'float64' });
    const means = [1, 5, 9];
    for (const m of means) bn.forward(tensor([m - 1, m + 1], [2, 1], { dtype: 'float64' }));
    expect(bn.runningMean!.toArray()[0]).toBeCloseTo(5, 12);
    expect(bn.runningVar!.toArray()[0]).toBeCloseTo(2, 12);
    expect(bn.numBatchesTracked!.item()).toBe(3);
  });

  test('the counter moves only when training and tracking', () => {
    const bn = new nn.BatchNorm2d(2);
    bn.forward(x4());
    expect(bn.numBatchesTracked!.item()).toBe(1);
    bn.eval();
    bn.forward(x4());
    expect(bn.numBatchesTracked!.item()).toBe(1);
    const untracked = new nn.BatchNorm2d(2, { trackRunningStats: false });
    untracked.forward(x4());
    expect(untracked.numBatchesTracked).toBeNull();
  });

  test('eval uses the running statistics', () => {
    const bn = new nn.BatchNorm2d(2, { dtype: 'float64' });
    bn.runningMean!.copy_(tensor([1, -1], [2]));
    bn.runningVar!.copy_(tensor([4, 9], [2]));
    bn.eval();
    const y = bn.forward(tensor([1, 2, 3, 4, 10, 20, 30, 40], [2, 2, 2, 1], { dtype: 'float64' })).toArray();
    expect(y[0]).toBeCloseTo(0, 6);
    expect(y[1]).toBeCloseTo(1 / Math.sqrt(4 + 1e-5), 12);
    expect(y[2]).toBeCloseTo(4 / Math.sqrt(9 + 1e-5), 12);
  });

  test('trackRunningStats false: no buffers, batch statistics in eval too', () => {
    const bn = new nn.BatchNorm2d(2, { trackRunningStats: false });
    expect(bn.runningMean).toBeNull();
    expect(bn.runningVar).toBeNull();
    const train = bn.forward(x4()).toArray();
    bn.eval();
    expect(bn.forward(x4()).toArray()).toEqual(train);
    expect(Object.keys(bn.stateDict())).toEqual(['weight', 'bias']);
  });

  test('affine false: no weight and bias', () => {
    const bn = new nn.BatchNorm2d(2, { affine: false });
    expect(bn.weight).toBeNull();
    expect(bn.bias).toBeNull();
    expect(bn.parameters()).toHaveLength(0);
    expect(Object.keys(bn.stateDict())).toEqual(['running_mean', 'running_var', 'num_batches_tracked']);
  });

  test('grads accumulate across backward calls until zeroGrad', () => {
    const bn = new nn.BatchNorm1d(3);
    const x = randn([6, 3]);
    const dy = randn([6, 3]);
    bn.forward(x);
    bn.backward(dy);
    const once = bn.weight!.grad!.toArray();
    const onceBias = bn.bias!.grad!.toArray();
    bn.forward(x);
    bn.backward(dy);
    const twice = bn.weight!.grad!.toArray();
    for (let c = 0; c < 3; c++) expect(twice[c]).toBeCloseTo(2 * once[c], 5);
    expect(bn.bias!.grad!.toArray()[0]).toBeCloseTo(2 * onceBias[0], 5);
    bn.zeroGrad();
    expect(bn.weight!.grad).toBeNull();
    bn.forward(x);
    bn.backward(dy);
    bn.zeroGrad(false);
    expect(Array.from(bn.weight!.grad!.toArray())).toEqual([0, 0, 0]);
  });

  test('eval-mode backward treats the running stats as constants', () => {
    const bn = new nn.BatchNorm1d(2, { dtype: 'float64' });
    bn.runningVar!.copy_(tensor([4, 16], [2]));
    bn.weight!.copy_(tensor([2, 3], [2]));
    bn.eval();
    bn.forward(randn([5, 2], { dtype: 'float64' }));
    const dx = bn.backward(ones([5, 2], { dtype: 'float64' })).toArray();
    expect(dx[0]).toBeCloseTo(2 / Math.sqrt(4 + 1e-5), 12);
    expect(dx[1]).toBeCloseTo(3 / Math.sqrt(16 + 1e-5), 12);
  });

  test('lazy modules take numFeatures from the first input and print as their plain class', () => {
    const bn = new nn.LazyBatchNorm2d({ momentum: 0.2 });
    expect(bn.hasUninitializedParams()).toBe(true);
    expect(bn.numFeatures).toBe(0);
    expect(String(bn)).toBe('LazyBatchNorm2d(0, eps=1e-05, momentum=0.2, affine=True, track_running_stats=True)');
    bn.forward(randn([4, 5, 2, 2]));
    expect(bn.hasUninitializedParams()).toBe(false);
    expect(bn.numFeatures).toBe(5);
    expect(bn.weight!.shape).toEqual([5]);
    expect(bn.runningMean!.shape).toEqual([5]);
    expect(bn.numBatchesTracked!.item()).toBe(1);
    expect(String(bn)).toBe('BatchNorm2d(5, eps=1e-05, momentum=0.2, affine=True, track_running_stats=True)');
    expect(bn).toBeInstanceOf(nn.BatchNorm2d);
    expect(() => bn.forward(randn([4, 6, 2, 2]))).toThrow('running_mean should contain 6 elements not 5');
    for (const [Lazy, shape] of [[nn.LazyBatchNorm1d, [3, 7]], [nn.LazyBatchNorm3d, [2, 4, 2, 2, 2]]] as const) {
      const m = new Lazy();
      m.forward(randn([...shape]));
      expect(m.numFeatures).toBe(shape[1]);
    }
  });

  test('a lazy module materializes from a state dict', () => {
    const src = new nn.BatchNorm1d(4);
    src.forward(randn([8, 4]));
    const lazy = new nn.LazyBatchNorm1d();
    lazy.loadStateDict(src.stateDict());
    expect(lazy.numFeatures).toBe(4);
    expect(lazy.runningMean!.toArray()).toEqual(src.runningMean!.toArray());
    expect(lazy.numBatchesTracked!.item()).toBe(1);
  });

  test('toString matches PyTorch', () => {
    expect(String(new nn.BatchNorm2d(64))).toBe('BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)');
    expect(String(new nn.BatchNorm1d(3, { eps: 1e-3, momentum: null, affine: false }))).toBe(
      'BatchNorm1d(3, eps=0.001, momentum=None, affine=False, track_running_stats=True)');
    expect(String(new nn.BatchNorm3d(3, { eps: 1e-7, momentum: 1 }))).toBe(
      'BatchNorm3d(3, eps=1e-07, momentum=1.0, affine=True, track_running_stats=True)');
  });

  test('resetRunningStats and resetParameters restore the initial values', () => {
    const bn = new nn.BatchNorm1d(2);
    bn.forward(randn([4, 2]));
    bn.weight!.fill_(3);
    bn.resetRunningStats();
    expect(Array.from(bn.runningVar!.toArray())).toEqual([1, 1]);
    expect(bn.numBatchesTracked!.item()).toBe(0);
    expect(bn.weight!.toArray()[0]).toBe(3);
    bn.resetParameters();
    expect(bn.weight!.toArray()[0]).toBe(1);
  });

  test('an empty batch normalizes to an empty output and leaves the running stats alone', () => {
    const bn = new nn.BatchNorm2d(3);
    const y = bn.forward(zeros([0, 3, 2, 2]));
    expect(y.shape).toEqual([0, 3, 2, 2]);
    expect(Array.from(bn.runningMean!.toArray())).toEqual([0, 0, 0]);
    expect(Array.from(bn.runningVar!.toArray())).toEqual([1, 1, 1]);
    const dx = bn.backward(zeros([0, 3, 2, 2]));
    expect(dx.numel()).toBe(0);
  });

  test('float64 layers compute in float64', () => {
    const bn = new nn.BatchNorm1d(2, { dtype: 'float64' });
    const y: Tensor = bn.forward(randn([4, 2], { dtype: 'float64' }));
    expect(y.dtype).toBe('float64');
    expect(bn.runningMean!.dtype).toBe('float64');
  });
});
