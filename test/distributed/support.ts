// Runs distributed scenarios (worker threads or processes under syncbn-run)
// and the float64 reference (reference.ts) every rank must match.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { randn, manualSeed, FloatingDType, MemoryFormat } from '../../lib';
import { assertClose, Tolerance } from '../support/assert_close';
import { referenceBatchNorm } from './reference';

export const ROOT = path.resolve(__dirname, '../..');
export const WORKER = path.join(__dirname, 'workers', 'syncbn_worker.js');
export const LAUNCHER = path.join(ROOT, 'bin', 'syncbn-run.js');

export interface StepData {
  training: boolean;
  x: number[];
  dy: number[];
}

export interface Scenario {
  backend: 'threads' | 'gloo';
  name?: string;
  initMethod?: string;
  timeoutMs: number;
  sizes: number[];
  shape: number[];
  channels: number;
  /** The inputs' dtype, and the layer's unless layerDtype says otherwise. */
  dtype: FloatingDType;
  /** float32 for a layer that takes half inputs (mixed precision). */
  layerDtype?: FloatingDType;
  memoryFormat?: MemoryFormat;
  momentum: number | null;
  /** The layer's eps; default 1e-5. */
  eps?: number;
  weight?: number[];
  bias?: number[];
  steps: StepData[];
  subgroups?: number[][];
  layer?: string;
  checkDivergence?: boolean;
  diverge?: { rank: number; step: number };
  otherChannels?: number;
  absent?: { rank: number; step: number };
  die?: { rank: number; step: number };
  /** A step at which every rank's batch is empty (shape [0, C, ...]). */
  emptyStep?: number;
}

export interface RankStep {
  y: number[];
  dx: number[];
  gradWeight: number[] | null;
  gradBias: number[] | null;
  runningMean: number[] | null;
  runningVar: number[] | null;
  counter: number | null;
}

export interface RankResult {
  rank: number;
  steps: RankStep[];
  error?: string;
  members?: number[] | null;
}

let scenarioCount = 0;

/** A batch of `sizes` rows over ranks, `train` training steps then `evalSteps` eval steps. */
export function scenario(base: Omit<Scenario, 'steps' | 'shape'> & { tail: number[]; train: number; evalSteps: number; offset?: number; spread?: number; seed: number }): Scenario {
  manualSeed(base.seed);
  const total = base.sizes.reduce((a, b) => a + b, 0);
  const shape = [total, base.channels, ...base.tail];
  const steps: StepData[] = [];
  for (let i = 0; i < base.train + base.evalSteps; i++) {
    const x = Array.from(randn(shape, { dtype: 'float64' }).toArray(), (v) => (base.offset ?? 0) + (base.spread ?? 1) * v);
    const dy = Array.from(randn(shape, { dtype: 'float64' }).toArray());
    steps.push({ training: i < base.train, x, dy });
  }
  const weight = Array.from(randn([base.channels], { dtype: 'float64' }).toArray(), (v) => 1 + 0.5 * v);
  const bias = Array.from(randn([base.channels], { dtype: 'float64' }).toArray());
  const cfg: Scenario & Partial<typeof base> = { name: `case${process.pid}_${++scenarioCount}`, ...base, shape, steps, weight, bias };
  // The generator's own knobs do not travel to the ranks.
  for (const k of ['tail', 'train', 'evalSteps', 'offset', 'spread', 'seed'] as const) delete cfg[k];
  return cfg;
}

export function runThreads(cfg: Scenario): Promise<RankResult[]> {
  return Promise.all(
    cfg.sizes.map(
      (_, rank) =>
        new Promise<RankResult>((resolve, reject) => {
          const w = new Worker(WORKER, { workerData: { cfg, rank } });
          w.once('message', (m: RankResult) => resolve(m));
          w.once('error', reject);
          w.once('exit', (code) => {
            if (code !== 0) reject(new Error(`worker ${rank} exited with ${code}`));
          });
        }),
    ),
  );
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ProcessRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runNode(args: string[], env: NodeJS.ProcessEnv = {}, killAfterMs = 60000): Promise<ProcessRun> {
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - start });
    });
  });
}

