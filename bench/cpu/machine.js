// What the numbers were measured on, and its memory bandwidth measured with
// the kernels' thread count (the roofline) by bench/cpu/bandwidth.cpp, which
// this compiles on first use: the probes are the benchmark's, not the addon's.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { getNumThreads } = require(path.resolve(__dirname, '../../dist'));

const ROOT = path.resolve(__dirname, '../..');
const PROBE_SOURCES = [path.join(__dirname, 'bandwidth.cpp'), path.join(ROOT, 'native/kernels/cpu/threading.h')];
const PROBE = path.join(ROOT, 'build', 'bench', 'bandwidth');

function cpuModel() {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const m = /model name\s*:\s*(.+)/.exec(info);
    if (m) return m[1].trim();
  } catch {
    // Not Linux.
  }
  return os.cpus()[0]?.model ?? 'unknown CPU';
}

function cacheSizes() {
  const out = [];
  try {
    const base = '/sys/devices/system/cpu/cpu0/cache';
    for (const idx of fs.readdirSync(base).filter((d) => d.startsWith('index'))) {
      const level = fs.readFileSync(`${base}/${idx}/level`, 'utf8').trim();
      const type = fs.readFileSync(`${base}/${idx}/type`, 'utf8').trim();
      const size = fs.readFileSync(`${base}/${idx}/size`, 'utf8').trim();
      if (type !== 'Instruction') out.push(`L${level} ${size}`);
    }
  } catch {
    // Unknown.
  }
  return out.join(', ');
}

function describe(threads) {
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    threads,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    caches: cacheSizes(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  };
}

/** The probe program, compiled when missing or older than its sources; throws saying why it cannot be. */
function probe() {
  const built = fs.existsSync(PROBE) ? fs.statSync(PROBE).mtimeMs : 0;
  if (PROBE_SOURCES.every((f) => fs.statSync(f).mtimeMs <= built)) return PROBE;
  fs.mkdirSync(path.dirname(PROBE), { recursive: true });
  const cxx = process.env.CXX || 'c++';
  // Written aside and renamed, so a concurrent run never executes half a file.
  const tmp = `${PROBE}.${process.pid}`;
  // The kernels' flags (CMakeLists.txt); threading.h is theirs too.
  const args = ['-O3', '-fno-math-errno', '-fopenmp', '-std=c++17', '-I', path.dirname(PROBE_SOURCES[1]), PROBE_SOURCES[0], '-o', tmp];
  const r = spawnSync(cxx, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`bench/cpu/bandwidth.cpp did not compile with ${cxx} (set CXX to a C++17 compiler with OpenMP): ` +
      `${r.error ? r.error.message : r.stderr.trim()}`);
  }
  fs.renameSync(tmp, PROBE);
  return PROBE;
}

function runProbe(args) {
  return execFileSync(probe(), [String(getNumThreads()), ...args.map(String)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
}

/** Best of several copies and triads over arrays far larger than the caches, in GB/s (bytes read + written). */
function bandwidth(quick) {
  const n = quick ? 1 << 20 : 32 << 20; // 128 MiB per array
  const [copy, triad] = runProbe(['roofline', n, quick ? 2 : 8]);
  return { copyGBs: copy, triadGBs: triad, roofGBs: Math.max(copy, triad), arrayMiB: (4 * n) / 2 ** 20 };
}

/**
 * The machine's own copy of one shape's bytes, x to y, with the kernels'
 * threads: the least a pass that reads x once and writes y once can cost at
 * this size, in cache or not (the main-memory roofline above says nothing
 * about a 1 MiB tensor that lives in L2 and L3). Warm arrays, the median of
 * samples of back-to-back copies lasting at least 2 ms, in ms per copy.
 */
function copyFloor(numel, quick) {
  return runProbe(['copy', numel, quick ? 1 : 0])[0];
}

/**
 * CPU time in seconds since boot, from /proc: the whole machine's busy time
 * (all cores), and the user + system time of the given processes (every
 * thread). Null off Linux.
 */
function cpuTimes(pids) {
  try {
    const tick = 100; // USER_HZ: 100 on every Linux this runs on.
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    const busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] || 0);
    const procs = {};
    for (const [name, pid] of Object.entries(pids)) {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs[name] = (Number(f[11]) + Number(f[12])) / tick;
    }
    return { busy: busy / tick, procs, at: process.hrtime.bigint() };
  } catch {
    return null;
  }
}

/** Cores kept busy between two cpuTimes() readings: the whole machine, each process, and everything else. */
function coresBusy(a, b) {
  if (!a || !b) return null;
  const wall = Number(b.at - a.at) / 1e9;
  const out = { machine: (b.busy - a.busy) / wall };
  let ours = 0;
  for (const name of Object.keys(a.procs)) {
    out[name] = (b.procs[name] - a.procs[name]) / wall;
    ours += out[name];
  }
  out.others = Math.max(0, out.machine - ours);
  return out;
}

module.exports = { describe, bandwidth, copyFloor, cpuTimes, coresBusy };
