// Module registries, state dicts and Sequential.
import { nn, F, randn, tensor, zeros, ones, manualSeed, Tensor } from '../lib';
import { assertClose } from './support/assert_close';

describe('Module and state dicts', () => {
  beforeEach(() => manualSeed(99));

  test('state dict keys use PyTorch spelling and share storage with the module', () => {
    const bn = new nn.BatchNorm2d(4);
    const sd = bn.stateDict();
    expect(Object.keys(sd)).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(sd.weight).toBe(bn.weight);
    expect(sd.num_batches_tracked.dtype).toBe('int64');
  });

  test('loadStateDict copies values in place, converting dtype', () => {
    const src = new nn.BatchNorm1d(3, { dtype: 'float64' });
    src.forward(randn([5, 3], { dtype: 'float64' }));
    src.weight!.fill_(2);
    const dst = new nn.BatchNorm1d(3);
    const weightRef = dst.weight;
    const r = dst.loadStateDict(src.stateDict());
    expect(r).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(dst.weight).toBe(weightRef);
    expect(Array.from(dst.weight!.toArray())).toEqual([2, 2, 2]);
    expect(dst.numBatchesTracked!.item()).toBe(1);
    expect(dst.runningMean!.toArray()[0]).toBeCloseTo(src.runningMean!.toArray()[0], 6);
  });

  test('strict loading names missing and unexpected keys, in PyTorch wording, and changes nothing', () => {
    const bn = new nn.BatchNorm2d(8);
    const before = bn.weight!.toArray();
    expect(() => bn.loadStateDict({ weight: ones([8]).fill_(5), foo: ones([1]) })).toThrow(
      'Error(s) in loading state_dict for BatchNorm2d:\n' +
        '\tMissing key(s) in state_dict: "bias", "running_mean", "running_var". \n' +
        '\tUnexpected key(s) in state_dict: "foo". ');
    expect(bn.weight!.toArray()).toEqual(before);
    const r = bn.loadStateDict({ weight: ones([8]).fill_(5), foo: ones([1]) }, { strict: false });
    expect(r.missingKeys).toEqual(['bias', 'running_mean', 'running_var']);
    expect(r.unexpectedKeys).toEqual(['foo']);
    expect(bn.weight!.toArray()[0]).toBe(5);
  });

  test('a shape mismatch is an error even when not strict', () => {
    const bn = new nn.BatchNorm2d(8);
    const sd = { ...bn.stateDict(), weight: ones([3]) };
    expect(() => bn.loadStateDict(sd, { strict: false })).toThrow(
      'size mismatch for weight: copying a param with shape torch.Size([3]) from checkpoint, the shape in current model is torch.Size([8]).');
  });

  // PyTorch 2.x (torch/nn/modules/batchnorm.py, _NormBase._load_from_state_dict; test_batchnorm_load_state_dict):
  // a dict without _metadata and without the counter keeps the layer's own; 1.13 reset it to 0, which with
  // momentum null made the next step overwrite the running statistics with one batch's.
  test('a checkpoint without num_batches_tracked or _metadata keeps the layer\'s own counter, strict or not', () => {
    const src = new nn.BatchNorm1d(2);
    src.forward(randn([4, 2]));
    for (const strict of [true, false]) {
      const sd: Record<string, Tensor> = { ...src.stateDict() };
      delete sd.num_batches_tracked;
      const dst = new nn.BatchNorm1d(2, { momentum: null });
      dst.numBatchesTracked!.fill_(10);
      expect(dst.loadStateDict(sd, { strict })).toEqual({ missingKeys: [], unexpectedKeys: [] });
      expect(dst.numBatchesTracked!.item()).toBe(10);
      expect(dst.runningMean!.toArray()).toEqual(src.runningMean!.toArray());
      // The next step is the 11th of the cumulative average: 1/11 of this batch.
      const x = randn([4, 2]);
      const batchMean = F.batchNormMoments(x).mean.toArray();
      dst.forward(x);
      const expected = src.runningMean!.toArray().map((m, c) => (10 / 11) * m + batchMean[c] / 11);
      assertClose(dst.runningMean!.toArray(), expected, { rtol: 1e-6, atol: 1e-7 }, 'running mean after the 11th batch');
    }
  });

  test('named parameters, buffers and modules walk the tree with dotted names', () => {
    const net = new nn.Sequential(new nn.BatchNorm1d(2), new nn.Sequential(new nn.BatchNorm1d(2, { affine: false })));
    expect(net.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias']);
    expect(net.namedBuffers().map(([n]) => n)).toEqual([
      '0.running_mean', '0.running_var', '0.num_batches_tracked',
      '1.0.running_mean', '1.0.running_var', '1.0.num_batches_tracked',
    ]);
    expect(net.namedModules().map(([n]) => n)).toEqual(['', '0', '1', '1.0']);
    expect(Object.keys(net.stateDict())).toHaveLength(8);
    expect(net.children()).toHaveLength(2);
  });

  test('train() and eval() reach every child', () => {
    const net = new nn.Sequential(new nn.BatchNorm1d(2), new nn.Sequential(new nn.BatchNorm1d(2)));
    net.eval();
    expect(net.modules().every((m) => !m.training)).toBe(true);
    net.train();
    expect(net.modules().every((m) => m.training)).toBe(true);
  });

  test('Sequential chains forward and runs backward in reverse', () => {
    const a = new nn.BatchNorm1d(3, { dtype: 'float64' });
    const b = new nn.BatchNorm1d(3, { dtype: 'float64' });
    a.weight!.fill_(2);
    b.weight!.fill_(3);
    const net = new nn.Sequential(a, b);
    const x = randn([6, 3], { dtype: 'float64' });
    const dy = randn([6, 3], { dtype: 'float64' });
    const y = net.forward(x);
    const dx = net.backward(dy);
    // The same by hand, with fresh modules in the same state.
    const a2 = new nn.BatchNorm1d(3, { dtype: 'float64' });
    const b2 = new nn.BatchNorm1d(3, { dtype: 'float64' });
    a2.weight!.fill_(2);
    b2.weight!.fill_(3);
    expect(y.toArray()).toEqual(b2.forward(a2.forward(x)).toArray());
    expect(dx.toArray()).toEqual(a2.backward(b2.backward(dy)).toArray());
    expect(net.length).toBe(2);
    expect(net.at(-1)).toBe(b);
    expect(String(net)).toBe(
      'Sequential(\n' +
        '  (0): BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n' +
        '  (1): BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n' +
        ')');
  });

  test('nested modules print with PyTorch indentation', () => {
    const net = new nn.Sequential(new nn.Sequential(new nn.BatchNorm1d(1)));
    expect(String(net)).toBe(
      'Sequential(\n  (0): Sequential(\n    (0): BatchNorm1d(1, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n  )\n)');
  });

  test('zeroGrad reaches nested parameters; registries refuse bad names', () => {
    const net = new nn.Sequential(new nn.BatchNorm1d(2));
    net.forward(randn([3, 2]));
    net.backward(randn([3, 2]));
    expect(net.parameters().every((p) => p.grad !== null)).toBe(true);
    net.zeroGrad();
    expect(net.parameters().every((p) => p.grad === null)).toBe(true);
    const bn = new nn.BatchNorm1d(2);
    expect(() => bn.registerBuffer('a.b', zeros([1]))).toThrow(/without '\.'/);
    expect(() => bn.registerParameter('p', tensor([1]) as never)).toThrow(/non-Parameter/);
  });
});
