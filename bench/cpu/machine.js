// What the numbers were measured on, and its memory bandwidth measured in
// this process with the kernels' thread count (the roofline).
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { native } = require(path.resolve(__dirname, '../../dist/native'));

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

/** Best of several copies and triads over arrays far larger than the caches, in GB/s (bytes read + written). */
function bandwidth(quick) {
  const n = quick ? 1 << 20 : 32 << 20; // 128 MiB per array
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n).fill(2);
  const c = new Float32Array(n).fill(3);
  const best = (fn, bytes) => {
    let top = 0;
    for (let i = 0; i < (quick ? 2 : 8); i++) {
      const t0 = process.hrtime.bigint();
      fn();
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      top = Math.max(top, bytes / s / 1e9);
    }
    return top;
  };
  const copy = best(() => native.streamCopy(a, b), 2 * 4 * n);
  const triad = best(() => native.streamTriad(a, b, c, 0.5), 3 * 4 * n);
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
  const x = new Float32Array(numel).fill(1);
  const y = new Float32Array(numel).fill(2);
  const time = (k) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < k; i++) native.streamCopy(x, y);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const once = Math.max(time(quick ? 1 : 10) / (quick ? 1 : 10), 1e-4);
  const k = quick ? 1 : Math.max(1, Math.min(1000, Math.ceil(2 / once)));
  const samples = Array.from({ length: quick ? 3 : 15 }, () => time(k) / k).sort((a, b) => a - b);
  return samples[samples.length >> 1];
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
