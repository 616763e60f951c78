// Tensor collectives, the stores, the NCCL loader, and convertSyncBatchnorm.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { nn, distributed as dist, randn, tensor } from '../../lib';
import { native } from '../../lib/native';
import { requireOrSkip } from '../support/require';
import { glooUnavailableMessage } from '../../lib/distributed/availability';
import { freePort } from './support';

const WORKER = path.join(__dirname, 'workers', 'collectives_worker.js');

function runCollectives(worldSize: number): Promise<Array<Record<string, unknown>>> {
  const name = `collectives${process.pid}`;
  return Promise.all(Array.from({ length: worldSize }, (_, rank) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const w = new Worker(WORKER, { workerData: { rank, worldSize, name } });
    w.once('message', resolve);
    w.once('error', reject);
  })));
}

describe('collectives on the threads backend', () => {
  let results: Array<Record<string, unknown>>;
  beforeAll(async () => {
    results = await runCollectives(4);
  });

  test('every rank knows its rank, the world size and the backend', () => {
    results.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      expect(r.rank).toBe(i);
      expect(r.worldSize).toBe(4);
      expect(r.backend).toBe('threads');
    });
  });

  test('each worker thread takes its share of the cores for its kernels', () => {
    for (const r of results) expect(r.threadsAfter).toBe(Math.max(1, Math.floor((r.threadsBefore as number) / 4)));
  });

  test('allReduce sum, avg, min, max (float64) and sum (int64)', () => {
    for (const r of results) {
      expect(r.sum).toEqual([10, 100]);
      expect(r.avg).toEqual([2.5, 25]);
      expect(r.min).toEqual([1, 10]);
      expect(r.max).toEqual([4, 40]);
      expect(r.int64).toBe(6);
    }
  });

  test('allGather, broadcast', () => {
    for (const r of results) {
      expect(r.gathered).toEqual([[0, -0], [1, -1], [2, -2], [3, -3]]);
      expect(r.broadcast).toEqual([2, 2]);
      expect(r.badSrc).toMatch(/src 7 is not a rank of world/);
    }
  });

  test('allReduceGradients averages every parameter gradient', () => {
    const grads = results.map((r) => r.grads as number[][]);
    for (const g of grads) expect(g).toEqual(grads[0]);
    const local = results.map((r) => (r.localGrad as number[])[0]);
    // grad bias of channel 0 is sum(dy) = rank on each rank before averaging.
    expect(local).toEqual([1.5, 1.5, 1.5, 1.5]);
  });

  test('subgroups: members reduce among themselves, non-members are refused', () => {
    expect(results.map((r) => r.oddRank)).toEqual([-1, 0, -1, 1]);
    expect(results[1].oddSum).toBe(4);
    expect(results[3].oddSum).toBe(4);
    expect(results[0].nonMember).toMatch(/rank 0 is not a member of group 1 \(ranks \[1, 3\]\)/);
  });

  test('destroyProcessGroup ends the default group', () => {
    for (const r of results) expect(r.initializedAfter).toBe(false);
  });
});

describe('initProcessGroup argument checks', () => {
  test('bad options are refused before any rendezvous', async () => {
    await expect(dist.initProcessGroup({ backend: 'mpi' as never })).rejects.toThrow(/backend must be 'gloo', 'nccl' or 'threads'/);
    await expect(dist.initProcessGroup({ backend: 'gloo', rank: 2, worldSize: 2, initMethod: 'tcp://127.0.0.1:1' })).rejects.toThrow(/rank 2 is outside the world of size 2/);
    await expect(dist.initProcessGroup({ backend: 'threads', rank: 0, worldSize: 1, initMethod: 'env://' })).rejects.toThrow(/local:\/\/name/);
    expect(dist.isInitialized()).toBe(false);
    expect(() => dist.getRank()).toThrow(/not initialized/);
  });

  test('isGlooAvailable says what the binary holds; without Gloo the error names the file and fixes that work in a project', async () => {
    expect(dist.isGlooAvailable()).toBe(native.features.gloo);
    const message = glooUnavailableMessage('initProcessGroup');
    expect(message).toContain(`${native.features.file} was built without Gloo`);
    expect(message).toMatch(/backend 'threads'/);
    expect(message).toMatch(/`npm rebuild syncbn` with cmake/);
    expect(message).not.toMatch(/build:addon/);
    if (!native.features.gloo) {
      await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 1, initMethod: 'tcp://127.0.0.1:1' })).rejects.toThrow(message);
    }
  });
});

