// ProcessGroup: a set of ranks and the communicator they share.
import { CommArray, CommCall, CommDtype, DeviceBuffer, NativeComm } from '../native';
import { describeFingerprint } from './sync_sites';

export type Backend = 'gloo' | 'nccl' | 'threads';
/** Cf. `torch.distributed.ReduceOp`: SUM, AVG, MIN, MAX. */
export type ReduceOp = 'sum' | 'avg' | 'min' | 'max';

/** A fingerprint of one synchronization point: [layer id, channels, sequence]. */
export type Fingerprint = readonly [number, number, number];

// tag[0] of a collective: who called it (see CallTag in native/comm/checked.h).
const SOURCE_SYNC = 1;

/** A SyncBatchNorm sync's tag: the fingerprint rides along only when checked. */
function syncTag(fingerprint: Fingerprint, check: boolean): number[] {
  return check ? [SOURCE_SYNC, ...fingerprint] : [SOURCE_SYNC];
}

/**
 * A group of ranks that run collectives together. Made by
 * `initProcessGroup` (the world) and `newGroup`. A rank outside the group
 * holds a non-member handle (rank -1) that refuses collectives.
 * Cf. `torch.distributed.ProcessGroup`.
 *
 * @example
 * const world = await dist.initProcessGroup({ backend: 'gloo' });
 * world.rank; world.size;
 */
export class ProcessGroup {
  private syncs = 0;

  constructor(
    readonly backend: Backend,
    /** Global ranks of the members, in group-rank order. */
    readonly ranks: readonly number[],
    /** This process's (or thread's) rank in the world. */
    readonly globalRank: number,
    private comm: NativeComm | null,
    /** A label for messages: 'world' or 'group N'. */
    readonly label: string,
  ) {}

  /** Number of ranks in the group. */
  get size(): number {
    return this.ranks.length;
  }

  /** This rank's index in the group, -1 when not a member. */
  get rank(): number {
    return this.ranks.indexOf(this.globalRank);
  }

  isMember(): boolean {
    return this.rank >= 0;
  }

  get destroyed(): boolean {
    return this.comm === null && this.isMember();
  }

  /** The live communicator, or an error saying why there is none. */
  communicator(where: string): NativeComm {
    if (!this.isMember()) {
      throw new Error(`${where}: rank ${this.globalRank} is not a member of ${this.label} (ranks [${this.ranks.join(', ')}])`);
    }
    if (this.comm === null) throw new Error(`${where}: ${this.label} was destroyed`);
    return this.comm;
  }

  destroy(): void {
    this.comm?.destroy();
    this.comm = null;
  }

  /** Counts synchronization points; equal on every rank that runs the same program. */
  nextSync(): number {
    return ++this.syncs;
  }

  /**
   * Runs one collective. The communicator makes every rank agree on the call
   * before any data moves (native/comm/checked.h); a disagreement becomes,
   * on every rank, the same error naming what each rank called.
   */
  private run<T>(where: string, fn: (comm: NativeComm) => T): T {
    const comm = this.communicator(where);
    try {
      return fn(comm);
    } catch (e) {
      const calls = (e as { calls?: CommCall[] }).calls;
      if (Array.isArray(calls)) throw new Error(this.divergence(calls, where));
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  }

  allReduceArray(data: CommArray, op: ReduceOp, where: string): void {
    this.run(where, (c) => c.allReduce(data, op));
  }

  allGatherArray(input: CommArray, output: CommArray, where: string): void {
    this.run(where, (c) => c.allGather(input, output));
  }

  broadcastArray(data: CommArray, root: number, where: string): void {
    this.run(where, (c) => c.broadcast(data, root));
  }

  /** nccl: all-reduce `count` elements of device memory in place. */
  allReduceDevice(buffer: DeviceBuffer, count: number, dtype: CommDtype, op: ReduceOp, where: string): void {
    this.run(where, (c) => c.allReduceDevice(buffer, count, dtype, op));
  }

  /** nccl: gathers `count` elements of every rank's device memory into `output`, rank-major. */
  allGatherDevice(input: DeviceBuffer, output: DeviceBuffer, count: number, dtype: CommDtype, where: string): void {
    this.run(where, (c) => c.allGatherDevice(input, output, count, dtype));
  }

  /** nccl: broadcast `count` elements of device memory from group rank `root`. */
  broadcastDevice(buffer: DeviceBuffer, count: number, dtype: CommDtype, root: number, where: string): void {
    this.run(where, (c) => c.broadcastDevice(buffer, count, dtype, root));
  }

  barrier(where: string): void {
    this.run(where, (c) => c.barrier());
  }

  /**
   * All-reduce `data` (a reduction, or 'welford' triples of doubles) at one
   * synchronization point of a sync site (lib/distributed/sync_sites.ts: a
   * SyncBatchNorm layer, a distributed optimizer). With `check`, the
   * fingerprint rides in the call's header, so ranks at different layers,
   * passes or calls fail on every rank, naming where each rank is, in the
   * same round trip (native/comm/checked.h).
   */
  syncAllReduce(fingerprint: Fingerprint, data: CommArray, op: ReduceOp | 'welford', opts: { check: boolean; where: string }): void {
    this.run(opts.where, (c) => c.allReduce(data, op, syncTag(fingerprint, opts.check)));
  }

  /**
   * nccl: the sum all-reduce of `count` elements of device memory in place,
   * on the device's stream, at one synchronization point (the fingerprint
   * as in syncAllReduce).
   */
  syncAllReduceDevice(fingerprint: Fingerprint, buffer: DeviceBuffer, count: number, dtype: CommDtype, opts: { check: boolean; where: string }): void {
    this.run(opts.where, (c) => c.allReduceDevice(buffer, count, dtype, 'sum', syncTag(fingerprint, opts.check)));
  }

  /** nccl: the all-gather of `count` elements of device memory per rank at one synchronization point. */
  syncAllGatherDevice(fingerprint: Fingerprint, input: DeviceBuffer, output: DeviceBuffer, count: number, dtype: CommDtype,
    opts: { check: boolean; where: string }): void {
    this.run(opts.where, (c) => c.allGatherDevice(input, output, count, dtype, syncTag(fingerprint, opts.check)));
  }

  private divergence(calls: CommCall[], where: string): string {
    const byPoint = new Map<string, number[]>();
    calls.forEach((c, r) => {
      const fp: Fingerprint = [c.tag[1], c.tag[2], c.tag[3]];
      const key = c.tag[0] === SOURCE_SYNC && c.tag.slice(1).some((v) => v !== 0) ? describeFingerprint(fp) : c.call;
      byPoint.set(key, [...(byPoint.get(key) ?? []), this.ranks[r]]);
    });
    const lines = [...byPoint.entries()].map(([at, ranks]) => `ranks [${ranks.join(', ')}] are at ${at}`);
    return `${where}: ranks of ${this.label} diverged: ${lines.join('; ')}. ` +
      'Every rank must run the same collectives and synchronized layers in the same order ' +
      '(synchronized layers and optimizers are numbered in the order a rank builds them: a rank that builds one more, ' +
      'even for inference only, numbers the rest differently).';
  }
}
