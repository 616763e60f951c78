// Two hosts, emulated: network namespaces joined through a bridge
// (test/support/netns.js), each running syncbn-run with 2 gloo ranks and
// timeoutMs 20000. Training matches one process on the whole batch; a cut
// link, another SYNCBN_SECRET, loopback listen addresses and interfaces that
// are down end in errors that name the other side, within the bounds the
// issue asks (each case asserts its own). The cases run concurrently, each
// on its own network.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../lib/native';
import { createHosts, netnsSupport, Hosts, Host, RunResult } from '../support/netns';
import { requireOrSkip } from '../support/require';
import { scratchDirs } from '../support/scratch';
import { LAUNCHER, WORKER, RankResult, expectMatchesReference, scenario } from './support';

const TWO_HOST_WORKER = path.join(__dirname, 'workers', 'two_host_worker.js');
const TIMEOUT_MS = 20000;
const F64 = { rtol: 1e-9, atol: 1e-9 };
const tempDir = scratchDirs();
const netns = netnsSupport();
const describeHosts = native.features.gloo
  ? requireOrSkip('netns', netns.ok, netns.why)
  : requireOrSkip('gloo', false, `${native.features.file} was built without Gloo`);

interface Outcome {
  rank: number;
  event: 'ready' | 'done' | 'failed';
  error?: string | null;
  errors?: string[];
  /** Date.now() when it happened. */
  at?: number;
  /** Since the rank's initProcessGroup began. */
  ms?: number;
}

/** This process's environment without the variables that pick addresses or the timeout. */
function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['GLOO_SOCKET_IFNAME', 'SYNCBN_GLOO_HOSTNAME', 'SYNCBN_TIMEOUT_MS', 'MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE']) delete env[k];
  return { ...env, SYNCBN_SECRET: 'two-hosts-job', ...extra };
}

/**
 * syncbn-run on every host (2 ranks each; or on `only`), the script and its
 * arguments; the ranks' JSON lines as they come.
 */
async function job(net: Hosts, script: string[], env: (h: Host) => NodeJS.ProcessEnv, onOutcome: (o: Outcome) => void = () => undefined,
  only: Host[] = net.hosts): Promise<{ outcomes: Outcome[]; runs: RunResult[] }> {
  const outcomes: Outcome[] = [];
  const runs = await Promise.all(only.map((h) => net.run(h, process.execPath, [LAUNCHER, '--nnodes', String(net.hosts.length),
    '--node-rank', String(h.index), '--nproc-per-node', '2', '--master-addr', net.hosts[0].address, '--master-port', '29500', ...script], {
    env: env(h),
    timeoutMs: 90000,
    onLine: (line, stream) => {
      const m = /^\[rank +\d+\] (\{.*\})$/.exec(line);
      if (stream !== 'stdout' || !m) return;
      const o = JSON.parse(m[1]) as Outcome;
      outcomes.push(o);
      onOutcome(o);
    },
  })));
  return { outcomes, runs };
}

function byRank(outcomes: Outcome[], event: Outcome['event']): Outcome[] {
  return outcomes.filter((o) => o.event === event).sort((a, b) => a.rank - b.rank);
}

async function onHosts<T>(count: number, subnet: string, body: (net: Hosts) => Promise<T>): Promise<T> {
  const net = createHosts({ count, subnet });
  try {
    return await body(net);
  } finally {
    net.destroy();
  }
}

// Training on two hosts without GLOO_SOCKET_IFNAME on 192.168.77.0/24.
function trains() {
  return onHosts(2, '192.168.77', async (net) => {
    const dir = tempDir('syncbn-two-hosts-');
    const cfg = scenario({ backend: 'gloo', timeoutMs: TIMEOUT_MS, sizes: [3, 2, 4, 1], tail: [2], channels: 3, dtype: 'float64', momentum: 0.1, train: 3, evalSteps: 1, seed: 33 });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    const { runs } = await job(net, [WORKER, path.join(dir, 'config.json'), dir], () => baseEnv());
    const results: RankResult[] = [0, 1, 2, 3].filter((r) => fs.existsSync(path.join(dir, `rank${r}.json`)))
      .map((r) => JSON.parse(fs.readFileSync(path.join(dir, `rank${r}.json`), 'utf8')));
    return { cfg, runs, results };
  });
}

// SyncBatchNorm steps on both hosts until host 1's link is cut at the switch.
function linkDown() {
  return onHosts(2, '10.77.0', async (net) => {
    let ready = 0;
    let cutAt = 0;
    const { outcomes, runs } = await job(net, [TWO_HOST_WORKER, 'loop', String(TIMEOUT_MS)], () => baseEnv({ GLOO_SOCKET_IFNAME: 'eth0' }), (o) => {
      if (o.event === 'ready' && ++ready === 4) {
        net.cut(net.hosts[1]);
        cutAt = Date.now();
      }
    });
    return { outcomes, runs, cutAt };
  });
}

