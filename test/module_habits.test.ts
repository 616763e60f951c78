// PyTorch's module habits: fields are the registry (children, Parameters,
// buffers), convertSyncBatchnorm writes to the fields, to(dtype) / double() /
// float() / requiresGrad_(), the device option; and loadStateDict checks
// every entry before copying any (issue #18's items).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { nn, ones, randn, tensor, zeros, manualSeed, Parameter, Tensor, cuda } from '../lib';
import { getMetadata } from '../lib/state_dict_metadata';

class Block extends nn.Module {
  bn: nn.BatchNorm2d;
  inner: nn.Sequential;
  scale: Parameter;
  constructor(c: number) {
    super();
    this.bn = new nn.BatchNorm2d(c);
    this.inner = new nn.Sequential(new nn.BatchNorm2d(c, { affine: false }));
    this.scale = new Parameter(ones([1]));
  }
  forward(x: Tensor): Tensor {
    return this.inner.forward(this.bn.forward(x));
  }
}

describe('fields are the registry, as PyTorch\'s __setattr__', () => {
  beforeEach(() => manualSeed(5));

  test('children and Parameters assigned to fields register, in field order', () => {
    const b = new Block(3);
    expect(b.namedChildren().map(([n]) => n)).toEqual(['bn', 'inner']);
    expect(b.namedParameters().map(([n]) => n)).toEqual(['scale', 'bn.weight', 'bn.bias']);
    expect(Object.keys(b.stateDict())).toEqual([
      'scale', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked',
      'inner.0.running_mean', 'inner.0.running_var', 'inner.0.num_batches_tracked',
    ]);
    expect(getMetadata(b.stateDict())).toEqual({ '': { version: 1 }, bn: { version: 2 }, inner: { version: 1 }, 'inner.0': { version: 2 } });
    b.eval();
    expect(b.bn.training).toBe(false);
  });

  test('replacing the field replaces the registry entry, and registerModule replaces the field', () => {
    const b = new Block(3);
    const other = new nn.BatchNorm2d(3, { affine: false });
    b.bn = other;
    expect(b.namedChildren()[0]).toEqual(['bn', other]);
    expect(Object.keys(b.stateDict())).not.toContain('bn.weight');
    const third = new nn.BatchNorm2d(3);
    b.registerModule('bn', third);
    expect(b.bn).toBe(third);
    expect(b.namedChildren().map(([n]) => n)).toEqual(['bn', 'inner']);
    const seq = new nn.Sequential(new nn.BatchNorm1d(2));
    expect((seq as unknown as Record<string, nn.Module>)['0']).toBe(seq.at(0));
  });

  test('bn.weight = new Parameter(...) replaces the weight the layer uses and saves', () => {
    const bn = new nn.BatchNorm1d(2);
    const w = new Parameter(tensor([2, 3]));
    bn.weight = w;
    expect(bn.stateDict().weight).toBe(w);
    expect(bn.parameters()[0]).toBe(w);
    const x = tensor([[0, 0], [2, 4]]);
    expect(Array.from(bn.forward(x).toArray()).map((v) => Math.round(v * 1e3) / 1e3)).toEqual([-2, -3, 2, 3]);
    bn.weight = null;
    expect(Object.keys(bn.stateDict())).toEqual(['bias', 'running_mean', 'running_var', 'num_batches_tracked']);
  });

  test('a plain Tensor where a Parameter belongs is an error naming the field', () => {
    const bn = new nn.BatchNorm1d(2);
    (bn as unknown as { weight: Tensor }).weight = ones([2]);
    expect(() => bn.stateDict()).toThrow(/BatchNorm1d\.weight: cannot assign a Tensor as parameter 'weight'.*new Parameter/);
  });

  test('an ES module assigns bn.weight too (strict mode, no setter-less getter)', () => {
    const dist = path.join(__dirname, '..', 'dist', 'index.js');
    const code = `import syncbn from ${JSON.stringify(dist)};
      const { nn, Parameter, ones } = syncbn;
      const bn = new nn.BatchNorm2d(4);
      const w = new Parameter(ones([4]).fill_(7));
      bn.weight = w;
      bn.runningMean = ones([4]);
      if (bn.stateDict().weight !== w || bn.parameters()[0] !== w) throw new Error('not registered');
      if (bn.stateDict().running_mean.toArray()[0] !== 1) throw new Error('buffer not replaced');
      console.log('ok');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
  });

  test('convertSyncBatchnorm: the fields forward calls hold the SyncBatchNorm layers', () => {
    const b = new Block(3);
    const weight = b.bn.weight;
    const converted = nn.SyncBatchNorm.convertSyncBatchnorm(b);
    expect(converted).toBe(b);
    expect(b.bn).toBeInstanceOf(nn.SyncBatchNorm);
    expect(b.inner.at(0)).toBeInstanceOf(nn.SyncBatchNorm);
    expect(b.bn.weight).toBe(weight);
    expect(b.namedChildren()[0][1]).toBe(b.bn);
    const root: nn.SyncBatchNorm = nn.SyncBatchNorm.convertSyncBatchnorm(new nn.BatchNorm1d(2));
    expect(root).toBeInstanceOf(nn.SyncBatchNorm);
  });
});

describe('to(dtype), double(), float(), requiresGrad_(), device', () => {
  test('double() converts parameters, grads and running stats in place; the counter stays int64', () => {
    const bn = new nn.BatchNorm1d(3);
    const x = randn([4, 3]);
    bn.forward(x);
    bn.backward(ones([4, 3]));
    const w = bn.weight!;
    const rm = bn.runningMean!.toArray();
    expect(bn.double()).toBe(bn);
    expect(bn.weight).toBe(w);
    expect([w.dtype, w.grad!.dtype, bn.runningMean!.dtype, bn.numBatchesTracked!.dtype, bn.dtype]).toEqual(['float64', 'float64', 'float64', 'int64', 'float64']);
    expect(Array.from(bn.runningMean!.toArray())).toEqual(Array.from(rm));
    expect(bn.forward(randn([4, 3], { dtype: 'float64' })).dtype).toBe('float64');
    expect(() => bn.forward(x)).toThrow(/expected input of dtype float64/);
    bn.float();
    expect([w.dtype, bn.dtype]).toEqual(['float32', 'float32']);
    expect(bn.to({ dtype: 'float64' }).runningVar!.dtype).toBe('float64');
    expect(() => bn.to('int64' as never)).toThrow(/dtype must be 'float32', 'float64', 'float16' or 'bfloat16', got int64/);
  });

  // PyTorch 2 runs a layer after .to(torch.bfloat16) on the CPU, all in bfloat16 (test/golden/half_cpu.test.ts
  // checks its numbers); half() and bfloat16() are Module.half and Module.bfloat16.
  test("to('bfloat16'), bfloat16() and half() convert in place; the layer then takes its dtype", () => {
    const bn = new nn.BatchNorm2d(3);
    const w = bn.weight!;
    bn.forward(randn([2, 3, 2, 2]));
    bn.backward(ones([2, 3, 2, 2]));
    const rm = bn.runningMean!.toArray();
    expect(bn.to('bfloat16')).toBe(bn);
    expect(bn.weight).toBe(w);
    expect([w.dtype, w.grad!.dtype, bn.runningMean!.dtype, bn.numBatchesTracked!.dtype, bn.dtype]).toEqual(['bfloat16', 'bfloat16', 'bfloat16', 'int64', 'bfloat16']);
    expect(Array.from(bn.runningMean!.toArray())).toEqual(Array.from(tensor(rm, [3], { dtype: 'bfloat16' }).toArray()));
    const y = bn.forward(randn([2, 3, 2, 2], { dtype: 'bfloat16' }));
    expect(y.dtype).toBe('bfloat16');
    expect(bn.half().dtype).toBe('float16');
    expect(bn.forward(randn([2, 3, 2, 2], { dtype: 'float16' })).dtype).toBe('float16');
    expect(bn.bfloat16().runningVar!.dtype).toBe('bfloat16');
    expect(new nn.BatchNorm1d(2, { dtype: 'float16' }).weight!.dtype).toBe('float16');
  });

  test('requiresGrad_(false) freezes every parameter: backward leaves no grads', () => {
    const net = new nn.Sequential(new nn.BatchNorm1d(2), new nn.BatchNorm1d(2));
    expect(net.requiresGrad_(false)).toBe(net);
    expect(net.parameters().every((p) => !p.requiresGrad)).toBe(true);
    net.forward(randn([4, 2]));
    net.backward(ones([4, 2]));
    expect(net.parameters().every((p) => p.grad === null)).toBe(true);
    net.requiresGrad_();
    expect(net.parameters().every((p) => p.requiresGrad)).toBe(true);
  });

  test("the device option is honoured or refused, never ignored", () => {
    expect(new nn.BatchNorm1d(3, { device: 'cpu' }).weight!.device).toBe('cpu');
    expect(() => new nn.BatchNorm1d(3, { device: 'tpu' as never })).toThrow(/unsupported device tpu/);
    if (cuda.isAvailable()) {
      const bn = new nn.BatchNorm1d(3, { device: 'cuda' });
      expect([bn.weight!.device, bn.runningMean!.device, bn.numBatchesTracked!.device]).toEqual(['cuda:0', 'cuda:0', 'cpu']);
    } else {
      expect(() => new nn.BatchNorm1d(3, { device: 'cuda' })).toThrow(/device 'cuda' was asked for, but CUDA is not available/);
    }
  });
});

describe('loadStateDict checks every entry before copying any (#18)', () => {
  function snapshot(m: nn.Module): Array<[string, number[]]> {
    return Object.entries(m.stateDict()).map(([k, t]) => [k, Array.from(t.toArray())]);
  }

  function withCounter(counter: Tensor): Record<string, Tensor> {
    const src = new nn.BatchNorm1d(2);
    src.weight!.fill_(9);
    return { ...src.stateDict(), num_batches_tracked: counter };
  }

  test('a NaN, fractional or out-of-range counter: an error, and nothing changed', () => {
    const cases: Array<[Tensor, RegExp]> = [
      [tensor([NaN], []), /value NaN is not an integer within ±2\^53/],
      [tensor([1.5], []), /value 1\.5 is not an integer/],
      [tensor([1e19], []), /not an integer within ±2\^53/],
      [tensor([2n ** 60n], [], { dtype: 'int64' }), /value 1152921504606846976 is not an integer within ±2\^53.*not rounded or wrapped/],
    ];
    for (const [counter, message] of cases) {
      const bn = new nn.BatchNorm1d(2);
      const before = snapshot(bn);
      expect(() => bn.loadStateDict(withCounter(counter))).toThrow(message);
      expect(snapshot(bn)).toEqual(before);
    }
    const ok = new nn.BatchNorm1d(2);
    ok.loadStateDict(withCounter(tensor([2 ** 53], [], { dtype: 'float64' })));
    expect((ok.numBatchesTracked!.data as BigInt64Array)[0]).toBe(2n ** 53n);
  });

  test('a disposed or detached source tensor: an error, and nothing changed', () => {
    const bn = new nn.BatchNorm1d(2);
    const before = snapshot(bn);
    const big = new nn.BatchNorm1d(2).forward(randn([1 << 14, 2]));
    big.dispose();
    const bad = { ...new nn.BatchNorm1d(2).stateDict(), running_mean: big };
    expect(() => bn.loadStateDict(bad)).toThrow(/running_mean/);
    const detached = zeros([2]);
    structuredClone(detached.data.buffer, { transfer: [detached.data.buffer as ArrayBuffer] });
    expect(() => bn.loadStateDict({ ...new nn.BatchNorm1d(2).stateDict(), running_var: detached })).toThrow(/running_var", its storage holds 0 elements.*detached/);
    expect(snapshot(bn)).toEqual(before);
  });

  test('a failed load leaves a lazy module lazy; a good one materializes it', () => {
    const lazy = new nn.LazyBatchNorm1d();
    const good = new nn.BatchNorm1d(4);
    good.weight!.fill_(3);
    const bad = { ...good.stateDict(), running_var: ones([5]) };
    expect(() => lazy.loadStateDict(bad)).toThrow(/size mismatch for running_var/);
    expect(lazy.hasUninitializedParams()).toBe(true);
    expect(lazy.weight!.shape).toEqual([0]);
    expect(lazy.loadStateDict(good.stateDict())).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(lazy.hasUninitializedParams()).toBe(false);
    expect(Array.from(lazy.weight!.toArray())).toEqual([3, 3, 3, 3]);
  });
});
