// Emulated hosts for tests and benchmarks: Linux network namespaces, each
// with one interface (eth0) joined by a veth pair to a bridge that lives in a
// namespace of its own (the switch). Nothing is added to this machine's own
// namespace: the hosts have only their own addresses and routes, and a rank
// in one reaches another host only through the switch. Needs root and
// iproute2 (`ip`); netnsSupport() says whether this machine has them.
//
//   const { createHosts } = require('./netns');
//   const net = createHosts({ count: 2, subnet: '192.168.77' });
//   const child = net.spawn(net.hosts[0], process.execPath, ['rank.js']);
//   net.cut(net.hosts[1]);      // its switch port goes down
//   net.destroy();              // also done on exit, on SIGINT/SIGTERM/SIGHUP
//
// Namespaces are named sbn-<pid>-<n>-...; those of a process that no longer
// runs (one killed with SIGKILL) are removed by the next createHosts().
'use strict';

const { execFileSync, spawn } = require('node:child_process');

const PREFIX = 'sbn-';
const live = new Set();
let created = 0;
let support = null;

function ip(args) {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 });
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Kills every process in namespace `ns` (all of them started here) and deletes it. */
function removeNamespace(ns) {
  try {
    for (const pid of ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  } catch {
    // The namespace is gone already.
  }
  try {
    ip(['netns', 'del', ns]);
  } catch {
    // Idem.
  }
}

function namespaces() {
  try {
    return ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
  } catch {
    return [];
  }
}

/** Removes the namespaces left by processes that died without cleaning up. */
function removeStale() {
  for (const ns of namespaces()) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(ns);
    if (m && Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) removeNamespace(ns);
  }
}

/**
 * Whether emulated hosts work here: { ok, why }, `why` saying what is
 * missing (not Linux, not root, no iproute2, namespaces refused).
 */
function netnsSupport() {
  if (support) return support;
  const no = (why) => (support = { ok: false, why });
  if (process.platform !== 'linux') return no(`network namespaces need Linux (this is ${process.platform})`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return no(`network namespaces need root (uid ${process.getuid()})`);
  try {
    ip(['-V']);
  } catch {
    return no('iproute2 is not installed (no `ip` command)');
  }
  const probe = `${PREFIX}${process.pid}-probe`;
  try {
    ip(['netns', 'add', probe]);
    ip(['-n', probe, 'link', 'add', 'br0', 'type', 'bridge']);
  } catch (e) {
    return no(`\`ip netns\` does not work here: ${String(e.stderr || e.message).trim()}`);
  } finally {
    removeNamespace(probe);
  }
  return (support = { ok: true, why: '' });
}

function onExit() {
  for (const n of [...live]) n.destroy();
}

function onSignal(signal) {
  onExit();
  process.removeListener(signal, onSignal);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function watchExit() {
  if (live.size > 0) return;
  process.on('exit', onExit);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, onSignal);
}

function unwatchExit() {
  if (live.size > 0) return;
  process.removeListener('exit', onExit);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeListener(s, onSignal);
}

class Hosts {
  constructor(name, count, subnet) {
    this.switch = `${name}-sw`;
    this.hosts = Array.from({ length: count }, (_, i) => ({
      index: i,
      ns: `${name}-h${i}`,
      address: `${subnet}.${i + 1}`,
      iface: 'eth0',
      port: `p${i}`,
    }));
    this.subnet = subnet;
    this.destroyed = false;
  }

  /** Runs `ip -n <host's namespace> ...args` (e.g. ['link', 'add', 'eth1', 'type', 'dummy']); its stdout. */
  ip(host, args) {
    return ip(['-n', host.ns, ...args]);
  }

  /** Starts `command args` inside `host` (through `ip netns exec`); options as child_process.spawn's. */
  spawn(host, command, args = [], options = {}) {
    return spawn('ip', ['netns', 'exec', host.ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  }

  /**
   * Runs `command args` inside `host` to its end, or kills it after
   * `timeoutMs`: { code, signal, stdout, stderr, ms }. `onLine(line, stream)`
   * sees each output line as it comes.
   */
  run(host, command, args = [], { env, timeoutMs = 120000, onLine } = {}) {
    const start = Date.now();
    const child = this.spawn(host, command, args, { env: env ?? process.env });
    return new Promise((resolve) => {
      const out = { stdout: '', stderr: '' };
      for (const stream of ['stdout', 'stderr']) {
        let partial = '';
        child[stream].on('data', (d) => {
          out[stream] += d;
          if (!onLine) return;
          const lines = (partial + d).split('\n');
          partial = lines.pop();
          for (const l of lines) onLine(l, stream);
        });
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      // 'close', not 'exit': output may still be in the pipes at exit.
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout: out.stdout, stderr: out.stderr, ms: Date.now() - start });
      });
    });
  }

  /** The host's link goes down at the switch: its packets, both ways, go nowhere; its own interface stays up. */
  cut(host) {
    ip(['-n', this.switch, 'link', 'set', host.port, 'down']);
  }

  /** Undoes cut(). */
  restore(host) {
    ip(['-n', this.switch, 'link', 'set', host.port, 'up']);
  }

  /** Limits what `host` sends (tc tbf on its eth0): e.g. { rate: '100mbit', burst: '32kbit', latency: '50ms' }. */
  shape(host, { rate, burst = '32kbit', latency = '50ms' }) {
    this.ip(host, ['link', 'set', host.iface, 'txqueuelen', '1000']);
    execFileSync('tc', ['-n', host.ns, 'qdisc', 'replace', 'dev', host.iface, 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', latency],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 });
  }

  /** Kills the processes inside, removes the namespaces (and so the links and the bridge). Idempotent. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const h of this.hosts) removeNamespace(h.ns);
    removeNamespace(this.switch);
    live.delete(this);
    unwatchExit();
  }
}

/**
 * `count` hosts on `subnet`.0/24 (host i at `subnet`.(i+1)), each with lo
 * and eth0 up, joined through one bridge. Networks are independent: two may
 * use the same subnet.
 */
function createHosts({ count, subnet = '10.77.0' }) {
  const s = netnsSupport();
  if (!s.ok) throw new Error(`emulated hosts are not available: ${s.why}`);
  if (!Number.isInteger(count) || count < 1 || count > 250) throw new RangeError(`count must be an integer from 1 to 250, got ${count}`);
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new TypeError(`subnet must be the first three octets, like '10.77.0', got '${subnet}'`);
  removeStale();
  const net = new Hosts(`${PREFIX}${process.pid}-${++created}`, count, subnet);
  watchExit();
  live.add(net);
  try {
    ip(['netns', 'add', net.switch]);
    ip(['-n', net.switch, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', net.switch, 'link', 'set', 'br0', 'up']);
    for (const h of net.hosts) {
      ip(['netns', 'add', h.ns]);
      ip(['link', 'add', 'name', h.iface, 'netns', h.ns, 'type', 'veth', 'peer', 'name', h.port, 'netns', net.switch]);
      ip(['-n', net.switch, 'link', 'set', h.port, 'master', 'br0']);
      ip(['-n', net.switch, 'link', 'set', h.port, 'up']);
      ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', h.iface]);
      ip(['-n', h.ns, 'link', 'set', h.iface, 'up']);
    }
  } catch (e) {
    net.destroy();
    throw new Error(`could not create the emulated hosts: ${String(e.stderr || e.message).trim()}`);
  }
  return net;
}

module.exports = { createHosts, netnsSupport };
