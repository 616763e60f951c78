import { Tensor, Parameter, tensor, zeros, ones, full, empty, randn, rand, manualSeed, initialSeed } from '../lib';

describe('Tensor', () => {
  test('tensor() from flat data with a shape, nested arrays, TypedArrays', () => {
    const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(a.shape).toEqual([2, 3]);
    expect(a.dtype).toBe('float32');
    expect(a.device).toBe('cpu');
    expect(a.memoryFormat).toBe('contiguous');
    expect(a.numel()).toBe(6);
    expect(a.dim()).toBe(2);
    expect(Array.from(a.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    const b = tensor([[1, 2], [3, 4], [5, 6]]);
    expect(b.shape).toEqual([3, 2]);
    const c = tensor(new Float64Array([0.1, 0.2]));
    expect(c.dtype).toBe('float64');
    expect(c.toArray()[0]).toBe(0.1);
  });

  test('tensor() copies its data: later changes to the source do not leak in', () => {
    const src = new Float32Array([1, 2, 3]);
    const t = tensor(src, [3]);
    src[0] = 99;
    expect(t.toArray()[0]).toBe(1);
  });

  test('data whose length does not fit the shape is refused', () => {
    expect(() => tensor([1, 2, 3], [2, 2])).toThrow(new RangeError('tensor: data has 3 elements but shape [2, 2] needs 4'));
    expect(() => tensor([[1, 2], [3]])).toThrow(RangeError);
    expect(() => tensor([1, 2], [-2])).toThrow(RangeError);
    expect(() => tensor([1, 2], [2], { dtype: 'int8' as never })).toThrow(TypeError);
    expect(() => tensor([1, 2], [2], { device: 'tpu' as never })).toThrow(/unsupported device tpu; expected 'cpu', 'cuda' or 'cuda:N'/);
  });

  test('factories fill with the right values and dtypes', () => {
    expect(Array.from(zeros([2, 2]).toArray())).toEqual([0, 0, 0, 0]);
    expect(Array.from(ones([3], { dtype: 'float64' }).toArray())).toEqual([1, 1, 1]);
    expect(ones([3], { dtype: 'float64' }).dtype).toBe('float64');
    expect(Array.from(full([2], 2.5).toArray())).toEqual([2.5, 2.5]);
    expect(empty([4, 3]).numel()).toBe(12);
    const n = zeros([], { dtype: 'int64' });
    expect(n.shape).toEqual([]);
    expect(n.numel()).toBe(1);
    expect(n.item()).toBe(0);
    expect(n.data).toBeInstanceOf(BigInt64Array);
  });

  test('randn is seedable and roughly standard normal', () => {
    manualSeed(7);
    expect(initialSeed()).toBe(7);
    const a = randn([20000]).toArray();
    manualSeed(7);
    const b = randn([20000]).toArray();
    expect(b).toEqual(a);
    manualSeed(8);
    expect(randn([20000]).toArray()).not.toEqual(a);
    let s = 0;
    let ss = 0;
    for (const v of a) {
      s += v;
      ss += v * v;
    }
    const mean = s / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(ss / a.length - mean * mean - 1)).toBeLessThan(0.05);
    const u = rand([1000]).toArray();
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
  });

  test('channelsLast stores N,...,C and toArray() is always logical order', () => {
    const logical = Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i);
    const t = tensor(logical, [2, 3, 2, 2], { memoryFormat: 'channelsLast' });
    expect(t.memoryFormat).toBe('channelsLast');
    // element (n=0, c=1, h=0, w=0) is logical index 4; in NHWC storage it is at 1.
    expect(t.data[1]).toBe(4);
    expect(Array.from(t.toArray())).toEqual(logical);
    const back = t.contiguous();
    expect(back.memoryFormat).toBe('contiguous');
    expect(Array.from(back.data as Float32Array)).toEqual(logical);
    expect(t.contiguous('channelsLast')).toBe(t);
    expect(t.isContiguous('channelsLast')).toBe(true);
    expect(() => tensor([1, 2], [1, 2], { memoryFormat: 'channelsLast' })).toThrow(/rank >= 3/);
  });

  test('clone() copies; copy_() converts dtype and memory format in place', () => {
    const a = tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
    const c = a.clone();
    c.fill_(0);
    expect(a.toArray()[0]).toBe(1);
    const d = zeros([1, 2, 2, 2], { dtype: 'float64', memoryFormat: 'channelsLast' });
    d.copy_(a);
    expect(Array.from(d.toArray())).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(() => d.copy_(tensor([1, 2]))).toThrow(/shape/);
    const counter = zeros([], { dtype: 'int64' });
    counter.copy_(tensor([5], []));
    expect(counter.item()).toBe(5);
  });

  test('size(), item() and toString()', () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(t.size()).toEqual([2, 3]);
    expect(t.size(-1)).toBe(3);
    expect(() => t.size(2)).toThrow(RangeError);
    expect(() => t.item()).toThrow(/6 elements/);
    expect(String(t)).toBe('tensor([1, 2, 3, 4, 5, 6], shape=[2, 3], dtype=float32)');
  });

  test('Parameter shares storage with its tensor and starts without grad', () => {
    const t = ones([4]);
    const p = new Parameter(t);
    expect(p).toBeInstanceOf(Tensor);
    expect(p.grad).toBeNull();
    expect(p.requiresGrad).toBe(true);
    t.fill_(3);
    expect(p.toArray()[0]).toBe(3);
  });
});

