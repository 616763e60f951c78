import { nn, randn, manualSeed } from '../lib';

describe('MomentumBatchNorm', () => {
  beforeEach(() => manualSeed(3));

  test('defaults: momentum 1.0, totalIters 100, schedule at 0', () => {
    const bn = new nn.MomentumBatchNorm2d(4);
    expect(bn.momentum).toBe(1);
    expect(bn.totalIters).toBe(100);
    expect(bn.curIter).toBe(0);
    expect(String(bn)).toBe('MomentumBatchNorm2d(4, eps=1e-05, momentum=1.0, affine=True, track_running_stats=True)');
    expect(bn).toBeInstanceOf(nn.BatchNorm);
  });

  test("state dict: exactly the reference's five keys, strict both ways; the schedule is public state, resumed by hand", () => {
    const a = new nn.MomentumBatchNorm1d(3, { totalIters: 10 });
    for (let i = 0; i < 4; i++) a.forward(randn([8, 3]));
    expect(a.curIter).toBe(2);
    const sd = a.stateDict();
    expect(Object.keys(sd)).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(sd.num_batches_tracked.item()).toBe(0);
    // A plain BatchNorm1d's dict (what flame's subclass saves) loads strictly, and ours into it.
    expect(new nn.MomentumBatchNorm1d(3).loadStateDict(new nn.BatchNorm1d(3).stateDict())).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(new nn.BatchNorm1d(3).loadStateDict(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const b = new nn.MomentumBatchNorm1d(3, { totalIters: 10 });
    b.loadStateDict(sd);
    expect(b.curIter).toBe(0);
    b.curIter = 1;
    b.momentumCosineDecay();
    expect(b.curIter).toBe(2);
    expect(b.momentum).toBe(a.momentum);
    expect(b.momentum).toBeCloseTo((Math.cos(Math.PI * 0.2) + 1) / 2, 15);
    const x = randn([8, 3]);
    expect(b.forward(x).toArray()).toEqual(a.forward(x).toArray());
  });

  test("momentumCosineDecay() is flame's momentum_cosine_decay(): one step of (cos(pi * t / T) + 1) / 2", () => {
    const bn = new nn.MomentumBatchNorm2d(2, { totalIters: 4 });
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      bn.momentumCosineDecay();
      seen.push(bn.momentum);
    }
    expect(bn.curIter).toBe(4);
    expect(seen).toEqual([1, 2, 3, 4].map((t) => (Math.cos(Math.PI * (t / 4)) + 1) * 0.5));
    expect(seen[3]).toBe(0);
  });

  test('running stats move only on the second forward of a pair, in eval too', () => {
    const bn = new nn.MomentumBatchNorm1d(2);
    bn.eval();
    bn.forward(randn([6, 2]));
    expect(Array.from(bn.runningMean!.toArray())).toEqual([0, 0]);
    bn.forward(randn([6, 2]));
    expect(bn.runningMean!.toArray()[0]).not.toBe(0);
    expect(bn.curIter).toBe(1);
    expect(bn.numBatchesTracked!.item()).toBe(0);
  });

  test('input checks', () => {
    expect(() => new nn.MomentumBatchNorm2d(4).forward(randn([2, 4, 3]))).toThrow('expected 4D input (got 3D input)');
    expect(() => new nn.MomentumBatchNorm1d(4).forward(randn([1, 4]))).toThrow(/more than 1 value per channel/);
    expect(() => new nn.MomentumBatchNorm3d(4, { totalIters: 0 })).toThrow(/totalIters/);
    expect(() => new nn.MomentumBatchNorm3d(4, { momentum: null as never })).toThrow(/momentum/);
    expect(() => new nn.MomentumBatchNorm1d(4).backward(randn([2, 4]))).toThrow(/before forward/);
  });
});