requireOrSkip('gloo', native.features.gloo, `${native.features.file} was built without Gloo`)('initProcessGroup over gloo', () => {
  test('an unknown init method is refused before any rendezvous', async () => {
    await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 1, initMethod: 'udp://x' })).rejects.toThrow(/unsupported initMethod 'udp:\/\/x'/);
    expect(dist.isInitialized()).toBe(false);
  });

  test('a world of one over gloo (tcp://) reduces to itself', async () => {
    const port = await freePort();
    const world = await dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 1, initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 5000 });
    expect(world.size).toBe(1);
    const t = tensor([1, 2]);
    dist.allReduce(t);
    expect(Array.from(t.toArray())).toEqual([1, 2]);
    await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 1 })).rejects.toThrow(/already initialized/);
    await dist.destroyProcessGroup();
  });

  test('rendezvous names the ranks that never joined', async () => {
    const port = await freePort();
    await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 3, initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 500 })).rejects.toThrow(
      /rendezvous timed out after 500 ms: ranks \[1, 2\] of 3 never reached 'join'/);
    expect(dist.isInitialized()).toBe(false);
  });
});

describe('nccl backend', () => {
  const saved = process.env.SYNCBN_NCCL_LIBRARY;
  afterEach(() => {
    if (saved === undefined) delete process.env.SYNCBN_NCCL_LIBRARY;
    else process.env.SYNCBN_NCCL_LIBRARY = saved;
  });

  test('a missing libnccl is a clear error', async () => {
    process.env.SYNCBN_NCCL_LIBRARY = '/nonexistent/libnccl.so.2';
    await expect(dist.initProcessGroup({ backend: 'nccl', rank: 0, worldSize: 1 })).rejects.toThrow(
      /the nccl backend needs NCCL, but \/nonexistent\/libnccl.so.2 could not be loaded .*set SYNCBN_NCCL_LIBRARY/);
  });

  test('the NCCL glue checks its arguments before touching NCCL', async () => {
    expect(() => native.ncclConnect(new Uint8Array(5), 0, 1, 0, 1000)).toThrow(/'uniqueId' must have 128 elements, got 5/);
    expect(() => native.ncclConnect(new Float32Array(32) as never, 0, 1, 0, 1000)).toThrow(/'uniqueId' must be a Uint8Array of 128 bytes/);
    expect(() => native.ncclConnect(new Uint8Array(128), 1, 1, 0, 1000)).toThrow(/'rank' must be below the world size 1/);
    let loaded = true;
    try {
      native.ncclLoad('');
    } catch {
      loaded = false;
    }
    if (!loaded) expect(() => native.ncclUniqueId()).toThrow(/NCCL is not loaded/);
    // Device collectives belong to nccl; a host backend says so.
    const comm = await native.threadsJoin('nccl-glue', 0, 1, 1000);
    expect(() => comm.allReduceDevice({} as never, 1, 'float32', 'sum')).toThrow(/'buffer' must be a DeviceBuffer/);
    expect(() => comm.allReduceDevice({} as never, 1, 'int8' as never, 'sum')).toThrow(/'dtype' must be 'float32', 'float64' or 'int64'/);
    expect(() => (comm.allReduceDevice as (...a: unknown[]) => void)({}, 1, 'float32', 'sum', [], 0)).toThrow(/allReduceDevice: expected 4 arguments, got 6/);
    expect(() => comm.allGatherDevice({} as never, {} as never, 1, 'float64')).toThrow(/allGatherDevice: .*'input' must be a DeviceBuffer/);
    expect(() => comm.allGatherDevice({} as never, {} as never, -1, 'float64')).toThrow(/'count' must be an integer >= 0/);
    expect(() => comm.allGatherDevice({} as never, {} as never, 1, 'float16' as never)).toThrow(/'dtype' must be 'float32', 'float64' or 'int64'/);
    comm.destroy();
  });

  test('a library without the NCCL functions is named', () => {
    process.env.SYNCBN_NCCL_LIBRARY = 'libm.so.6';
    expect(() => native.ncclLoad(process.env.SYNCBN_NCCL_LIBRARY!)).toThrow(/NCCL library libm.so.6 does not export ncclGetVersion/);
  });
});

