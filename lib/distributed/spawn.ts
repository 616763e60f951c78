// spawn: starts `nprocs` workers of one script with the rendezvous set, and
// settles when they all finish or the first one fails. Cf.
// torch.multiprocessing.spawn (and torch.distributed's env:// variables).
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Worker, isMainThread, workerData } from 'node:worker_threads';

export interface SpawnOptions {
  /** Number of workers (ranks). */
  nprocs: number;
  /**
   * 'threads': worker threads of this process (the threads backend: data
   * parallel in one process, SynchronizedBatchNorm replicas); 'gloo': child
   * processes on this machine (the gloo backend). Default 'threads'.
   */
  backend?: 'threads' | 'gloo';
  /**
   * Passed to every worker, read there with `spawnArgs()`: structured-cloned
   * for threads, JSON for processes.
   */
  args?: unknown[];
  /** Extra environment variables for every worker. */
  env?: Record<string, string>;
}

/** Thrown by `spawn` when a worker fails: which rank, and its error as `cause`. */
export class SpawnError extends Error {
  constructor(message: string, readonly rank: number, override readonly cause?: unknown) {
    super(message);
    this.name = 'SpawnError';
  }
}

const ARGS_ENV = 'SYNCBN_SPAWN_ARGS';
let groups = 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Runs `file` (a JavaScript module) as `nprocs` workers, each with RANK,
 * WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE set (and MASTER_ADDR /
 * MASTER_PORT for 'gloo', a private rendezvous name for 'threads'), so that
 * `await dist.initProcessGroup({ backend })` there needs no other argument.
 * Resolves when every worker finished; rejects with a `SpawnError` naming
 * the first worker that threw or exited non-zero (its error as `cause`).
 * The other processes are killed at once; the other threads, which may be
 * waiting in a collective for the failed rank, end at the group's timeout
 * (`timeoutMs` of initProcessGroup) or when the process exits.
 * Cf. `torch.multiprocessing.spawn`.
 *
 * @example
 * // main.js
 * await dist.spawn(require.resolve('./train_worker.js'), { nprocs: 4, backend: 'threads', args: [{ epochs: 3 }] });
 * // train_worker.js
 * const [{ epochs }] = dist.spawnArgs();
 * await dist.initProcessGroup({ backend: 'threads' });
 */
export async function spawn(file: string, opts: SpawnOptions): Promise<void> {
  const where = 'spawn';
  if (typeof file !== 'string' || file === '') throw new TypeError(`${where}: file must be the path of a JavaScript file`);
  const script = path.resolve(file);
  if (!fs.existsSync(script)) throw new Error(`${where}: ${script} does not exist`);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${where}: options { nprocs, backend, args } are required`);
  const { nprocs } = opts;
  if (!Number.isSafeInteger(nprocs) || nprocs < 1) throw new RangeError(`${where}: nprocs must be an integer >= 1, got ${String(nprocs)}`);
  const backend = opts.backend ?? 'threads';
  if (backend !== 'threads' && backend !== 'gloo') throw new TypeError(`${where}: backend must be 'threads' or 'gloo', got ${String(backend)}`);
  const args = opts.args ?? [];
  if (!Array.isArray(args)) throw new TypeError(`${where}: args must be an array`);

  const base: Record<string, string> = { ...opts.env, WORLD_SIZE: String(nprocs), LOCAL_WORLD_SIZE: String(nprocs) };
  if (backend === 'threads') {
    // A name of its own, so that two spawns in one process never meet.
    base.SYNCBN_THREADS_INIT_METHOD = `local://spawn-${process.pid}-${++groups}`;
  } else {
    base.MASTER_ADDR = '127.0.0.1';
    base.MASTER_PORT = String(await freePort());
    // The rendezvous store authenticates its clients, as under syncbn-run: one secret per job.
    base.SYNCBN_SECRET = opts.env?.SYNCBN_SECRET ?? randomBytes(32).toString('hex');
    base[ARGS_ENV] = JSON.stringify(args);
  }
  const envOf = (rank: number): NodeJS.ProcessEnv => ({ ...process.env, ...base, RANK: String(rank), LOCAL_RANK: String(rank) });

  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let running = nprocs;
    const stops: Array<() => void> = [];
    const fail = (rank: number, message: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      for (const stop of stops) stop();
      reject(new SpawnError(`${where}: rank ${rank} of ${nprocs} (${backend}) failed: ${message}`, rank, cause));
    };
    const done = () => {
      if (--running === 0 && !settled) {
        settled = true;
        resolve();
      }
    };
    for (let rank = 0; rank < nprocs; rank++) {
      if (backend === 'threads') {
        const w = new Worker(script, { workerData: { syncbnSpawn: { rank, worldSize: nprocs, args } }, env: envOf(rank) });
        let failed = false;
        // Threads are not terminated: one waiting in a native collective or
        // rendezvous cannot be interrupted, and tearing its environment down
        // under that wait is unsafe. It wakes at the group's timeout (or when
        // the process exits) and ends with an error of its own, ignored here.
        w.on('error', (e) => {
          failed = true;
          // Errors come back cloned, possibly from another realm: read the message, not the class.
          const message = (e as { message?: unknown } | null)?.message;
          fail(rank, typeof message === 'string' ? message : String(e), e);
        });
        w.on('exit', (code) => {
          if (failed || settled) return;
          if (code !== 0) fail(rank, `exited with code ${code}`);
          else done();
        });
      } else {
        let tail = '';
        const child: ChildProcess = fork(script, [], { env: envOf(rank), stdio: ['inherit', 'inherit', 'pipe', 'ipc'] });
        stops.push(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        });
        child.stderr!.on('data', (chunk: Buffer) => {
          process.stderr.write(chunk);
          // The end of stderr says why a rank failed; keep the last lines for the error.
          tail = (tail + chunk.toString('utf8')).slice(-4000);
        });
        child.on('error', (e) => fail(rank, e.message, e));
        child.on('exit', (code, signal) => {
          if (settled) return;
          if (code === 0) return done();
          const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
          fail(rank, tail.trim() ? `${why}; its stderr ended with:\n${tail.trim().split('\n').slice(-12).join('\n')}` : why);
        });
      }
    }
  });
}

/**
 * In a worker started by `spawn`, the `args` it was given (an empty array
 * elsewhere). Cf. the `*args` that `torch.multiprocessing.spawn` passes.
 *
 * @example const [config] = dist.spawnArgs();
 */
export function spawnArgs(): unknown[] {
  const data = isMainThread ? undefined : (workerData as { syncbnSpawn?: { args: unknown[] } } | undefined)?.syncbnSpawn;
  if (data) return data.args;
  const json = process.env[ARGS_ENV];
  if (json === undefined) return [];
  return JSON.parse(json) as unknown[];
}