describe('recycled outputs and dispose()', () => {
  const { F, ones: o, zeros: z } = require('../lib') as typeof import('../lib');
  const { storageStats } = require('../lib/storage') as typeof import('../lib/storage');

  test('a disposed output goes back to the free list and the next output of its size reuses it', () => {
    const x = randn([64, 16, 32, 32]);
    const w = o([16]);
    const b = z([16]);
    const y1 = F.batchNorm(x, null, null, { weight: w, bias: b, training: true });
    const storage = y1.data;
    const before = storageStats();
    y1.dispose();
    expect(y1.disposed).toBe(true);
    expect(() => y1.data).toThrow('Tensor.data: the tensor (shape [64, 16, 32, 32], float32) was disposed');
    expect(storageStats().cachedBytes).toBe(before.cachedBytes + storage.byteLength);
    const y2 = F.batchNorm(x, null, null, { weight: w, bias: b, training: true });
    expect(y2.data).toBe(storage);
    expect(storageStats().hits).toBe(before.hits + 1);
    const again = F.batchNorm(x, null, null, { weight: w, bias: b, training: true });
    expect(Array.from(y2.toArray())).toEqual(Array.from(again.toArray()));
    expect(() => F.batchNorm(y1, null, null, { training: true })).toThrow('batch_norm: input was disposed');
    y2.dispose();
    y2.dispose();
  });

  test('a recycled array goes only to an output of its own dtype and length', () => {
    const shape = [32, 8, 16, 16];
    const y32 = F.batchNorm(randn(shape), null, null, { training: true });
    const y64 = F.batchNorm(randn(shape, { dtype: 'float64' }), null, null, { training: true });
    const [a32, a64] = [y32.data, y64.data];
    y32.dispose();
    y64.dispose();
    // float64 went back last: a free list keyed by length alone hands it out first.
    const next32 = F.batchNorm(randn(shape), null, null, { training: true });
    const next64 = F.batchNorm(randn(shape, { dtype: 'float64' }), null, null, { training: true });
    expect(next64.data).toBe(a64);
    expect(next32.data).toBe(a32);
    expect(next64.data).toBeInstanceOf(Float64Array);
    const shorter = F.batchNorm(randn([32, 8, 16, 8]), null, null, { training: true });
    expect(shorter.data).not.toBe(a32);
    expect(shorter.data.length).toBe(32 * 8 * 16 * 8);
  });

  test('storage shared with a second tensor is never recycled', () => {
    const y = F.batchNorm(randn([64, 16, 32, 32]), null, null, { training: true });
    const view = new Tensor(y.data, y.shape);
    y.dispose();
    expect(y.disposed).toBe(false);
    expect(view.toArray()[0]).toBe(y.toArray()[0]);
  });

  test('dispose() leaves tensors that are not op outputs to the garbage collector', () => {
    const t = tensor([1, 2, 3]);
    t.dispose();
    expect(t.disposed).toBe(false);
    expect(Array.from(t.toArray())).toEqual([1, 2, 3]);
  });
});
