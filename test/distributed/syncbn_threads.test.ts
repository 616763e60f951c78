// SyncBatchNorm over the threads backend: 4 worker threads of this process.
import { scenario, runThreads, expectMatchesReference, expectEmptyWorldStep, reference } from './support';
import { assertClose, TOLERANCE } from '../support/assert_close';

const F64 = { rtol: 1e-9, atol: 1e-9 };

describe('SyncBatchNorm on worker threads', () => {
  test('uneven batches and an empty rank equal BatchNorm on the concatenated batch (NCHW)', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [3, 0, 5, 2], tail: [2, 3], channels: 3, dtype: 'float64', momentum: 0.1, train: 3, evalSteps: 1, seed: 1 });
    expectMatchesReference(cfg, await runThreads(cfg), F64);
  });

  test('every rank with an empty batch (PyTorch 2\'s test_sync_batch_norm_only_empty_input): empty outputs, zero grads, running stats as 2.x leaves them', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 3, 1, 2], tail: [3], channels: 3, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 0, seed: 15, emptyStep: 1 });
    const results = await runThreads(cfg);
    expectMatchesReference({ ...cfg, steps: cfg.steps.slice(0, 1) }, results.map((r) => ({ ...r, steps: r.steps.slice(0, 1) })), F64);
    expectEmptyWorldStep(cfg, results, 1);
  });

  test('channels-last input, momentum null (cumulative)', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 4, 1, 3], tail: [3, 2], channels: 4, dtype: 'float64', memoryFormat: 'channelsLast', momentum: null, train: 3, evalSteps: 1, seed: 2 });
    expectMatchesReference(cfg, await runThreads(cfg), F64);
  });

  test('the eps and momentum users set: eps 1e-3, momentum 0.3, 7 channels', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 1, 3, 2], tail: [3], channels: 7, dtype: 'float64', eps: 1e-3, momentum: 0.3, train: 3, evalSteps: 1, seed: 13 });
    expectMatchesReference(cfg, await runThreads(cfg), F64);
  });

  test('eps 0.1, momentum 1.0, float32 channels last, a batch of 2 in 1 + 1', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [1, 0, 1, 0], tail: [2, 2], channels: 5, dtype: 'float32', memoryFormat: 'channelsLast', eps: 0.1, momentum: 1.0, train: 2, evalSteps: 1, seed: 14 });
    expectMatchesReference(cfg, await runThreads(cfg), { rtol: 1e-5, atol: 1e-5 });
  });

  test('stays exact when the mean is 1e4 times the spread', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [5, 3, 6, 2], tail: [], channels: 6, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 0, offset: 1e4, spread: 1, seed: 3 });
    const results = await runThreads(cfg);
    expectMatchesReference(cfg, results, { rtol: 1e-8, atol: 1e-8 });
    // And against statistics computed here, per channel, in two passes.
    const { x } = cfg.steps[0];
    const C = cfg.channels;
    const N = cfg.shape[0];
    const expected: number[] = [];
    for (let c = 0; c < C; c++) {
      let m = 0;
      for (let i = 0; i < N; i++) m += x[i * C + c] / N;
      let v = 0;
      for (let i = 0; i < N; i++) v += (x[i * C + c] - m) ** 2 / N;
      for (let i = 0; i < cfg.sizes[0]; i++) expected[i * C + c] = ((x[i * C + c] - m) / Math.sqrt(v + 1e-5)) * cfg.weight![c] + cfg.bias![c];
    }
    assertClose(results[0].steps[0].y, expected, { rtol: 1e-8, atol: 1e-8 }, 'rank 0 output vs exact statistics');
  });

  test('a layer wider than the first sync chunk (600 channels) takes the second collective', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 3, 1, 2], tail: [], channels: 600, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 0, seed: 12 });
    expectMatchesReference(cfg, await runThreads(cfg), F64);
  });

  test('float32 layers', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [4, 2, 3, 3], tail: [5], channels: 3, dtype: 'float32', momentum: 0.1, train: 2, evalSteps: 1, seed: 4 });
    expectMatchesReference(cfg, await runThreads(cfg), { rtol: 1e-5, atol: 1e-5 });
  });

  // float16 and bfloat16 on the CPU (issue #32): inputs in the half type, a float32 layer (mixed precision) or
  // one of the input's dtype; the reference computes in float64 on the rounded values. PyTorch's tolerances.
  test('bfloat16 inputs, a float32 layer, channels last', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [3, 1, 4, 2], tail: [2, 3], channels: 5, dtype: 'bfloat16', layerDtype: 'float32', memoryFormat: 'channelsLast', momentum: 0.1, train: 2, evalSteps: 1, seed: 16 });
    expectMatchesReference(cfg, await runThreads(cfg), TOLERANCE.bfloat16);
  });

  test('a float16 layer (all in float16), an empty rank, momentum null', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 0, 3, 3], tail: [4], channels: 3, dtype: 'float16', momentum: null, train: 2, evalSteps: 1, seed: 17 });
    const results = await runThreads(cfg);
    for (const r of results) expect(r.error).toBeUndefined();
    expectMatchesReference(cfg, results, TOLERANCE.float16);
  });

  test('SynchronizedBatchNorm2d replicas', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 2, 2, 2], tail: [3, 3], channels: 2, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 1, seed: 5, layer: 'SynchronizedBatchNorm2d' });
    expectMatchesReference(cfg, await runThreads(cfg), F64);
  });

  test('subgroups sync only within themselves', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 3, 4, 1], tail: [2], channels: 3, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 0, seed: 6, subgroups: [[0, 1], [2, 3]] });
    const results = await runThreads(cfg);
    expect(results[0].members).toEqual([0, 1]);
    expect(results[3].members).toEqual([2, 3]);
    expectMatchesReference(cfg, results.slice(0, 2), F64, [0, 1]);
    expectMatchesReference(cfg, results.slice(2), F64, [2, 3]);
    // Not the world's statistics: the pair's output differs from a world-wide sync.
    const world = reference(cfg);
    expect(() => assertClose(results[0].steps[0].y, world[0].y.slice(0, results[0].steps[0].y.length), F64, 'world')).toThrow();
  });

  test('the value-per-channel check uses the global count', async () => {
    const ok = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [1, 1, 0, 0], tail: [], channels: 2, dtype: 'float64', momentum: 0.1, train: 1, evalSteps: 0, seed: 7 });
    expectMatchesReference(ok, await runThreads(ok), F64);
    const bad = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [1, 0, 0, 0], tail: [], channels: 2, dtype: 'float64', momentum: 0.1, train: 1, evalSteps: 0, seed: 8 });
    const results = await runThreads(bad);
    for (const r of results) expect(r.error).toMatch(/Expected more than 1 value per channel when training, got 1 value\(s\) per channel over the 4 ranks/);
  });

  test('a rank at another layer: every rank throws, naming the layers and the ranks', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 2, 2, 2], tail: [], channels: 3, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 0, seed: 9, diverge: { rank: 2, step: 1 } });
    const results = await runThreads(cfg);
    for (const r of results) {
      expect(r.steps).toHaveLength(1);
      expect(r.error).toMatch(/diverged: ranks \[0, 1, 3\] are at 'SyncBatchNorm#\d+' forward \(3 channels, sync #3\); ranks \[2\] are at 'SyncBatchNorm#\d+' forward \(3 channels, sync #3\)/);
    }
  });

  test('a rank with another channel count is caught before any payload moves', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes: [2, 2, 2, 2], tail: [2], channels: 3, dtype: 'float64', momentum: 0.1, train: 1, evalSteps: 0, seed: 10, diverge: { rank: 1, step: 0 }, otherChannels: 5 });
    const results = await runThreads(cfg);
    for (const r of results) expect(r.error).toMatch(/ranks \[1\] are at 'SyncBatchNorm#\d+' forward \(5 channels, sync #1\)/);
  });

  test('a rank that never arrives: the others fail within the timeout, naming it', async () => {
    const cfg = scenario({ backend: 'threads', timeoutMs: 1500, sizes: [2, 2, 2, 2], tail: [], channels: 3, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 0, seed: 11, absent: { rank: 3, step: 1 } });
    const start = Date.now();
    const results = await runThreads(cfg);
    expect(Date.now() - start).toBeLessThan(10000);
    for (const r of results.slice(0, 3)) expect(r.error).toMatch(/timed out after 1500 ms waiting for ranks \[3\]/);
  });
});
