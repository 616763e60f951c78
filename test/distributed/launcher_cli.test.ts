// syncbn-run's command line: node:util parseArgs (strict), torchrun's option
// names, usage for -h/--help, the version, and clear errors with exit code 2.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCommand } from '../../lib/distributed/launcher';
import { LAUNCHER, ROOT, runNode } from './support';

const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('syncbn-run command line', () => {
  test('options in both spellings, then the script and its own arguments untouched', () => {
    const c = parseCommand(['--nproc_per_node', '3', '--nnodes=2', '--node-rank', '1', '--master-addr', 'h', '--master_port=1234', 'train.js', '--lr', '0.1', '-h']);
    expect(c).toEqual({
      kind: 'launch',
      options: { nprocPerNode: 3, nnodes: 2, nodeRank: 1, masterAddr: 'h', masterPort: 1234, script: 'train.js', args: ['--lr', '0.1', '-h'] },
    });
    expect(parseCommand(['--', '-odd-name.js', 'x'])).toMatchObject({ options: { script: '-odd-name.js', args: ['x'], nprocPerNode: 1, masterPort: 29500 } });
  });

  test('-h, --help and --version are answered, not launched', () => {
    expect(parseCommand(['-h'])).toMatchObject({ kind: 'help', text: expect.stringMatching(/^usage: syncbn-run/) });
    expect(parseCommand(['--help', 'x.js'])).toMatchObject({ kind: 'help' });
    expect(parseCommand(['--version'])).toEqual({ kind: 'version', text: `syncbn ${version}` });
  });

  test.each([
    [['--bogus', 'x.js'], /Unknown option '--bogus'/],
    [['-x'], /Unknown option '-x'/],
    [['--nproc-per-node'], /argument missing/],
    [['--nproc-per-node', 'two', 'x.js'], /--nproc-per-node must be an integer >= 1, got 'two'/],
    [['--nproc-per-node=0', 'x.js'], /--nproc-per-node must be an integer >= 1, got '0'/],
    [['--master-port', '70000', 'x.js'], /--master-port must be a TCP port \(1-65535\), got 70000/],
    [['--nnodes', '2', '--node-rank', '2', 'x.js'], /--node-rank 2 is outside --nnodes 2/],
    [['--version=1'], /--version' does not take an argument/],
    [[], /no script given/],
  ])('%j is refused with the usage', (argv, why) => {
    expect(() => parseCommand(argv)).toThrow(why);
    expect(() => parseCommand(argv)).toThrow(/usage: syncbn-run/);
  });

  test('the installed command: usage and version on stdout with status 0, errors on stderr with status 2', async () => {
    const help = await runNode([LAUNCHER, '-h']);
    expect([help.code, help.stderr]).toEqual([0, '']);
    expect(help.stdout).toMatch(/^usage: syncbn-run .*\n[\s\S]*--version/);
    const v = await runNode([LAUNCHER, '--version']);
    expect([v.code, v.stdout, v.stderr]).toEqual([0, `syncbn ${version}\n`, '']);
    const bad = await runNode([LAUNCHER, '--bogus', 'x.js']);
    expect([bad.code, bad.stdout]).toEqual([2, '']);
    expect(bad.stderr).toMatch(/^syncbn-run: Unknown option '--bogus'\nusage: syncbn-run/);
  });
});

describe('syncbn-run explains itself', () => {
  const script = path.join(ROOT, 'test', 'distributed', 'workers', 'argv_worker.js');

  test('--help lists the environment the launcher and its ranks read', () => {
    const c = parseCommand(['--help']);
    expect(c.kind).toBe('help');
    for (const name of ['SYNCBN_SECRET', 'GLOO_SOCKET_IFNAME', 'SYNCBN_GLOO_HOSTNAME', 'SYNCBN_TIMEOUT_MS', 'MASTER_ADDR', 'MASTER_PORT', 'LOCAL_RANK']) {
      expect([name, (c as { text: string }).text.includes(name)]).toEqual([name, true]);
    }
  });

  test('--nnodes > 1 with a loopback master address is refused before any rank starts', async () => {
    for (const addr of [[], ['--master-addr', 'localhost'], ['--master-addr', '127.0.1.1']]) {
      const r = await runNode([LAUNCHER, '--nnodes', '2', ...addr, script], { SYNCBN_SECRET: 'shared' });
      expect([r.code, r.stdout]).toEqual([2, '']);
      expect(r.stderr).toMatch(/^syncbn-run: --nnodes 2 with --master-addr (127\.0\.0\.1|localhost|127\.0\.1\.1), a loopback address: the other nodes cannot reach it/);
    }
  });

  test('after `--` the script comes, and every later argument is its own: `-- --help` is a script name, not node --help', async () => {
    const r = await runNode([LAUNCHER, '--', script, '--help', '--', '-x']);
    expect([r.code, r.stderr, r.stdout]).toEqual([0, '', '[rank 0] ["--help","--","-x"]\n']);
    const bad = await runNode([LAUNCHER, '--', '--help']);
    expect([bad.code, bad.stdout]).toEqual([2, '']);
    expect(bad.stderr).toBe("syncbn-run: cannot find the script '--help' (the launcher's options come first, then the script, then its arguments)\n");
  });
});