describe('stores', () => {
  test('TCPStore: set, get, add, check, wait, and a timeout naming the missing keys', async () => {
    const server = await dist.TCPStore.create({ host: '127.0.0.1', port: 0, isServer: true, timeoutMs: 2000 });
    const client = await dist.TCPStore.create({ host: '127.0.0.1', port: server.port, isServer: false, timeoutMs: 2000 });
    const later = client.get('late', 2000);
    await server.set('late', 'value');
    expect((await later).toString()).toBe('value');
    expect(await client.add('n', 2)).toBe(2);
    expect(await server.add('n', 3)).toBe(5);
    expect(await client.check(['late', 'n'])).toBe(true);
    expect(await client.check(['late', 'nope'])).toBe(false);
    await expect(client.wait(['late', 'a', 'b'], 100)).rejects.toThrow("store wait timed out after 100 ms waiting for keys 'a', 'b'");
    await expect(client.get('never', 100)).rejects.toThrow(/waiting for key 'never'/);
    await client.close();
    await server.close();
  });

  test('FileStore: the same operations through a directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-store-'));
    const a = new dist.FileStore(dir, 2000);
    const b = new dist.FileStore(dir, 2000);
    const later = b.get('k/with/slashes');
    await a.set('k/with/slashes', Buffer.from([1, 2, 3]));
    expect([...(await later)]).toEqual([1, 2, 3]);
    expect(await a.add('c', 1)).toBe(1);
    expect(await b.add('c', 1)).toBe(2);
    await expect(a.wait(['c', 'x'], 100)).rejects.toThrow("waiting for keys 'x'");
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('SyncBatchNorm.convertSyncBatchnorm', () => {
  class MyNorm extends nn.BatchNorm2d {}

  test('replaces BatchNorm*d in a tree, sharing parameters, buffers, counter and mode', () => {
    const inner = new nn.BatchNorm2d(4, { momentum: 0.3, eps: 1e-3 });
    inner.forward(randn([2, 4, 3, 3]));
    inner.eval();
    const net = new nn.Sequential(new nn.BatchNorm1d(3), new nn.Sequential(inner));
    const out = nn.SyncBatchNorm.convertSyncBatchnorm(net) as nn.Sequential;
    expect(out).toBe(net);
    const converted = (out.at(1) as nn.Sequential).at(0) as nn.SyncBatchNorm;
    expect(converted).toBeInstanceOf(nn.SyncBatchNorm);
    expect(converted.weight).toBe(inner.weight);
    expect(converted.runningMean).toBe(inner.runningMean);
    expect(converted.numBatchesTracked).toBe(inner.numBatchesTracked);
    expect(converted.numBatchesTracked!.item()).toBe(1);
    expect(converted.training).toBe(false);
    expect(converted.momentum).toBe(0.3);
    expect(converted.eps).toBe(1e-3);
    expect(converted.layerName).toBe('1.0');
    expect(out.at(0)).toBeInstanceOf(nn.SyncBatchNorm);
    expect(String(out.at(0))).toBe('SyncBatchNorm(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)');
    expect(Object.keys(out.stateDict())).toContain('1.0.num_batches_tracked');
  });

  test('a BatchNorm root comes back as a new SyncBatchNorm', () => {
    const bn = new nn.BatchNorm1d(5, { affine: false });
    const s = nn.SyncBatchNorm.convertSyncBatchnorm(bn);
    expect(s).not.toBe(bn);
    expect(s).toBeInstanceOf(nn.SyncBatchNorm);
    expect((s as nn.SyncBatchNorm).weight).toBeNull();
  });

  test('a subclass is not silently replaced: it throws with its path unless allowed', () => {
    const net = new nn.Sequential(new nn.BatchNorm1d(2), new nn.Sequential(new MyNorm(3)));
    expect(() => nn.SyncBatchNorm.convertSyncBatchnorm(net)).toThrow(
      "convertSyncBatchnorm: '1.0' is a MyNorm, a subclass of BatchNorm; replacing it by a plain SyncBatchNorm would drop its own behaviour. Pass { allowSubclasses: true } to convert it anyway.");
    const momentum = new nn.Sequential(new nn.MomentumBatchNorm2d(3));
    expect(() => nn.SyncBatchNorm.convertSyncBatchnorm(momentum)).toThrow(/'0' is a MomentumBatchNorm2d/);
    const out = nn.SyncBatchNorm.convertSyncBatchnorm(net, null, { allowSubclasses: true }) as nn.Sequential;
    expect((out.at(1) as nn.Sequential).at(0)).toBeInstanceOf(nn.SyncBatchNorm);
  });

  test('lazy modules convert once materialized', () => {
    const lazy = new nn.LazyBatchNorm2d();
    expect(() => nn.SyncBatchNorm.convertSyncBatchnorm(new nn.Sequential(lazy))).toThrow(/lazy module without numFeatures/);
    lazy.forward(randn([2, 3, 2, 2]));
    const out = nn.SyncBatchNorm.convertSyncBatchnorm(new nn.Sequential(lazy)) as nn.Sequential;
    expect((out.at(0) as nn.SyncBatchNorm).numFeatures).toBe(3);
  });

  test('without a process group SyncBatchNorm is plain BatchNorm; its own checks hold', () => {
    const s = new nn.SyncBatchNorm(3, { dtype: 'float64' });
    const b = new nn.BatchNorm1d(3, { dtype: 'float64' });
    const x = randn([4, 3, 5], { dtype: 'float64' });
    expect(s.forward(x).toArray()).toEqual(b.forward(x).toArray());
    expect(() => s.forward(randn([3], { dtype: 'float64' }))).toThrow('expected at least 2D input (got 1D input)');
  });
});
