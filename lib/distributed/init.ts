// initProcessGroup / newGroup / destroyProcessGroup: the default group and
// its subgroups, as torch.distributed keeps them (one world per process, or
// per worker thread for the threads backend).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { native, NativeComm } from '../native';
import { Backend, ProcessGroup } from './process_group';
import { glooAddress } from './addresses';
import { glooUnavailableMessage } from './availability';
import { FileStore, REFUSED_KEY, Store, StoreTimeoutError, TCPStore } from './store';

export interface InitProcessGroupOptions {
  /** 'gloo' (CPU, across processes and machines), 'nccl' (CUDA tensors) or 'threads' (worker_threads of one process). */
  backend: Backend;
  /**
   * 'env://' (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE; the default),
   * 'tcp://host:port', 'file:///path'; for threads, 'local://name' (default SYNCBN_THREADS_INIT_METHOD, which `spawn` sets, else 'local://default').
   */
  initMethod?: string;
  /** Defaults to RANK from the environment. */
  rank?: number;
  /** Defaults to WORLD_SIZE from the environment. */
  worldSize?: number;
  /**
   * Limit of every blocking wait: rendezvous and each collective. Defaults to
   * SYNCBN_TIMEOUT_MS, else 300000 (5 minutes). A collective that cannot
   * complete fails within it plus 250 ms, naming the ranks it waited for.
   */
  timeoutMs?: number;
  /** nccl: the CUDA device of this rank's tensors. Defaults to LOCAL_RANK (set by syncbn-run), else 0. */
  device?: number;
  /**
   * The job's secret: every request to the TCP rendezvous store, and every
   * reply, is authenticated with it (HMAC-SHA256), so that no other process
   * can read or change the keys or join as a rank. Defaults to SYNCBN_SECRET,
   * which syncbn-run sets to a fresh random value per job. Without one the
   * store still checks its protocol but anyone who can reach it can join.
   */
  secret?: string;
}

interface State {
  world: ProcessGroup;
  groups: ProcessGroup[];
  store: Store | null;
  /** How subgroups reach their rendezvous. */
  connect: (prefix: string, rank: number, size: number) => Promise<NativeComm>;
  timeoutMs: number;
  created: number;
}

let state: State | null = null;
let warnedNoSecret = false;

const DEFAULT_TIMEOUT_MS = 300_000;
/** When a wait starts to be reported, and how often after (native/comm/gloo_watch.h keeps the same). */
const FIRST_WAIT_REPORT_MS = 10_000;
const WAIT_REPORT_EVERY_MS = 10_000;
/** How long rank 0 keeps the store up after its rendezvous failed: two of the others' polls. */
const STORE_LINGER_MS = 2000;

function envInt(name: string, where: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${where}: environment variable ${name}=${v} is not a non-negative integer`);
  return n;
}

function timeoutFromEnv(where: string): number | undefined {
  const v = process.env.SYNCBN_TIMEOUT_MS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${where}: environment variable SYNCBN_TIMEOUT_MS=${v} is not a positive integer (milliseconds)`);
  return n;
}

