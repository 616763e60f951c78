// The hostile checkpoint corpus (issue #31; hostile/generate.js made it):
// every file is loaded by the compiled package in a child process of its
// own, with a time and memory limit, and must end in an error that names the
// file and says what was wrong (manifest.json's pattern), or load to the
// value the generator built; never a signal, a hang, a polluted
// Object.prototype or a peak RSS beyond 3x the file plus 400 MB. The flood
// files (tens of MB each) are made here, one at a time, and removed after.
// HOSTILE_REPORT=<file> writes every file's outcome, time and peak RSS as JSON.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { scratchDirs } from '../support/scratch';

const DIR = path.join(__dirname, 'hostile');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { floods, sha1 } = require('./hostile/generate.js') as {
  floods(): Array<{ file: string; cls: string; why: string; make(f: string): void; expect: Expect }>;
  sha1(text: string): string;
};

interface Expect {
  error?: string;
  not?: string;
  load?: { summary?: unknown; summaryLength?: number; summarySha1?: string };
}
interface Case {
  file: string;
  path: string;
  cls: string;
  why: string;
  expect: Expect;
  /** A number, or 'Infinity' (JSON has no Infinity). */
  maxBytes?: number | 'Infinity';
  make?: (f: string) => void;
}
interface Outcome {
  outcome?: 'load' | 'error';
  message?: string;
  summary?: unknown;
  ms?: number;
  peakRss?: number;
  polluted?: boolean;
}
interface Result {
  c: Case;
  size: number;
  out: Outcome | null;
  code: number | null;
  signal: string | null;
  killed: string | null;
  peak: number;
  stderr: string;
}

// Far beyond any file's time here (the slowest takes a few seconds): a file still loading then is hanging.
const HANG_MS = 120_000;
const rssLimit = (size: number): number => 3 * size + 400 * 2 ** 20;

// Under the CI's sanitizer run (libasan preloaded, a sanitizer build of the
// addon), the children load the package as users do: the sanitizer's
// allocator and quarantine would be measured as the reader's memory.
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (/asan/.test(env.LD_PRELOAD ?? '')) {
    for (const k of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'SYNCBN_PREBUILD']) delete env[k];
  }
  return env;
}

/**
 * Peak and current RSS of the child, from /proc; 0 when it is gone, or not yet
 * the loader (between fork and exec, /proc shows this jest worker).
 */
function rssOf(pid: number): { hwm: number; rss: number } {
  try {
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('load_one.js')) return { hwm: 0, rss: 0 };
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return { hwm: 0, rss: 0 };
  }
}

function loadInChild(c: Case): Promise<Result> {
  const size = fs.statSync(c.path).size;
  const limit = rssLimit(size);
  const args = [path.join(DIR, 'load_one.js'), c.path, ...(c.maxBytes !== undefined ? [String(c.maxBytes)] : [])];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    let killed: string | null = null;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const watch = setInterval(() => {
      const { hwm, rss } = rssOf(child.pid!);
      peak = Math.max(peak, hwm);
      if (rss > limit && killed === null) {
        killed = `RSS ${rss} bytes, over the limit of ${limit}`;
        child.kill('SIGKILL');
      }
    }, 10);
    const timer = setTimeout(() => {
      killed = `still running after ${HANG_MS} ms`;
      child.kill('SIGKILL');
    }, HANG_MS);
    child.on('close', (code, signal) => {
      clearInterval(watch);
      clearTimeout(timer);
      let out: Outcome | null = null;
      try {
        out = JSON.parse(stdout) as Outcome;
      } catch {
        out = null;
      }
      // The load's own peak where the child lived to say it (not the summary's after it); else what /proc showed.
      resolve({ c, size, out, code, signal, killed, peak: out?.peakRss ?? peak, stderr });
    });
  });
}

/** What is wrong with a result, or null. */
function problem(r: Result): string | null {
  const { c, out } = r;
  if (r.killed !== null) return `killed: ${r.killed}`;
  if (r.signal !== null || r.code !== 0 || out === null) return `the child ended with ${r.signal ?? `code ${r.code}`}: ${r.stderr.slice(-2000)}`;
  if (r.peak > rssLimit(r.size)) return `peak RSS ${r.peak} bytes, over 3x the file (${r.size} bytes) plus 400 MB`;
  if (out.polluted) return 'Object.prototype changed';
  if (c.expect.error !== undefined) {
    if (out.outcome !== 'error') return `loaded, but should have been refused with /${c.expect.error}/`;
    const m = out.message ?? '';
    if (!m.startsWith(`${c.path}: `)) return `the error does not start with the file's path: ${m.slice(0, 500)}`;
    if (!new RegExp(c.expect.error).test(m)) return `the error does not match /${c.expect.error}/: ${m.slice(0, 1000)}`;
    if (c.expect.not !== undefined && new RegExp(c.expect.not).test(m)) return `the error matches /${c.expect.not}/, which it must not: ${m}`;
    if (m.length > 1500) return `the error is ${m.length} characters long`;
    return null;
  }
  if (out.outcome !== 'load') return `refused, but should have loaded: ${out.message}`;
  const want = c.expect.load!;
  if (want.summary !== undefined) {
    try {
      expect(out.summary).toEqual(want.summary);
    } catch (e) {
      return `loaded a different value: ${(e as Error).message.slice(0, 2000)}`;
    }
    return null;
  }
  const text = JSON.stringify(out.summary);
  if (text.length !== want.summaryLength || sha1(text) !== want.summarySha1) {
    return `loaded a different value (summary of ${text.length} characters, SHA-1 ${sha1(text)}; expected ${want.summaryLength}, ${want.summarySha1})`;
  }
  return null;
}