/** Runs the scenario's ranks as processes under syncbn-run; returns each rank's result file. */
export async function runGloo(cfg: Scenario): Promise<{ run: ProcessRun; results: RankResult[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-gloo-'));
  const cfgFile = path.join(dir, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const port = await freePort();
  const run = await runNode([LAUNCHER, '--nproc-per-node', String(cfg.sizes.length), '--master-port', String(port), WORKER, cfgFile, dir]);
  const results: RankResult[] = [];
  for (let r = 0; r < cfg.sizes.length; r++) {
    const f = path.join(dir, `rank${r}.json`);
    if (fs.existsSync(f)) results.push(JSON.parse(fs.readFileSync(f, 'utf8')));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { run, results };
}

function rows(values: number[], total: number, start: number, n: number): number[] {
  const per = values.length / total;
  return values.slice(start * per, (start + n) * per);
}

/**
 * The float64 reference (reference.ts, not the library) over the
 * concatenated batch of `ranks`, step by step.
 */
export function reference(cfg: Scenario, ranks: number[] = cfg.sizes.map((_, r) => r)): RankStep[] {
  const total = cfg.shape[0];
  const starts = cfg.sizes.map((_, r) => cfg.sizes.slice(0, r).reduce((a, b) => a + b, 0));
  const n = ranks.reduce((a, r) => a + cfg.sizes[r], 0);
  const pick = (v: number[]) => ranks.flatMap((r) => rows(v, total, starts[r], cfg.sizes[r]));
  return referenceBatchNorm({
    shape: [n, ...cfg.shape.slice(1)],
    eps: cfg.eps ?? 1e-5,
    momentum: cfg.momentum,
    weight: cfg.weight!,
    bias: cfg.bias!,
    dtype: cfg.dtype,
    paramDtype: cfg.layerDtype ?? cfg.dtype,
    steps: cfg.steps.map((s) => ({ training: s.training, x: pick(s.x), dy: pick(s.dy) })),
  });
}

/**
 * Every rank of `ranks` at every step against the reference over their
 * concatenated batch: output and grad input row slices, running stats and
 * counter equal, grad weight and bias summed over the ranks.
 */
export function expectMatchesReference(cfg: Scenario, results: RankResult[], tol: Tolerance, ranks: number[] = cfg.sizes.map((_, r) => r)): void {
  const ref = reference(cfg, ranks);
  const byRank = new Map(results.map((r) => [r.rank, r]));
  for (const r of ranks) {
    const res = byRank.get(r);
    if (!res) throw new Error(`no result from rank ${r}`);
    if (res.error) throw new Error(`rank ${r} failed: ${res.error}`);
    expect(res.steps).toHaveLength(cfg.steps.length);
  }
  const nTotal = ranks.reduce((a, r) => a + cfg.sizes[r], 0);
  cfg.steps.forEach((_, s) => {
    let start = 0;
    const gw = new Array(cfg.channels).fill(0);
    const gb = new Array(cfg.channels).fill(0);
    for (const r of ranks) {
      const got = byRank.get(r)!.steps[s];
      const n = cfg.sizes[r];
      const at = `step ${s} rank ${r}`;
      assertClose(got.y, rows(ref[s].y, nTotal, start, n), tol, `${at} output`);
      assertClose(got.dx, rows(ref[s].dx, nTotal, start, n), tol, `${at} grad input`);
      assertClose(got.runningMean!, ref[s].runningMean!, tol, `${at} running mean`);
      assertClose(got.runningVar!, ref[s].runningVar!, tol, `${at} running var`);
      expect(got.counter).toBe(ref[s].counter);
      got.gradWeight?.forEach((v, c) => (gw[c] += v));
      got.gradBias?.forEach((v, c) => (gb[c] += v));
      start += n;
    }
    assertClose(gw, ref[s].gradWeight!, tol, `step ${s} grad weight summed over ranks`);
    assertClose(gb, ref[s].gradBias!, tol, `step ${s} grad bias summed over ranks`);
  });
}

/**
 * Step `step` of a scenario whose every rank had an empty batch there
 * (cfg.emptyStep), against the step before it, as PyTorch 2 leaves a
 * SyncBatchNorm after such a step: empty output and grad input, parameter
 * gradients unchanged (zero added, finite), the counter one higher, and the
 * running statistics moved by the step's factor towards mean 0 and
 * variance 0 (torch/nn/modules/_functions.py SyncBatchNorm.forward drops the
 * ranks of count 0; aten/src/ATen/native/cuda/Normalization.cuh
 * batch_norm_reduce_statistics_kernel merges none into mean 0, unbiased
 * variance 0 / -1). Debian's PyTorch 1.13 runs SyncBatchNorm on CUDA only,
 * so the 2.x source is the reference.
 */
export function expectEmptyWorldStep(cfg: Scenario, results: RankResult[], step: number): void {
  for (const r of results) {
    if (r.error) throw new Error(`rank ${r.rank} failed: ${r.error}`);
    const before = r.steps[step - 1];
    const got = r.steps[step];
    const at = `rank ${r.rank} step ${step}`;
    expect(got.y).toEqual([]);
    expect(got.dx).toEqual([]);
    for (const [name, g, prev] of [['grad weight', got.gradWeight, before.gradWeight], ['grad bias', got.gradBias, before.gradBias]] as const) {
      expect(g!.every(Number.isFinite)).toBe(true);
      assertClose(g!, prev!, { rtol: 0, atol: 0 }, `${at} ${name}`);
    }
    expect(got.counter).toBe(before.counter! + 1);
    const factor = cfg.momentum ?? 1 / got.counter!;
    assertClose(got.runningMean!, before.runningMean!.map((v) => (1 - factor) * v), { rtol: 1e-12, atol: 0 }, `${at} running mean`);
    assertClose(got.runningVar!, before.runningVar!.map((v) => (1 - factor) * v), { rtol: 1e-12, atol: 0 }, `${at} running var`);
  }
}
