// ProcessGroup: a set of ranks and the communicator they share.
import { CommArray, NativeComm } from '../native';

export type Backend = 'gloo' | 'nccl' | 'threads';
/** Cf. `torch.distributed.ReduceOp`: SUM, AVG, MIN, MAX. */
export type ReduceOp = 'sum' | 'avg' | 'min' | 'max';

/** A fingerprint of one synchronization point: [layer id, channels, sequence]. */
export type Fingerprint = readonly [number, number, number];

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

  allReduceArray(data: CommArray, op: ReduceOp | 'welford', where: string): void {
    this.communicator(where).allReduce(data, op);
  }

  /**
   * All-reduce `data` after checking that every rank is at the same
   * synchronization point: ranks first reduce a fixed-size header (min of
   * the fingerprint and of its negation, i.e. min and max), so a rank at
   * another layer, or with another payload size, is caught before any
   * payload moves. On a mismatch every rank gathers every fingerprint and
   * throws the same error, built by `describe`.
   */
  syncAllReduce(
    fingerprint: Fingerprint,
    data: Float64Array,
    op: 'sum' | 'welford',
    opts: { check: boolean; where: string; describe: (fp: Fingerprint) => string },
  ): void {
    const comm = this.communicator(opts.where);
    if (opts.check) {
      const [a, b, c] = fingerprint;
      const n = data.length;
      const header = new Float64Array([a, b, c, n, -a, -b, -c, -n]);
      comm.allReduce(header, 'min');
      if (header[0] !== -header[4] || header[1] !== -header[5] || header[2] !== -header[6] || header[3] !== -header[7]) {
        const all = new Float64Array(4 * this.size);
        comm.allGather(new Float64Array([a, b, c, n]), all);
        throw new Error(this.divergence(all, opts.where, opts.describe));
      }
    }
    comm.allReduce(data, op);
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