function requireInt(v: number | undefined, name: string, where: string, min: number): number {
  if (v === undefined) throw new TypeError(`${where}: ${name} is not set (pass it, or set ${name === 'rank' ? 'RANK' : 'WORLD_SIZE'})`);
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${where}: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/**
 * Joins a threads group by polling from this thread's event loop: the ranks
 * wait without holding any thread (a wait on libuv's pool of 4 would
 * deadlock a world of more than 4 ranks).
 */
async function threadsJoin(name: string, rank: number, size: number, timeoutMs: number): Promise<NativeComm> {
  const handle = native.threadsJoinStart(name, rank, size, timeoutMs);
  for (let delay = 0; ; delay = Math.min(5, delay + 1)) {
    const comm = native.threadsJoinPoll(handle);
    if (comm !== null) return comm;
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** "ranks [2, 3]", with " (at ADDR)" when their join said where they are. */
async function namedRanks(store: Store, ranks: number[]): Promise<string> {
  const hosts = new Set<string>();
  for (const r of ranks) {
    try {
      const v = (await store.get(`syncbn/join/${r}`, 0)).toString();
      if (v !== '1') hosts.add(v);
    } catch {
      // Not joined: no address.
    }
  }
  return `ranks [${ranks.join(', ')}]${hosts.size ? ` (at ${[...hosts].join(', ')})` : ''}`;
}

/**
 * Waits (asynchronously) until every rank has reached `stage`, naming those
 * that have not. Rank 0 hosts the store in its event loop, so no rank may
 * leave a rendezvous, and block in a collective, while another still needs
 * the store: each rendezvous ends with such a barrier. It waits in slices:
 * after each, a rank the store refused for its secret ends the wait, and a
 * long wait is reported on stderr, naming the ranks awaited. `value`: what
 * this rank leaves under its key (its address, at 'join').
 */
async function storeBarrier(store: Store, stage: string, rank: number, worldSize: number, timeoutMs: number, where: string, value = '1'): Promise<void> {
  await store.set(`syncbn/${stage}/${rank}`, value);
  const keys = Array.from({ length: worldSize }, (_, r) => `syncbn/${stage}/${r}`);
  const start = Date.now();
  let report = start + FIRST_WAIT_REPORT_MS;
  for (;;) {
    try {
      await store.wait(keys, Math.max(0, Math.min(1000, start + timeoutMs - Date.now())));
      return;
    } catch (e) {
      if (!(e instanceof StoreTimeoutError)) throw e;
      const missing = e.missing.map((k) => Number(k.split('/').pop()));
      if (await store.check([REFUSED_KEY])) {
        const from = (await store.get(REFUSED_KEY, 0)).toString();
        throw new Error(`${where}: a rank from ${from} was refused: its SYNCBN_SECRET differs from this rank's ` +
          `(the rendezvous store authenticates every request with it; ranks [${missing.join(', ')}] of ${worldSize} have not reached '${stage}')`);
      }
      const waited = Date.now() - start;
      if (waited >= timeoutMs) {
        throw new Error(`${where}: rendezvous timed out after ${timeoutMs} ms: ${await namedRanks(store, missing)} of ${worldSize} never reached '${stage}'`);
      }
      if (Date.now() >= report) {
        process.stderr.write(`syncbn: rank ${rank} of ${worldSize} has waited ${Math.floor(waited / 1000)} s (timeout ${Math.floor(timeoutMs / 1000)} s) ` +
          `at the rendezvous ('${stage}') for ${await namedRanks(store, missing)}\n`);
        report += WAIT_REPORT_EVERY_MS;
      }
    }
  }
}

/**
 * Joins the default process group. Resolves once every rank has joined;
 * never blocks the event loop. Cf. `torch.distributed.init_process_group`.
 *
 * @example
 * // launched by `npx syncbn-run --nproc-per-node 2 train.js`
 * await dist.initProcessGroup({ backend: 'gloo' });
 * dist.getRank(); dist.getWorldSize();
 */
export async function initProcessGroup(opts: InitProcessGroupOptions): Promise<ProcessGroup> {
  const where = 'initProcessGroup';
  if (state !== null) throw new Error(`${where}: the default process group is already initialized; call destroyProcessGroup() first`);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${where}: expected an options object`);
  const backend = opts.backend;
  if (backend !== 'gloo' && backend !== 'nccl' && backend !== 'threads') {
    throw new TypeError(`${where}: backend must be 'gloo', 'nccl' or 'threads', got ${String(backend)}`);
  }
  const timeoutMs = opts.timeoutMs ?? timeoutFromEnv(where) ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`${where}: timeoutMs must be a positive integer, got ${String(timeoutMs)}`);
  // spawn() gives each group of worker threads its own rendezvous name through the environment.
  const initMethod = opts.initMethod ?? (backend === 'threads' ? process.env.SYNCBN_THREADS_INIT_METHOD || 'local://default' : 'env://');
  const rank = requireInt(opts.rank ?? envInt('RANK', where), 'rank', where, 0);
  const worldSize = requireInt(opts.worldSize ?? envInt('WORLD_SIZE', where), 'worldSize', where, 1);
  if (rank >= worldSize) throw new RangeError(`${where}: rank ${rank} is outside the world of size ${worldSize}`);
  const all = Array.from({ length: worldSize }, (_, r) => r);

  if (backend === 'threads') {
    const m = /^local:\/\/(.+)$/.exec(initMethod);
    if (!m) throw new TypeError(`${where}: the threads backend takes initMethod 'local://name', got '${initMethod}'`);
    const name = m[1];
    const comm = await threadsJoin(name, rank, worldSize, timeoutMs);
    // worldSize ranks share the cores: each worker thread's kernels get their
    // share, so the replicas do not oversubscribe (setNumThreads overrides).
    if (!isMainThread) native.setNumThreads(Math.max(1, Math.floor(native.getNumThreads() / worldSize)));
    const world = new ProcessGroup('threads', all, rank, comm, 'world');
    state = {
      world, groups: [], store: null, timeoutMs, created: 0,
      connect: (prefix, r, size) => threadsJoin(`${name}/${prefix}`, r, size, timeoutMs),
    };
    return world;
  }

  let device = 0;
  if (backend === 'nccl') {
    // Load first: a missing library is the error a user must see.
    native.ncclLoad(process.env.SYNCBN_NCCL_LIBRARY ?? '');
    if (!native.features.cuda) {
      throw new Error(`${where}: the nccl backend reduces CUDA tensors, but this build of syncbn has no CUDA support; use backend 'gloo' for CPU tensors`);
    }
    device = requireInt(opts.device ?? envInt('LOCAL_RANK', where) ?? 0, 'device', where, 0);
    const count = native.cuda.deviceCount();
    if (device >= count) throw new RangeError(`${where}: the nccl backend needs CUDA device ${device}, but ${count} ${count === 1 ? 'is' : 'are'} visible`);
  }
  if (backend === 'gloo' && !native.features.gloo) {
    throw new Error(glooUnavailableMessage(where));
  }
  let store: Store;
  let connect: State['connect'];
  // Where this rank is, for the others' messages.
  let address = os.hostname();
  const tcp = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(initMethod);
  const file = /^file:\/\/(\/.+)$/.exec(initMethod);
  if (initMethod === 'env://' || tcp) {
    const host = tcp ? tcp[1].replace(/^\[|\]$/g, '') : process.env.MASTER_ADDR;
    const portText = tcp ? tcp[2] : process.env.MASTER_PORT;
    if (!host) throw new TypeError(`${where}: init method env:// needs MASTER_ADDR`);
    const port = Number(portText);
    if (!portText || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`${where}: MASTER_PORT must be a TCP port, got ${String(portText)}`);
    }
    const addr = backend === 'gloo' ? await glooAddress(host, where) : { hostname: '', iface: '', address: '' };
    address = addr.address || address;
    const secret = opts.secret ?? process.env.SYNCBN_SECRET ?? '';
    if (typeof secret !== 'string') throw new TypeError(`${where}: secret must be a string`);
    if (secret === '' && rank === 0 && !warnedNoSecret) {
      warnedNoSecret = true;
      process.emitWarning('the rendezvous store has no secret: any process that can reach MASTER_PORT can join or read it. ' +
        'Launch with syncbn-run, or set SYNCBN_SECRET (the same on every rank).', 'SyncbnWarning');
    }
    // Room for each rank's TypeScript client, its native clients (one per
    // group, kept to name a stalled rank) and a margin.
    const tcpStore = await TCPStore.create({ host, port, isServer: rank === 0, timeoutMs, secret, maxConnections: 4 * worldSize + 32 });
    store = tcpStore;
    connect = (prefix, r, size) => native.glooConnect(host, tcpStore.port, '', prefix, addr.hostname, addr.iface, r, size, timeoutMs, secret);
  } else if (file) {
    const dir = `${file[1]}.syncbn`;
    const addr = backend === 'gloo' ? await glooAddress('127.0.0.1', where) : { hostname: '', iface: '', address: '' };
    store = new FileStore(dir, timeoutMs);
    connect = (prefix, r, size) => native.glooConnect('', 0, `${dir}/gloo`, prefix, addr.hostname, addr.iface, r, size, timeoutMs, '');
    fs.mkdirSync(`${dir}/gloo`, { recursive: true });
  } else {
    throw new TypeError(`${where}: unsupported initMethod '${initMethod}'; expected 'env://', 'tcp://host:port' or 'file:///path'`);
  }
  if (backend === 'nccl') connect = ncclRendezvous(store, device, timeoutMs, where);

  try {
    await storeBarrier(store, 'join', rank, worldSize, timeoutMs, where, address);
    const comm = await connect('syncbn_world_', rank, worldSize);
    await storeBarrier(store, 'connected', rank, worldSize, timeoutMs, where);
    const world = new ProcessGroup(backend, all, rank, comm, 'world');
    state = { world, groups: [], store, connect, timeoutMs, created: 0 };
    store.unref();
    return world;
  } catch (e) {
    // Rank 0's store outlives its failure a little, so that the other ranks
    // read why (a refused secret, a failed connection) instead of a closed store.
    store.unref();
    setTimeout(() => void store.close(), rank === 0 ? STORE_LINGER_MS : 0).unref();
    throw e;
  }
}

/**
 * How NCCL ranks meet: the group's first rank publishes a fresh unique id
 * under the group's prefix, the others read it (bounded by the timeout),
 * then all join the communicator on a worker thread.
 */
function ncclRendezvous(store: Store, device: number, timeoutMs: number, where: string): State['connect'] {
  return async (prefix, rank, size) => {
    const key = `${prefix}nccl_unique_id`;
    if (rank === 0) await store.set(key, Buffer.from(native.ncclUniqueId()));
    let id: Buffer;
    try {
      id = await store.get(key, timeoutMs);
    } catch (e) {
      if (!(e instanceof StoreTimeoutError)) throw e;
      throw new Error(`${where}: rendezvous timed out after ${timeoutMs} ms: the group's first rank never published the NCCL unique id`);
    }
    return native.ncclConnect(new Uint8Array(id), rank, size, device, timeoutMs);
  };
}

/** Whether this process (or worker thread) has a default group. Cf. `is_initialized`. */
export function isInitialized(): boolean {
  return state !== null;
}

/** The default group, or null before initProcessGroup. */
export function defaultGroup(): ProcessGroup | null {
  return state?.world ?? null;
}

/** The default group, or an error naming the caller. */
export function worldGroup(where: string): ProcessGroup {
  if (state === null) throw new Error(`${where}: the default process group is not initialized; call initProcessGroup() first`);
  return state.world;
}

/**
 * A subgroup of `ranks`. Every rank of the world must call it, in the same
 * order, members or not, as in PyTorch; non-members get a handle of rank -1.
 * Cf. `torch.distributed.new_group`.
 *
 * @example
 * const evens = await dist.newGroup([0, 2]);
 * if (evens.isMember()) dist.allReduce(t, { group: evens });
 */
export async function newGroup(ranks: number[]): Promise<ProcessGroup> {
  const where = 'newGroup';
  const s = state;
  if (s === null) throw new Error(`${where}: the default process group is not initialized; call initProcessGroup() first`);
  if (!Array.isArray(ranks) || ranks.length === 0) throw new TypeError(`${where}: ranks must be a non-empty array of ranks`);
  const members = [...new Set(ranks)].sort((a, b) => a - b);
  if (members.length !== ranks.length) throw new RangeError(`${where}: ranks must not repeat, got [${ranks.join(', ')}]`);
  for (const r of members) {
    if (!Number.isSafeInteger(r) || r < 0 || r >= s.world.size) throw new RangeError(`${where}: rank ${r} is not in the world of size ${s.world.size}`);
  }
  const id = ++s.created;
  const index = members.indexOf(s.world.globalRank);
  let comm: NativeComm | null = null;
  if (index >= 0) comm = await s.connect(`syncbn_group${id}_`, index, members.length);
  if (s.store !== null) await storeBarrier(s.store, `group${id}`, s.world.globalRank, s.world.size, s.timeoutMs, where);
  const group = new ProcessGroup(s.world.backend, members, s.world.globalRank, comm, `group ${id}`);
  s.groups.push(group);
  return group;
}

/**
 * Destroys one group, or with no argument the default group, its subgroups
 * and the store. Cf. `torch.distributed.destroy_process_group`.
 *
 * @example await dist.destroyProcessGroup();
 */
export async function destroyProcessGroup(group?: ProcessGroup): Promise<void> {
  if (group !== undefined && group !== state?.world) {
    group.destroy();
    return;
  }
  const s = state;
  if (s === null) return;
  state = null;
  for (const g of s.groups) g.destroy();
  s.world.destroy();
  await s.store?.close();
}
