// Op outputs as users hold them: fresh outputs never share memory with a
// tensor that is still reachable (whether or not other outputs were
// disposed), and a disposed tensor is an error wherever it is used.
import { F, nn, Parameter, randn, tensor, Tensor } from '../lib';
import { native } from '../lib/native';
import { storageStats } from '../lib/storage';

// 8x16x32x32 float32 is 512 KiB: above the size from which outputs are
// uninitialized and recycled.
const SHAPE = [8, 16, 32, 32];

function snapshot(t: Tensor): number[] {
  return Array.from(t.toArray());
}

// Compared here, not with toEqual, whose diff of 131072 values would take minutes to print.
function sameValues(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

describe('outputs never alias a tensor the user holds', () => {
  test('y and dx from steps 1 and 2 of a training loop stay intact through later steps, disposed or not', () => {
    const bn = new nn.BatchNorm2d(16);
    const x1 = randn(SHAPE);
    const x2 = randn(SHAPE);
    const dy = randn(SHAPE);
    const y1 = bn.forward(x1);
    const dx1 = bn.backward(dy);
    const y2 = bn.forward(x2);
    const dx2 = bn.backward(dy);
    const kept = [y1, dx1, y2, dx2];
    const values = kept.map(snapshot);
    // Distinct memory, not only distinct arrays.
    const buffers = new Set(kept.map((t) => (t.data as Float32Array).buffer));
    expect(buffers.size).toBe(4);
    for (let step = 0; step < 6; step++) {
      const y = bn.forward(step % 2 ? x1 : x2);
      const dx = bn.backward(dy);
      // Compared as booleans: a failing toBe would print two 512 KiB buffers.
      expect(kept.some((t) => (t.data as Float32Array).buffer === (y.data as Float32Array).buffer)).toBe(false);
      // Half the steps hand their outputs back: the free list must never give out a held array.
      if (step % 2) {
        y.dispose();
        dx.dispose();
      }
    }
    expect(kept.map((t, i) => sameValues(snapshot(t), values[i]))).toEqual([true, true, true, true]);
    // The two steps saw different inputs, so equal values would mean shared memory.
    expect(sameValues(values[0], values[2])).toBe(false);
  });

  test('inference outputs held across calls stay intact', () => {
    const bn = new nn.BatchNorm2d(16);
    bn.eval();
    const x = randn(SHAPE);
    const first = bn.forward(x);
    const expected = snapshot(first);
    const second = bn.forward(randn(SHAPE));
    const third = bn.forward(randn(SHAPE));
    third.dispose();
    const fourth = bn.forward(randn(SHAPE));
    expect(sameValues(snapshot(first), expected)).toBe(true);
    expect(new Set([first, second, fourth].map((t) => (t.data as Float32Array).buffer)).size).toBe(3);
  });

  test('outputs that were never disposed are new, uninitialized allocations (no free-list hit)', () => {
    const x = randn(SHAPE);
    const before = storageStats();
    const outputs = [0, 1, 2].map(() => F.batchNorm(x, null, null, { training: true }));
    const after = storageStats();
    expect(after.misses - before.misses).toBe(3);
    expect(after.hits).toBe(before.hits);
    expect(outputs.map((y) => sameValues(snapshot(y), snapshot(outputs[0])))).toEqual([true, true, true]);
  });
});

describe('small outputs are slices of shared slabs', () => {
  test('per-channel outputs and clones never overlap one another, whatever their dtype, and stay intact', () => {
    // 300 calls of 2 + 2 arrays of 64 values (256 or 512 bytes) cross several 64 KiB slabs.
    const held: { t: Tensor; values: number[] }[] = [];
    for (let i = 0; i < 300; i++) {
      const dtype = i % 3 === 0 ? 'float64' : 'float32';
      const { mean, invstd } = F.batchNormStats(randn([4, 64, 3], { dtype }), 1e-5);
      const copy = mean.clone();
      for (const t of [mean, invstd, copy]) held.push({ t, values: snapshot(t) });
      copy.fill_(i);
    }
    const ranges = new Map<ArrayBufferLike, [number, number][]>();
    for (const { t } of held) {
      const a = t.data as Float32Array | Float64Array;
      expect(a.byteOffset % 8).toBe(0);
      const list = ranges.get(a.buffer) ?? [];
      list.push([a.byteOffset, a.byteOffset + a.byteLength]);
      ranges.set(a.buffer, list);
    }
    expect(ranges.size).toBeGreaterThan(1);
    for (const list of ranges.values()) {
      list.sort((p, q) => p[0] - q[0]);
      for (let i = 1; i < list.length; i++) expect(list[i][0]).toBeGreaterThanOrEqual(list[i - 1][1]);
    }
    // Every mean and invstd as first read; every clone holds what fill_ wrote into it alone.
    const intact = held.map(({ t, values }, k) => (k % 3 === 2 ? snapshot(t).every((v) => v === Math.floor(k / 3)) : sameValues(snapshot(t), values)));
    expect(intact.every(Boolean)).toBe(true);
  });
});

describe('a disposed tensor is an error wherever it is used', () => {
  function disposedOutput(): Tensor {
    const y = F.batchNorm(randn(SHAPE), null, null, { training: true });
    y.dispose();
    expect(y.disposed).toBe(true);
    return y;
  }
  const named = 'the tensor (shape [8, 16, 32, 32], float32) was disposed';

  test('reading it', () => {
    const y = disposedOutput();
    expect(() => y.data).toThrow(`Tensor.data: ${named}`);
    expect(() => y.toArray()).toThrow(`Tensor.toArray: ${named}`);
    expect(() => y.clone()).toThrow(`Tensor.clone: ${named}`);
    expect(() => y.contiguous('channelsLast')).toThrow(`Tensor.contiguous: ${named}`);
    expect(() => y.to('cpu')).toThrow(`Tensor.to: ${named}`);
    expect(() => new Parameter(y)).toThrow(`Tensor.data: ${named}`);
    expect(y.toString()).toBe('tensor(<disposed>, shape=[8, 16, 32, 32], dtype=float32)');
  });

  test('copying from it or into it', () => {
    const y = disposedOutput();
    const other = randn(SHAPE);
    expect(() => other.copy_(y)).toThrow('copy_: the source tensor (shape [8, 16, 32, 32], float32) was disposed');
    expect(() => y.copy_(other)).toThrow('copy_: the destination tensor (shape [8, 16, 32, 32], float32) was disposed');
    expect(() => y.fill_(1)).toThrow(`Tensor.fill_: ${named}`);
  });

  test('passing it to an op or a module', () => {
    const y = disposedOutput();
    expect(() => new nn.BatchNorm2d(16).forward(y)).toThrow('batch_norm: input was disposed');
    const bn = new nn.BatchNorm2d(16);
    bn.forward(randn(SHAPE));
    expect(() => bn.backward(y)).toThrow('batch_norm_backward: gradOutput was disposed');
    const w = F.batchNormStats(randn(SHAPE), 1e-5).mean;
    expect(() => F.batchNormElemt(randn(SHAPE), null, null, w, y)).toThrow('batch_norm_elemt: invstd');
  });

  test('a tensor dispose() leaves to the garbage collector stays usable', () => {
    const t = tensor([1, 2, 3]);
    t.dispose();
    expect(t.disposed).toBe(false);
    expect(Array.from(t.toArray())).toEqual([1, 2, 3]);
  });
});

describe('keepFreedMemory at the N-API boundary', () => {
  test('checks its arguments', () => {
    expect(() => (native.keepFreedMemory as unknown as (a: unknown, b: unknown) => boolean)('32', 1)).toThrow(/keepFreedMemory/);
    expect(() => native.keepFreedMemory(-1, 0)).toThrow(/keepFreedMemory/);
    expect(() => native.keepFreedMemory(1, 2 ** 40)).toThrow('syncbn native keepFreedMemory: thresholds must be below 2 GiB');
    expect(() => (native.keepFreedMemory as unknown as () => boolean)()).toThrow('expected 2 arguments, got 0');
  });
});
