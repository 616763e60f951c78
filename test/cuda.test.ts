// The CUDA build on machines with or without a GPU.
import { spawnSync } from 'node:child_process';
import { cuda, tensor, nn, randn } from '../lib';
import { native } from '../lib/native';

const nvccHere = spawnSync('nvcc', ['--version']).status === 0 && process.env.SYNCBN_CUDA !== 'OFF';

describe('CUDA build', () => {
  test('the CUDA kernels are compiled in whenever nvcc was there at build time', () => {
    if (nvccHere) expect(cuda.compiled).toBe(true);
    expect(native.features.cuda).toBe(cuda.compiled);
    expect(typeof cuda.isAvailable()).toBe('boolean');
  });

  test('without a usable GPU: isAvailable() is false and says why; asking for cuda is a clear error', () => {
    if (cuda.isAvailable()) {
      process.stdout.write(`a GPU is present (${cuda.getDeviceName()}): the unavailable-GPU checks do not apply; see test/gpu\n`);
      return;
    }
    expect(cuda.deviceCount()).toBe(0);
    const why = cuda.unavailableReason()!;
    expect(why.length).toBeGreaterThan(0);
    expect(() => tensor([1, 2], [2], { device: 'cuda' })).toThrow(`tensor: device 'cuda' was asked for, but CUDA is not available: ${why}`);
    expect(() => randn([2, 3]).to('cuda:0')).toThrow(/Tensor.to: device 'cuda:0' was asked for, but CUDA is not available/);
    expect(() => new nn.BatchNorm1d(3).to('cuda')).toThrow(/CUDA is not available/);
    expect(() => cuda.synchronize()).toThrow(/cuda.synchronize: CUDA is not available/);
  });

  test('CPU layers and tensors report the cpu device', () => {
    const x = randn([4, 3]);
    expect(x.device).toBe('cpu');
    expect(x.isCuda).toBe(false);
    expect(x.cpu()).toBe(x);
  });

  test('float16 and bfloat16 round-trip on the host, and CPU batch norm refuses them', () => {
    const h = tensor([1, 0.5, -2, 65504, 1e-8], [5], { dtype: 'float16' });
    expect(Array.from(h.toArray())).toEqual([1, 0.5, -2, 65504, 0]);
    expect(h.data).toBeInstanceOf(Uint16Array);
    const b = tensor([1, 3.140625, -1e30], [3], { dtype: 'bfloat16' });
    expect(Array.from(b.toArray())[1]).toBeCloseTo(3.140625, 6);
    expect(b.toArray()[2]).toBeCloseTo(-1e30, -27);
    expect(() => new nn.BatchNorm1d(1).forward(tensor([1, 2, 3, 4], [4, 1], { dtype: 'float16' }))).toThrow(
      /float16 and bfloat16 are computed on CUDA only/);
  });
});