/** Runs `jobs` two at a time (this machine's cores). */
async function pool<T, R>(jobs: T[], width: number, run: (job: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await run(jobs[i]);
    }
  }));
  return results;
}

const scratch = scratchDirs();
const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'manifest.json'), 'utf8')) as Array<{ file: string; class: string; why: string; expect: Expect; maxBytes?: number | 'Infinity' }>;
const corpus: Case[] = manifest.map((m) => ({ file: m.file, path: path.join(DIR, 'corpus', m.file), cls: m.class, why: m.why, expect: m.expect, maxBytes: m.maxBytes }));
const floodDir = scratch('syncbn-hostile-');
const floodCases: Case[] = floods().map((f) => ({ ...f, path: path.join(floodDir, f.file) }));
const classes = [...new Set([...corpus, ...floodCases].map((c) => c.cls))];
const results = new Map<Case, Result>();

beforeAll(async () => {
  await pool(corpus, 2, async (c) => results.set(c, await loadInChild(c)));
  // Floods one at a time: each is made, loaded and removed before the next.
  await pool(floodCases, 1, async (c) => {
    c.make!(c.path);
    try {
      results.set(c, await loadInChild(c));
    } finally {
      fs.rmSync(c.path, { force: true });
    }
  });
  const rows = classes.map((cls) => {
    const rs = [...results.values()].filter((r) => r.c.cls === cls);
    const worst = (f: (r: Result) => number): Result => rs.reduce((a, b) => (f(b) > f(a) ? b : a));
    const slow = worst((r) => r.out?.ms ?? Infinity);
    const big = worst((r) => r.peak);
    return `  ${cls.padEnd(20)} ${String(rs.length).padStart(3)} files: ${rs.filter((r) => r.out?.outcome === 'load').length} load, ` +
      `${rs.filter((r) => r.out?.outcome === 'error').length} refused; worst ${(slow.out?.ms ?? NaN).toFixed(0)} ms (${slow.c.file}), ` +
      `peak RSS ${(big.peak / 2 ** 20).toFixed(0)} MiB (${big.c.file}, ${(big.size / 2 ** 20).toFixed(1)} MiB)`;
  });
  process.stdout.write(`hostile checkpoints, per class:\n${rows.join('\n')}\n`);
  if (process.env.HOSTILE_REPORT) {
    fs.writeFileSync(process.env.HOSTILE_REPORT, JSON.stringify([...results.values()].map((r) => ({
      file: r.c.file, class: r.c.cls, why: r.c.why, size: r.size, outcome: r.out?.outcome, message: r.out?.message, ms: r.out?.ms, peakRss: r.peak,
      problem: problem(r),
    })), null, 1));
  }
}, 600_000);

describe.each(classes)('hostile checkpoints: %s', (cls) => {
  test('every file: a named refusal or the right value, no signal, no hang, peak RSS <= 3x file + 400 MB', () => {
    const rs = [...results.values()].filter((r) => r.c.cls === cls);
    expect(rs.length).toBe([...corpus, ...floodCases].filter((c) => c.cls === cls).length);
    const bad = rs.map((r) => [r.c.file, problem(r)]).filter(([, p]) => p !== null);
    if (bad.length > 0) throw new Error(`${bad.length} of ${rs.length} files:\n${bad.map(([f, p]) => `${f}: ${p}`).join('\n')}`);
  });
});

describe('load options and what load returns, in process', () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { load, save, Tensor } = require('../../lib') as typeof import('../../lib');
  const corpusFile = (name: string): string => path.join(DIR, 'corpus', name);

  test('maxBytes must be a positive integer or Infinity', () => {
    for (const bad of [0, -1, 1.5, NaN, '1e9', null]) {
      expect(() => load(corpusFile('view-expand-1000.pt'), { maxBytes: bad as number })).toThrow(/load: maxBytes must be a positive integer \(or Infinity\)/);
    }
    expect(Object.keys(load(corpusFile('view-expand-1000.pt'), { maxBytes: Infinity }))).toEqual(['e']);
  });

  test('a stack that runs out inside load gives an error naming the file', () => {
    // 1000 levels of tuples: converting them takes about 1000 frames. load is called ever deeper
    // until it, not the recursion around it, runs out of stack.
    const file = corpusFile('tuple1-depth-1000.pt');
    const deep = (n: number): unknown => {
      if (n > 0) return deep(n - 1);
      try {
        load(file);
        return null;
      } catch (e) {
        return e;
      }
    };
    let error: Error | null = null;
    for (let n = 0; error === null; n += 200) {
      try {
        error = deep(n) as Error | null;
      } catch {
        break; // the recursion around load ran out first
      }
    }
    expect(error?.message).toMatch(/: ran out of stack while reading it \(nested too deep\?\): Maximum call stack size exceeded$/);
    expect(error?.message.startsWith(`${file}: `)).toBe(true);
  });

  test("a dict with the key '__proto__' round-trips through save: just a key, both ways", () => {
    const sd = load(corpusFile('proto-key-state-dict.pt')) as unknown as Record<string, unknown>;
    expect(Object.getPrototypeOf(sd)).toBeNull();
    expect(Object.keys(sd)).toEqual(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
    expect(sd['__proto__']).toBeInstanceOf(Tensor);
    expect(sd instanceof Tensor).toBe(false);
    const again = path.join(scratch('syncbn-proto-'), 'again.pt');
    save(sd, again);
    const back = load(again) as unknown as Record<string, unknown>;
    expect(Object.keys(back)).toEqual(Object.keys(sd));
    expect(Array.from((back['__proto__'] as InstanceType<typeof Tensor>).toArray())).toEqual([1, 2]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
