// syncbn-run: starts one process per rank on this node with the
// torch.distributed environment, streams each rank's output behind a rank
// prefix, and when one rank fails stops the others and exits non-zero.
// Cf. `torchrun` / `python -m torch.distributed.launch`.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as readline from 'node:readline';
import { parseArgs as utilParseArgs, ParseArgsConfig } from 'node:util';
import { isLoopback } from './addresses';

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
       syncbn-run -h | --help | --version

Starts N processes of \`node script.js args...\` with RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, prefixes their
output with the rank, and stops every rank when one fails. Options take
torchrun's names (dashes or underscores); the script's own arguments follow it.

  --nproc-per-node N   processes on this node (default 1)
  --nnodes N           nodes in the job (default 1)
  --node-rank R        this node's rank, 0..nnodes-1 (default 0)
  --master-addr HOST   rank 0's address (default 127.0.0.1)
  --master-port PORT   rank 0's TCP store port (default 29500)
  -h, --help           print this and exit
  --version            print syncbn's version and exit

Environment:
  SYNCBN_SECRET          the job's secret for the rendezvous store, the same on every
                         node; required with --nnodes > 1, else a fresh one per job
  GLOO_SOCKET_IFNAME     the network interface the gloo backend uses (e.g. eth1);
                         default: the one whose address routes to --master-addr
  SYNCBN_GLOO_HOSTNAME   the address the gloo backend listens on, instead
  SYNCBN_TIMEOUT_MS      initProcessGroup's timeoutMs when the script passes none
                         (default 300000): every rendezvous and collective wait
  MASTER_ADDR, MASTER_PORT, RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
  GROUP_RANK             set for each rank (from the options above), as torchrun does`;

/** What the command line asks for: a launch, the usage or the version. */
export type Command = { kind: 'launch'; options: LaunchOptions } | { kind: 'help'; text: string } | { kind: 'version'; text: string };

const VALUE_OPTIONS = ['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port'] as const;
type ValueOption = (typeof VALUE_OPTIONS)[number];

/** util.parseArgs' option table: each value option under torchrun's two spellings. */
const OPTIONS: ParseArgsConfig['options'] = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  ...Object.fromEntries(VALUE_OPTIONS.flatMap((o) => [[o, { type: 'string' }], [o.replace(/-/g, '_'), { type: 'string' }]])),
};

/** Index of the script in argv: the first argument that is neither an option nor an option's value (or the one after `--`). */
function scriptIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return i + 1;
    if (!a.startsWith('-') || a === '-') return i;
    const name = a.replace(/^--?/, '').split('=')[0];
    const spec = OPTIONS![name];
    if (spec?.type === 'string' && !a.includes('=')) i++;
  }
  return argv.length;
}

function usageError(message: string): Error {
  return new Error(`syncbn-run: ${message}\n${USAGE}`);
}

/**
 * Parses the command line with node:util's parseArgs (strict): the launcher's
 * options, then the script and its arguments, which are the script's own.
 * Throws an error carrying the usage for unknown options and bad values.
 */
export function parseCommand(argv: string[]): Command {
  const at = scriptIndex(argv);
  const own = argv.slice(0, at).filter((a, i, all) => !(a === '--' && i === all.length - 1));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = utilParseArgs({ args: own, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    throw usageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  if (values.help) return { kind: 'help', text: USAGE };
  if (values.version) return { kind: 'version', text: packageVersion() };
  const value = (o: ValueOption): string | undefined => (values[o] ?? values[o.replace(/-/g, '_')]) as string | undefined;
  const int = (o: ValueOption, fallback: number, min: number): number => {
    const text = value(o);
    if (text === undefined) return fallback;
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min) throw usageError(`--${o} must be an integer >= ${min}, got '${text}'`);
    return n;
  };
  const o: LaunchOptions = {
    nprocPerNode: int('nproc-per-node', 1, 1),
    nnodes: int('nnodes', 1, 1),
    nodeRank: int('node-rank', 0, 0),
    masterAddr: value('master-addr') ?? '127.0.0.1',
    masterPort: int('master-port', 29500, 1),
    script: argv[at] ?? '',
    args: argv.slice(at + 1),
  };
  if (o.masterAddr === '') throw usageError('--master-addr must not be empty');
  if (o.masterPort > 65535) throw usageError(`--master-port must be a TCP port (1-65535), got ${o.masterPort}`);
  if (o.nodeRank >= o.nnodes) throw usageError(`--node-rank ${o.nodeRank} is outside --nnodes ${o.nnodes}`);
  if (at >= argv.length) throw usageError('no script given');
  return { kind: 'launch', options: o };
}

/** Parses the launcher's options; the script and its arguments follow them. Throws with the usage for --help. */
export function parseArgs(argv: string[]): LaunchOptions {
  const c = parseCommand(argv);
  if (c.kind !== 'launch') throw new Error(c.text);
  return c.options;
}

function packageVersion(): string {
  // dist/distributed/ and lib/distributed/ both sit two levels below the package root.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return `syncbn ${(require(path.join(__dirname, '..', '..', 'package.json')) as { version: string }).version}`;
}

/** Runs the ranks of this node; resolves with the exit code for the launcher. */
export function launch(o: LaunchOptions, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const world = o.nprocPerNode * o.nnodes;
  const width = String(world - 1).length;
  const children: ChildProcess[] = [];
  // The job's secret for the rendezvous store (cf. Horovod's secret key): one
  // fresh value shared by this node's ranks. Nodes cannot agree on a fresh
  // one, and ranks with different secrets fail authentication only after the
  // rendezvous timeout, so a multi-node job without it stops here.
  if (o.nnodes > 1 && !process.env.SYNCBN_SECRET) {
    err.write(
      `syncbn-run: --nnodes ${o.nnodes} needs SYNCBN_SECRET set to the same value on every node's launcher ` +
        "(e.g. export SYNCBN_SECRET=$(node -p \"require('crypto').randomBytes(32).toString('hex')\") once, then pass it to each node)\n",
    );
    return Promise.resolve(2);
  }
  if (o.nnodes > 1 && isLoopback(o.masterAddr)) {
    err.write(
      `syncbn-run: --nnodes ${o.nnodes} with --master-addr ${o.masterAddr}, a loopback address: the other nodes cannot reach it. ` +
        "Pass --master-addr with node 0's address on the network the nodes share, the same on every node\n",
    );
    return Promise.resolve(2);
  }
  try {
    require.resolve(path.resolve(o.script));
  } catch {
    err.write(`syncbn-run: cannot find the script '${o.script}' (the launcher's options come first, then the script, then its arguments)\n`);
    return Promise.resolve(2);
  }
  const secret = process.env.SYNCBN_SECRET || randomBytes(32).toString('hex');
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
      // `--`: a script named like an option ('--help') is still the script.
      const child = spawn(process.execPath, ['--', o.script, ...o.args], {
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
          SYNCBN_SECRET: secret,
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

/** The command-line entry: parses, launches, exits with the result (usage errors: 2). */
export async function main(argv: string[]): Promise<void> {
  let command: Command;
  try {
    command = parseCommand(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
  if (command.kind !== 'launch') {
    process.stdout.write(`${command.text}\n`);
    return;
  }
  process.exitCode = await launch(command.options);
}
