// syncbn-run: starts one process per rank on this node with the
// torch.distributed environment, streams each rank's output behind a rank
// prefix, and when one rank fails stops the others and exits non-zero.
// Cf. `torchrun` / `python -m torch.distributed.launch`.
import { ChildProcess, spawn } from 'node:child_process';
import * as readline from 'node:readline';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  script: string;
  args: string[];
}

const USAGE = `usage: syncbn-run [--nproc-per-node N] [--nnodes N] [--node-rank R]
                  [--master-addr HOST] [--master-port PORT] script.js [args...]

Starts N processes of \`node script.js args...\` with RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, prefixes their
output with the rank, and stops every rank when one fails.`;

/** Parses the launcher's own options; the script and its arguments follow them. */
export function parseArgs(argv: string[]): LaunchOptions {
  const o: LaunchOptions = { nprocPerNode: 1, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 29500, script: '', args: [] };
  const ints: Record<string, keyof LaunchOptions> = {
    '--nproc-per-node': 'nprocPerNode',
    '--nproc_per_node': 'nprocPerNode',
    '--nnodes': 'nnodes',
    '--node-rank': 'nodeRank',
    '--node_rank': 'nodeRank',
    '--master-port': 'masterPort',
    '--master_port': 'masterPort',
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) break;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag === '--help') throw new Error(USAGE);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`syncbn-run: ${flag} needs a value\n${USAGE}`);
    if (flag === '--master-addr' || flag === '--master_addr') {
      o.masterAddr = value;
    } else if (flag in ints) {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`syncbn-run: ${flag} must be a non-negative integer, got '${value}'`);
      (o[ints[flag]] as number) = n;
    } else {
      throw new Error(`syncbn-run: unknown option ${flag}\n${USAGE}`);
    }
  }
  if (i >= argv.length) throw new Error(`syncbn-run: no script given\n${USAGE}`);
  o.script = argv[i];
  o.args = argv.slice(i + 1);
  if (o.nprocPerNode < 1) throw new Error('syncbn-run: --nproc-per-node must be >= 1');
  if (o.nnodes < 1) throw new Error('syncbn-run: --nnodes must be >= 1');
  if (o.nodeRank >= o.nnodes) throw new Error(`syncbn-run: --node-rank ${o.nodeRank} is outside --nnodes ${o.nnodes}`);
  if (o.masterPort < 1 || o.masterPort > 65535) throw new Error('syncbn-run: --master-port must be a TCP port');
  return o;
}

/** Runs the ranks of this node; resolves with the exit code for the launcher. */
export function launch(o: LaunchOptions, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const world = o.nprocPerNode * o.nnodes;
  const width = String(world - 1).length;
  const children: ChildProcess[] = [];
  let failure: { rank: number; code: number } | null = null;
  let exited = 0;

  return new Promise((resolve) => {
    const stopOthers = () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      const hard = setTimeout(() => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, 5000);
      hard.unref();
    };
    const forward = (signal: NodeJS.Signals) => {
      for (const c of children) c.kill(signal);
    };
    process.once('SIGINT', forward);
    process.once('SIGTERM', forward);

    for (let local = 0; local < o.nprocPerNode; local++) {
      const rank = o.nodeRank * o.nprocPerNode + local;
      const child = spawn(process.execPath, [o.script, ...o.args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          RANK: String(rank),
          LOCAL_RANK: String(local),
          WORLD_SIZE: String(world),
          LOCAL_WORLD_SIZE: String(o.nprocPerNode),
          GROUP_RANK: String(o.nodeRank),
          MASTER_ADDR: o.masterAddr,
          MASTER_PORT: String(o.masterPort),
        },
      });
      children.push(child);
      const prefix = `[rank ${String(rank).padStart(width)}] `;
      readline.createInterface({ input: child.stdout! }).on('line', (l) => out.write(prefix + l + '\n'));
      readline.createInterface({ input: child.stderr! }).on('line', (l) => err.write(prefix + l + '\n'));
      child.on('exit', (code, signal) => {
        exited++;
        const status = code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : 1);
        if (status !== 0 && failure === null) {
          failure = { rank, code: status };
          err.write(`syncbn-run: rank ${rank} exited with ${signal ? `signal ${signal}` : `code ${code}`}; stopping the other ranks\n`);
          stopOthers();
        }
        if (exited === children.length) {
          process.off('SIGINT', forward);
          process.off('SIGTERM', forward);
          resolve(failure === null ? 0 : failure.code);
        }
      });
      child.on('error', (e) => {
        err.write(`syncbn-run: could not start rank ${rank}: ${e.message}\n`);
      });
    }
  });
}

/** The command-line entry: parses, launches, exits with the result. */
export async function main(argv: string[]): Promise<void> {
  let opts: LaunchOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(argv.includes('--help') ? 0 : 2);
  }
  process.exitCode = await launch(opts);
}
