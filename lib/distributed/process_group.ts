// ProcessGroup: a set of ranks and the communicator they share.
import { CommArray, CommDtype, DeviceBuffer, NativeComm } from '../native';

export type Backend = 'gloo' | 'nccl' | 'threads';
/** Cf. `torch.distributed.ReduceOp`: SUM, AVG, MIN, MAX. */
export type ReduceOp = 'sum' | 'avg' | 'min' | 'max';

/** A fingerprint of one synchronization point: [layer id, channels, sequence]. */
export type Fingerprint = readonly [number, number, number];

// Values in the first collective of a checked sync, after the header: the
// statistics of up to 512 channels forward (3 each), 768 backward (2 each).
// Wider layers add one collective of the rest. A multiple of 3, so a Welford
// triple is never split.
const SYNC_CHUNK = 1536;
// Fingerprint fields are compared modulo this, to stay exact in doubles.
const FINGERPRINT_MODULUS = 2 ** 20;

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
   * Gloo aborts the process when ranks pass buffers of different sizes, so
   * on gloo every user-level collective first agrees on the byte count (one
   * 2-value all-reduce). The threads backend checks sizes itself.
   */
  private guardSize(comm: NativeComm, bytes: number, where: string): void {
    if (this.backend === 'threads') return;
    const n = bytes;
    const header = new Float64Array([n, -n]);
    comm.allReduce(header, 'min');
    if (header[0] !== -header[1]) {
      throw new Error(`${where}: ranks of ${this.label} passed tensors of different sizes (${header[0]} to ${-header[1]} bytes); every rank must pass the same shape and dtype`);
    }
  }

  allReduceArray(data: CommArray, op: ReduceOp, where: string): void {
    const comm = this.communicator(where);
    this.guardSize(comm, data.byteLength, where);
    comm.allReduce(data, op);
  }

  allGatherArray(input: CommArray, output: CommArray, where: string): void {
    const comm = this.communicator(where);
    this.guardSize(comm, input.byteLength, where);
    comm.allGather(input, output);
  }

  broadcastArray(data: CommArray, root: number, where: string): void {
    const comm = this.communicator(where);
    this.guardSize(comm, data.byteLength, where);
    comm.broadcast(data, root);
  }

  /** nccl: all-reduce `count` elements of device memory in place. */
  allReduceDevice(buffer: DeviceBuffer, count: number, dtype: CommDtype, op: ReduceOp, where: string): void {
    const comm = this.communicator(where);
    this.guardSize(comm, count * (dtype === 'float32' ? 4 : 8), where);
    comm.allReduceDevice(buffer, count, dtype, op);
  }

  /** nccl: broadcast `count` elements of device memory from group rank `root`. */
  broadcastDevice(buffer: DeviceBuffer, count: number, dtype: CommDtype, root: number, where: string): void {
    const comm = this.communicator(where);
    this.guardSize(comm, count * (dtype === 'float32' ? 4 : 8), where);
    comm.broadcastDevice(buffer, count, dtype, root);
  }

  barrier(where: string): void {
    this.communicator(where).barrier();
  }

  /**
   * All-reduce `data` ('sum' of doubles, or 'welford' triples) while checking
   * that every rank is at the same synchronization point, without an extra
   * round trip. The first collective has a fixed size on every rank: a
   * header, then the first SYNC_CHUNK values of the payload (zero-padded;
   * zeros are neutral for both ops). The header is built so that the op
   * itself reveals disagreement: 'sum' adds (f, f^2) per fingerprint field,
   * and the fields agree iff size * sum(f^2) == sum(f)^2; 'welford' merges
   * (1, f, 0) triples, and they agree iff the merged m2 is 0. Both are exact
   * for integer fields below 2^20. Agreement implies equal channel counts,
   * hence equal payload sizes, so the rest (channels beyond the chunk) can
   * follow safely. On disagreement every rank gathers every fingerprint
   * (fixed size) and throws the same error, built by `describe`.
   */
  syncAllReduce(
    fingerprint: Fingerprint,
    data: Float64Array,
    op: 'sum' | 'welford',
    opts: { check: boolean; where: string; describe: (fp: Fingerprint) => string },
  ): void {
    const comm = this.communicator(opts.where);
    if (!opts.check) {
      comm.allReduce(data, op);
      return;
    }
    const fp = fingerprint.map((v) => v % FINGERPRINT_MODULUS);
    const header = op === 'welford' ? fp.flatMap((f) => [1, f, 0]) : [...fp, ...fp.map((f) => f * f)];
    const head = Math.min(SYNC_CHUNK, data.length);
    const first = new Float64Array(header.length + SYNC_CHUNK);
    first.set(header);
    first.set(data.subarray(0, head), header.length);
    comm.allReduce(first, op);
    const agree = op === 'welford'
      ? [0, 3, 6].every((i) => first[i] === this.size && first[i + 2] === 0)
      : [0, 1, 2].every((i) => this.size * first[i + 3] === first[i] * first[i]);
    if (!agree) {
      const all = new Float64Array(4 * this.size);
      comm.allGather(new Float64Array([...fingerprint, data.length]), all);
      throw new Error(this.divergence(all, opts.where, opts.describe));
    }
    data.set(first.subarray(header.length, header.length + head));
    if (data.length > SYNC_CHUNK) comm.allReduce(data.subarray(SYNC_CHUNK), op);
  }

  private divergence(all: Float64Array, where: string, describe: (fp: Fingerprint) => string): string {
    const byPoint = new Map<string, number[]>();
    const points = new Map<string, Fingerprint>();
    for (let r = 0; r < this.size; r++) {
      const fp: Fingerprint = [all[4 * r], all[4 * r + 1], all[4 * r + 2]];
      const key = fp.join(',');
      points.set(key, fp);
      byPoint.set(key, [...(byPoint.get(key) ?? []), this.ranks[r]]);
    }
    const lines = [...byPoint.entries()].map(([key, ranks]) => `ranks [${ranks.join(', ')}] are at ${describe(points.get(key)!)}`);
    return `${where}: ranks of ${this.label} diverged: ${lines.join('; ')}. ` +
      'Every rank must run the same synchronized layers in the same order.';
  }
}
