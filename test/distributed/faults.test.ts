// Faults between ranks end in a named error on every other rank, within the
// timeout, never in an abort or a hang: a rank at another pass of a layer, a
// user collective against a layer's sync, a killed rank, a stalled rank.
import * as path from 'node:path';
import { native } from '../../lib/native';
import { freePort, runNode } from './support';
import { requireOrSkip } from '../support/require';

const FAULT_WORKER = path.join(__dirname, 'workers', 'fault_worker.js');
const describeGloo = requireOrSkip('gloo', native.features.gloo, 'this build of syncbn has no Gloo');

interface Outcome {
  rank: number;
  error: string | null;
  ms: number;
}

async function runRanks(scenario: string, world: number, timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<Outcome[]> {
  const port = String(await freePort());
  env = { SYNCBN_SECRET: `faults-${port}`, ...env };
  const runs = await Promise.all(Array.from({ length: world }, (_, rank) =>
    runNode([FAULT_WORKER, scenario, String(timeoutMs)], { RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, ...env }, 60000)));
  return runs.flatMap((r) => {
    const line = r.stdout.trim().split('\n').pop() ?? '';
    return line.startsWith('{') ? [JSON.parse(line) as Outcome] : [];
  });
}

describeGloo('faults between gloo ranks', () => {
  jest.setTimeout(60000);

  test('a forward-only rank: every rank names the layer and pass of each rank', async () => {
    const out = await runRanks('forward-only', 3, 5000);
    expect(out).toHaveLength(3);
    for (const o of out) {
      expect(o.error).toContain("ranks of world diverged: ranks [0] are at 'features.bn1' forward (4 channels, sync #2); ranks [1, 2] are at 'features.bn1' backward (4 channels, sync #2)");
      expect(o.ms).toBeLessThan(1000);
    }
  });

  test('a killed rank: every other rank names it, the layer and the collective, within the timeout', async () => {
    const out = await runRanks('kill', 3, 3000);
    expect(out.map((o) => o.rank).sort()).toEqual([0, 2]);
    for (const o of out) {
      expect(o.error).toMatch(/^SyncBatchNorm 'features.bn1' forward: collective #2 \(all_reduce of 4 welford triples.*\) on rank \d: gloo all_gather .* failed: rank 1 (closed its connection \(it exited or crashed\)|is gone \(its connection closed: it exited or crashed; ranks \[0, 2\] are here\))/);
      expect(o.ms).toBeLessThan(3000);
    }
  });

  test('a stalled rank: every other rank names it, the layer and the collective, within the timeout', async () => {
    const out = await runRanks('stall', 3, 3000);
    expect(out.map((o) => o.rank).sort()).toEqual([0, 2]);
    for (const o of out) {
      expect(o.error).toMatch(/^SyncBatchNorm 'features.bn1' forward: collective #2 \(all_reduce of 4 welford triples.*\) on rank \d: gloo all_gather .* failed: rank 1 did not reach it within the timeout \(ranks \[0, 2\] did\)/);
      expect(o.ms).toBeGreaterThan(1500);
      expect(o.ms).toBeLessThan(3500);
    }
  });

  test('a user allReduce against a layer sync of the same byte size: named on every rank', async () => {
    const out = await runRanks('mixed', 2, 5000);
    expect(out).toHaveLength(2);
    for (const o of out) {
      expect(o.error).toContain("ranks [0] are at all_reduce of 12 float64 (sum) in a group of 2; ranks [1] are at 'features.bn1' forward (4 channels, sync #1)");
      expect(o.ms).toBeLessThan(1000);
    }
  });
});

describeGloo('non-finite values across ranks', () => {
  test("ranks' +Inf and NaN reach every rank's running stats as on the whole batch in PyTorch (mean +Inf / NaN, var NaN)", async () => {
    const out = (await runRanks('nonfinite', 2, 5000)) as (Outcome & { runningMean: string[]; runningVar: string[]; y0: string; y2: string })[];
    expect(out).toHaveLength(2);
    for (const o of out) {
      expect(o.error).toBeNull();
      expect(o.runningMean.slice(1, 3)).toEqual(['Infinity', 'NaN']);
      expect(o.runningVar.slice(1, 3)).toEqual(['NaN', 'NaN']);
      expect(Number.isFinite(Number(o.runningMean[0])) && Number.isFinite(Number(o.runningVar[3]))).toBe(true);
      expect(o.y2).toBe('NaN');
      expect(Number.isFinite(Number(o.y0))).toBe(true);
    }
  });
});

describeGloo('what Gloo publishes in the store', () => {
  test('each pair address is its socket address and sequence number, every other byte zero (no stack or heap bytes)', async () => {
    const out = (await runRanks('addresses', 2, 5000)) as (Outcome & { published: string[] })[];
    expect(out).toHaveLength(2);
    const BLOB = 136; // sockaddr_storage (128) + sequence number (8)
    for (const hex of out[1].published) {
      const b = Buffer.from(hex, 'hex');
      expect(b.length % BLOB).toBe(0);
      for (let off = 0; off < b.length; off += BLOB) {
        expect(b.readUInt16LE(off)).toBe(2); // AF_INET
        expect(b.subarray(off + 16, off + 128).every((v) => v === 0)).toBe(true);
      }
    }
  });
});

describeGloo('listen addresses are checked before Gloo sees them', () => {
  test('an unresolvable SYNCBN_GLOO_HOSTNAME is an error naming it, on the TypeScript side and the native side', async () => {
    const port = await freePort();
    const saved = process.env.SYNCBN_GLOO_HOSTNAME;
    process.env.SYNCBN_GLOO_HOSTNAME = 'no-such-host.invalid';
    try {
      const { distributed: dist } = await import('../../lib');
      await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 1, initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 3000 }))
        .rejects.toThrow(/initProcessGroup: cannot resolve SYNCBN_GLOO_HOSTNAME=no-such-host.invalid/);
      process.env.SYNCBN_GLOO_HOSTNAME = 'bad host!';
      await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 1, initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 3000 }))
        .rejects.toThrow(/SYNCBN_GLOO_HOSTNAME=bad host! is not a host name or IP address/);
    } finally {
      if (saved === undefined) delete process.env.SYNCBN_GLOO_HOSTNAME;
      else process.env.SYNCBN_GLOO_HOSTNAME = saved;
    }
    // The raw binding checks again (no store is needed to fail).
    await expect(native.glooConnect('127.0.0.1', port, '', 'p', 'no-such-host.invalid', '', 0, 1, 2000, '')).rejects.toThrow(/cannot resolve the address to listen on, 'no-such-host.invalid'/);
    await expect(native.glooConnect('127.0.0.1', port, '', 'p', '192.0.2.1', '', 0, 1, 2000, '')).rejects.toThrow(/'192.0.2.1' \(SYNCBN_GLOO_HOSTNAME\) is not an address of this machine/);
    await expect(native.glooConnect('127.0.0.1', port, '', 'p', '', 'nosuchif0', 0, 1, 2000, '')).rejects.toThrow(/network interface 'nosuchif0' \(GLOO_SOCKET_IFNAME\) does not exist/);
  });
});
