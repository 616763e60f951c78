// The CUDA build on machines with or without a GPU.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cuda, tensor, nn, randn } from '../lib';
import { native } from '../lib/native';

const nvccHere = spawnSync('nvcc', ['--version']).status === 0 && process.env.SYNCBN_CUDA !== 'OFF';

// The addon file node-gyp-build loads, read for what it actually holds.
const addonFile = require('node-gyp-build').resolve(path.resolve(__dirname, '..')) as string;
// One binding per op for both devices (native.ops); DeviceBuffer, which the
// ops take on CUDA, exists only in a CUDA build.
const OPS = ['forwardTraining', 'forwardInference', 'backward', 'stats', 'welfordStats', 'elemt', 'backwardReduce', 'backwardElemt',
  'moments', 'gatherStatsWithCounts', 'welfordFinalize', 'blendStats', 'welfordGather', 'accumulate'] as const;

describe('CUDA build', () => {
  test('cuda.compiled says whether the loaded addon holds CUDA device code and DeviceBuffer; the ops are there either way', () => {
    // Independent of the flag: the binary's fatbinary section and the exported entry points.
    const hasFatbin = fs.readFileSync(addonFile).includes('.nv_fatbin');
    expect({ compiled: cuda.compiled, fatbin: hasFatbin }).toEqual({ compiled: hasFatbin, fatbin: hasFatbin });
    expect(typeof native.cuda.DeviceBuffer).toBe(cuda.compiled ? 'function' : 'undefined');
    for (const op of OPS) expect([op, typeof (native.ops as unknown as Record<string, unknown>)[op]]).toEqual([op, 'function']);
    expect(native.features.cuda).toBe(hasFatbin);
  });

  // A prebuild was compiled elsewhere, and SYNCBN_CUDA=OFF builds without CUDA: nvcc here says nothing of those.
  const fromSource = addonFile.startsWith(path.resolve(__dirname, '..', 'build') + path.sep);
  if (!fromSource || !nvccHere) {
    process.stdout.write(`not checking that nvcc here means CUDA compiled in: ${!fromSource ? `the addon is a prebuild (${addonFile})` : 'no nvcc here (or SYNCBN_CUDA=OFF)'}\n`);
  }
  (fromSource && nvccHere ? test : test.skip)('an addon built here from source, with nvcc here, has the CUDA kernels compiled in', () => {
    expect(cuda.compiled).toBe(true);
  });

  const gpu = cuda.isAvailable();
  process.stdout.write(gpu ? `a GPU is present (${cuda.getDeviceName()}): testing the available-GPU answers\n` : `no usable GPU (${cuda.unavailableReason()}): testing the unavailable-GPU answers\n`);

  (gpu ? test : test.skip)('with a usable GPU: isAvailable() is true, with devices, a name and no reason', () => {
    expect(cuda.deviceCount()).toBeGreaterThan(0);
    expect(cuda.unavailableReason()).toBeNull();
    expect(cuda.getDeviceName().length).toBeGreaterThan(0);
    const t = tensor([1, 2], [2], { device: 'cuda' });
    expect(t.isCuda).toBe(true);
    expect(Array.from(t.cpu().toArray())).toEqual([1, 2]);
  });

  (gpu ? test.skip : test)('without a usable GPU: isAvailable() is false and says why; asking for cuda is a clear error', () => {
    expect(cuda.deviceCount()).toBe(0);
    const why = cuda.unavailableReason()!;
    expect(why.length).toBeGreaterThan(0);
    expect(() => tensor([1, 2], [2], { device: 'cuda' })).toThrow(`tensor: device 'cuda' was asked for, but CUDA is not available: ${why}`);
    expect(() => randn([2, 3]).to('cuda:0')).toThrow(/Tensor.to: device 'cuda:0' was asked for, but CUDA is not available/);
    expect(() => new nn.BatchNorm1d(3).to('cuda')).toThrow(/CUDA is not available/);
    expect(() => cuda.synchronize()).toThrow(/cuda.synchronize: CUDA is not available/);
  });

  // SyncBatchNorm's device ops check every argument before any device memory is touched.
  // SyncBatchNorm's device ops check every argument before any device memory
  // is touched; without a GPU no DeviceBuffer exists, so those are refused too.
  test("SyncBatchNorm's device ops (welfordGather, accumulate) name a wrong argument", () => {
    const gather = (over: Record<string, unknown>) => native.ops.welfordGather({ dtype: 'float32', summaries: {}, world: 2, channels: 3,
      eps: 1e-5, momentum: 0.1, mean: {}, invstd: {}, runningMean: null, runningVar: null, totalCount: {}, ...over } as never);
    expect(() => gather({})).toThrow(/ops.welfordGather: 'summaries' must be a Float64Array or a DeviceBuffer, got an object/);
    expect(() => gather({ dtype: 'int8' })).toThrow(/ops.welfordGather: 'dtype' must be 'float32', 'float64', 'float16' or 'bfloat16'/);
    expect(() => gather({ summaries: new Float64Array(18) })).toThrow(/'world' must be an integer >= 1|has no CPU kernel/);
    expect(() => gather({ summaries: new Float64Array(18), world: 0 })).toThrow(/'world' must be an integer >= 1/);
    expect(() => gather({ summaries: new Float64Array(18), world: 2 ** 21 })).toThrow(/'world' must be at most 1048576 ranks/);
    expect(() => gather({ summaries: new Float64Array(18), channels: 0 })).toThrow(/'channels' must be an integer >= 1/);
    expect(() => gather({ summaries: new Float64Array(18) })).toThrow(/ops.welfordGather: has no CPU kernel: its arrays must be DeviceBuffers/);
    const acc = (over: Record<string, unknown>) => native.ops.accumulate({ dtype: 'float64', source: {}, destination: new Float64Array(3),
      count: 3, ...over } as never);
    expect(() => acc({ count: -1 })).toThrow(/ops.accumulate: 'count' must be an integer >= 0/);
    expect(() => acc({})).toThrow(/ops.accumulate: has no CPU kernel/);
    expect(() => acc({ destination: {} })).toThrow(/'destination' must be a Float64Array or a DeviceBuffer, got an object/);
  });

  test('CPU layers and tensors report the cpu device', () => {
    const x = randn([4, 3]);
    expect(x.device).toBe('cpu');
    expect(x.isCuda).toBe(false);
    expect(x.cpu()).toBe(x);
  });

  test('float16 and bfloat16 round-trip on the host, and batch norm runs on them there (mixed precision)', () => {
    const h = tensor([1, 0.5, -2, 65504, 1e-8], [5], { dtype: 'float16' });
    expect(Array.from(h.toArray())).toEqual([1, 0.5, -2, 65504, 0]);
    expect(h.data).toBeInstanceOf(Uint16Array);
    const b = tensor([1, 3.140625, -1e30], [3], { dtype: 'bfloat16' });
    expect(Array.from(b.toArray())[1]).toBeCloseTo(3.140625, 6);
    expect(b.toArray()[2]).toBeCloseTo(-1e30, -27);
    const y = new nn.BatchNorm1d(1).forward(tensor([1, 2, 3, 4], [4, 1], { dtype: 'float16' }));
    expect(y.dtype).toBe('float16');
    expect(Array.from(y.toArray())).toEqual(Array.from(tensor([-1.3416, -0.4472, 0.4472, 1.3416], [4], { dtype: 'float16' }).toArray()));
  });
});