// Host 1 started with another SYNCBN_SECRET.
function anotherSecret() {
  return onHosts(2, '192.168.77', (net) =>
    job(net, [TWO_HOST_WORKER, 'init', String(TIMEOUT_MS)], (h) => baseEnv(h.index === 1 ? { SYNCBN_SECRET: 'another-secret' } : {})));
}

// Every rank listens on loopback, as it did when the host name resolved to 127.0.0.1.
function loopbackListeners() {
  return onHosts(2, '192.168.77', (net) =>
    job(net, [TWO_HOST_WORKER, 'init', String(TIMEOUT_MS)], () => baseEnv({ SYNCBN_GLOO_HOSTNAME: '127.0.0.1' })));
}

// Only the master's host starts: its ranks wait for the other host's.
function hostNeverComes() {
  return onHosts(2, '10.80.0', (net) =>
    job(net, [TWO_HOST_WORKER, 'init', String(TIMEOUT_MS)], () => baseEnv(), undefined, [net.hosts[0]]));
}

// The master's host is cut off before the other host starts.
function masterUnreachable() {
  return onHosts(2, '10.81.0', (net) => {
    net.cut(net.hosts[0]);
    return job(net, [TWO_HOST_WORKER, 'init', String(TIMEOUT_MS)], () => baseEnv(), undefined, [net.hosts[1]]);
  });
}

// GLOO_SOCKET_IFNAME naming an interface that is down, one without an
// address, and eth0 once its link is cut (no carrier).
function interfacesDown() {
  return onHosts(1, '10.79.0', async (net) => {
    const host = net.hosts[0];
    // Veth pairs inside the host (this kernel has no dummy interfaces); new links are down.
    net.ip(host, ['link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1p']);
    net.ip(host, ['link', 'add', 'eth2', 'type', 'veth', 'peer', 'name', 'eth2p']);
    for (const l of ['eth2p', 'eth2']) {
      net.ip(host, ['link', 'set', l, 'addrgenmode', 'none']); // no IPv6 link-local address either
      net.ip(host, ['link', 'set', l, 'up']);
    }
    const check = async (iface: string) => {
      const r = await net.run(host, process.execPath, [TWO_HOST_WORKER, 'iface', iface], { env: baseEnv({ RANK: '0' }), timeoutMs: 30000 });
      const line = r.stdout.trim().split('\n').pop() ?? '';
      return line.startsWith('{') ? (JSON.parse(line) as Outcome).errors ?? [] : [`no outcome (code ${r.code}, signal ${r.signal}): ${r.stdout}${r.stderr}`];
    };
    const down = await check('eth1');
    const bare = await check('eth2');
    net.cut(host);
    const unplugged = await check('eth0');
    return { down, bare, unplugged };
  });
}

