// The threads backend at world sizes beyond libuv's pool of 4: every rank's
// rendezvous waits on a thread of its own, never on a pool thread, so 4 x the
// cores (at least 8) ranks join with Node's default pool and train together.
import * as os from 'node:os';
import { scenario, runThreads, expectMatchesReference } from './support';

const F64 = { rtol: 1e-9, atol: 1e-9 };

describe('the threads backend beyond the libuv pool', () => {
  jest.setTimeout(60000);

  test('4 x cores ranks (at least 8, at most 32) with the default pool of 4 train as one batch', async () => {
    expect(process.env.UV_THREADPOOL_SIZE ?? '4').toBe('4');
    const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    const world = Math.min(32, Math.max(8, 4 * cores));
    const sizes = Array.from({ length: world }, (_, r) => 1 + (r % 3));
    const cfg = scenario({ backend: 'threads', timeoutMs: 20000, sizes, tail: [2], channels: 3, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 1, seed: 31 });
    const start = Date.now();
    const results = await runThreads(cfg);
    expect(Date.now() - start).toBeLessThan(20000);
    expectMatchesReference(cfg, results, F64);
  });
});