describeHosts('two emulated hosts, 2 gloo ranks each, timeoutMs 20000', () => {
  jest.setTimeout(120000);
  const runs: {
    trains?: ReturnType<typeof trains>;
    linkDown?: ReturnType<typeof linkDown>;
    anotherSecret?: ReturnType<typeof anotherSecret>;
    loopbackListeners?: ReturnType<typeof loopbackListeners>;
    interfacesDown?: ReturnType<typeof interfacesDown>;
    hostNeverComes?: ReturnType<typeof hostNeverComes>;
    masterUnreachable?: ReturnType<typeof masterUnreachable>;
  } = {};

  beforeAll(() => {
    // Concurrently (each on its own network): the link-down case alone waits 20 s.
    runs.linkDown = linkDown();
    runs.hostNeverComes = hostNeverComes();
    runs.masterUnreachable = masterUnreachable();
    runs.trains = trains();
    runs.anotherSecret = anotherSecret();
    runs.loopbackListeners = loopbackListeners();
    runs.interfacesDown = interfacesDown();
    for (const p of Object.values(runs)) p.catch(() => undefined);
  });

  test('without GLOO_SOCKET_IFNAME on 192.168.77.0/24 it trains, and every rank matches one process on the whole batch', async () => {
    const { cfg, runs: launchers, results } = await runs.trains!;
    expect(launchers.map((r) => r.code)).toEqual([0, 0]);
    expect(results.map((r) => r.rank)).toEqual([0, 1, 2, 3]);
    expectMatchesReference(cfg, results, F64);
  });

  test('a link cut at the switch: both hosts fail within 25 s of the cut, each naming the other side with its address', async () => {
    const { outcomes, runs: launchers, cutAt } = await runs.linkDown!;
    expect(cutAt).toBeGreaterThan(0);
    const failed = byRank(outcomes, 'failed');
    expect(failed.map((o) => o.rank)).toEqual([0, 1, 2, 3]);
    for (const o of failed) {
      const since = o.at! - cutAt;
      // Bounded by the timeout (20 s) plus the roll call's slack; no sooner than half of it.
      expect([o.rank, since > 10000 && since < 25000]).toEqual([o.rank, true]);
      if (o.rank < 2) {
        expect(o.error).toMatch(/gloo all_gather \(rank [01] of 4, timeout 20000 ms\) failed: ranks 2, 3 \(at 10\.77\.0\.2\) did not reach it within the timeout, or lost the network to this host \(ranks \[0, 1\] did\): .*Read timeout/);
      } else {
        expect(o.error).toMatch(/gloo all_gather \(rank [23] of 4, timeout 20000 ms\) failed: no word from ranks 0, 1 \(at 10\.77\.0\.1\) within the timeout, and the rendezvous store on their host \(10\.77\.0\.1:29500\) does not answer either/);
      }
    }
    // While they waited, each rank said whom it awaited (after 10 s).
    expect(launchers[0].stderr).toMatch(/\[rank 0\] syncbn: rank 0 of 4 \(world\) has waited 10 s \(timeout 20 s\) in gloo all_gather #\d+: awaiting ranks 2, 3 \(at 10\.77\.0\.2\), which have not reached it/);
    expect(launchers[1].stderr).toMatch(/\[rank 2\] syncbn: rank 2 of 4 \(world\) has waited 10 s \(timeout 20 s\) in gloo all_gather #\d+: the rendezvous store at 10\.77\.0\.1:29500, on the host of ranks 0, 1 \(at 10\.77\.0\.1\), does not answer/);
  });

  test("another SYNCBN_SECRET on one host: the master's host fails within 10 s naming the refused rank's address and the secret", async () => {
    const { outcomes } = await runs.anotherSecret!;
    const failed = byRank(outcomes, 'failed');
    expect(failed.map((o) => o.rank)).toEqual([0, 1, 2, 3]);
    for (const o of failed) {
      expect(o.ms).toBeLessThan(10000);
      if (o.rank < 2) expect(o.error).toMatch(/^initProcessGroup: a rank from 192\.168\.77\.2 was refused: its SYNCBN_SECRET differs from this rank's/);
      else expect(o.error).toMatch(/rendezvous store at 192\.168\.77\.1:29500 \(the store refused this rank's first request .*SYNCBN_SECRET \(or secret option\) differs from rank 0's\)/);
    }
  });

  test('loopback listen addresses on two hosts: every rank fails within 25 s, naming the peer and GLOO_SOCKET_IFNAME', async () => {
    const { outcomes } = await runs.loopbackListeners!;
    const failed = byRank(outcomes, 'failed');
    expect(failed.map((o) => o.rank)).toEqual([0, 1, 2, 3]);
    for (const o of failed) {
      expect(o.ms).toBeLessThan(25000);
      expect(o.error).toMatch(/^gloo rendezvous of rank \d of 4: .*(could not connect with|no Gloo connection with) rank \d/);
      expect(o.error).toMatch(/listens on 127\.0\.0\.1, a loopback address that other hosts cannot reach: set GLOO_SOCKET_IFNAME/);
    }
  });

  test('a host that never comes: the master\'s ranks say whom they await, then fail at the timeout naming them', async () => {
    const { outcomes, runs: launchers } = await runs.hostNeverComes!;
    const failed = byRank(outcomes, 'failed');
    expect(failed.map((o) => o.rank)).toEqual([0, 1]);
    for (const o of failed) {
      expect(o.error).toBe("initProcessGroup: rendezvous timed out after 20000 ms: ranks [2, 3] of 4 never reached 'join'");
      expect([o.rank, o.ms! >= 19500 && o.ms! < 22500]).toEqual([o.rank, true]);
    }
    expect(launchers[0].stderr).toMatch(/\[rank 0\] syncbn: rank 0 of 4 has waited 10 s \(timeout 20 s\) at the rendezvous \('join'\) for ranks \[2, 3\]\n/);
  });

  test("the master's host cut off: the other host's ranks fail at the timeout, naming the store's address", async () => {
    const { outcomes } = await runs.masterUnreachable!;
    const failed = byRank(outcomes, 'failed');
    expect(failed.map((o) => o.rank)).toEqual([2, 3]);
    for (const o of failed) {
      expect(o.error).toMatch(/^could not reach the rendezvous store at 10\.81\.0\.1:29500 within 20000 ms \(.*\); is rank 0 running with the same MASTER_ADDR\/MASTER_PORT\?$/);
      expect([o.rank, o.ms! >= 19500 && o.ms! < 22500]).toEqual([o.rank, true]);
    }
  });

  test('an interface that is down is called down (also one without an address, and one without a link)', async () => {
    const { down, bare, unplugged } = await runs.interfacesDown!;
    expect(down[0]).toMatch(/^initProcessGroup: GLOO_SOCKET_IFNAME=eth1 is down \(bring it up: ip link set eth1 up; or name an interface that is up: lo, eth0\)/);
    expect(down[1]).toMatch(/network interface 'eth1' \(GLOO_SOCKET_IFNAME\) is down/);
    expect(bare[0]).toBe('initProcessGroup: GLOO_SOCKET_IFNAME=eth2 has no IP address');
    expect(bare[1]).toMatch(/network interface 'eth2' \(GLOO_SOCKET_IFNAME\) has no IP address/);
    expect(unplugged[0]).toMatch(/GLOO_SOCKET_IFNAME=eth0 is up but has no link \(no carrier/);
    expect(unplugged[1]).toMatch(/network interface 'eth0' \(GLOO_SOCKET_IFNAME\) is up but has no link/);
  });
});
