// Loads the compiled addon (a prebuild or build/Release) and types what it exports.
import * as path from 'node:path';
import type { DType } from './tensor';

type FloatArray = Float32Array | Float64Array;
type Opt<T> = T | null;
/** [n, c, inner]: the (N, C, spatial) view every kernel works on. */
export type NativeShape = [number, number, number];

export type CommArray = Float32Array | Float64Array | BigInt64Array;

/** Device memory owned by this object; freed to the caching allocator when collected. */
export interface DeviceBuffer {
  readonly byteLength: number;
  readonly device: number;
  copyFromHost(src: ArrayBufferView): void;
  copyToHost(dst: ArrayBufferView): void;
  /** The whole buffer from `src`; or `bytes` from `src` at `sourceOffset` to this buffer at `offset`. Enqueued, never waits. */
  copyFrom(src: DeviceBuffer, bytes?: number, offset?: number, sourceOffset?: number): void;
}


/** The CUDA part of the addon: device queries and DeviceBuffer (when `compiled`). */
export interface NativeCuda {
  compiled: boolean;
  isAvailable(): boolean;
  unavailableReason(): string | null;
  deviceCount(): number;
  DeviceBuffer?: new (device: number, bytes: number) => DeviceBuffer;
  setDevice(device: number): void;
  synchronize(device: number): void;
  memoryStats(device: number): { allocatedBytes: number; cachedBytes: number; peakBytes: number; allocations: number; cacheHits: number };
  deviceName(device: number): string;
}
/**
 * The dtypes of the kernels: tensor.ts's floating dtypes, spelled as
 * native/kernels/dtype.h reads them; the CPU and CUDA take all four.
 */
export type OpDType = Exclude<DType, 'int64'>;

/**
 * An op's array: a TypedArray of the dtype (the CPU kernels; float16 and
 * bfloat16 as Uint16Array bits) or a DeviceBuffer (the CUDA kernels); the
 * op's input decides which, and the other arrays follow it. Per-channel
 * arrays are float32 for half inputs.
 */
type Arr = FloatArray | Uint16Array | DeviceBuffer;
type OptArr = Arr | null;
/** The input every op over a batch names: dtype and its (N, C, inner) view. */
interface OnBatch {
  dtype: OpDType;
  shape: NativeShape;
  channelsLast: boolean;
}

/**
 * The ops of native/kernels/batch_norm.h, one binding each, named arguments
 * (the kernels' Args structs in camelCase). Outputs are written in place.
 */
export interface NativeOps {
  stats(a: OnBatch & { input: Arr; eps: number; mean: Arr; invstd: Arr }): void;
  elemt(a: OnBatch & { input: Arr; mean: Arr; invstd: Arr; weight: OptArr; bias: OptArr; output: Arr }): void;
  backwardReduce(a: OnBatch & { gradOutput: Arr; input: Arr; mean: Arr; invstd: Arr; sumDy: OptArr; sumDyXmu: OptArr;
    gradWeight: OptArr; gradBias: OptArr }): void;
  backwardElemt(a: OnBatch & { gradOutput: Arr; input: Arr; mean: Arr; invstd: Arr; weight: OptArr; sumDy: Arr; sumDyXmu: Arr;
    totalCount: number; gradInput: Arr }): void;
  forwardTraining(a: OnBatch & { input: Arr; weight: OptArr; bias: OptArr; eps: number; momentum: number;
    runningMean: OptArr; runningVar: OptArr; output: Arr; saveMean: Arr; saveInvstd: Arr }): void;
  forwardInference(a: OnBatch & { input: Arr; runningMean: Arr; runningVar: Arr; weight: OptArr; bias: OptArr; eps: number;
    output: Arr }): void;
  backward(a: OnBatch & { gradOutput: Arr; input: Arr; weight: OptArr; mean: Arr; invstdOrVar: Arr; training: boolean;
    eps: number; gradInput: OptArr; gradWeight: OptArr; gradBias: OptArr; accumulate: boolean }): void;
  /** summary: 3C float64 (count, mean, m2) triples. */
  welfordStats(a: OnBatch & { input: Arr; summary: Float64Array | DeviceBuffer }): void;
  // CPU only (C values each):
  moments(a: OnBatch & { input: FloatArray | Uint16Array; mean: FloatArray; variance: FloatArray }): void;
  gatherStatsWithCounts(a: { dtype: OpDType; means: FloatArray; invstds: FloatArray; counts: Float64Array; world: number;
    channels: number; momentum: number; eps: number; mean: FloatArray; invstd: FloatArray; runningMean: Opt<FloatArray>;
    runningVar: Opt<FloatArray> }): void;
  welfordFinalize(a: { dtype: OpDType; summary: Float64Array; channels: number; eps: number; momentum: number;
    mean: FloatArray; invstd: FloatArray; runningMean: Opt<FloatArray>; runningVar: Opt<FloatArray> }): void;
  /** outMean/outVar may be runningMean/runningVar themselves. */
  blendStats(a: { dtype: OpDType; channels: number; momentum: number; meanA: FloatArray; varA: FloatArray;
    meanB: Opt<FloatArray>; varB: Opt<FloatArray>; varScale: number; runningMean: Opt<FloatArray>;
    runningVar: Opt<FloatArray>; outMean: FloatArray; outVar: FloatArray }): void;
  // CUDA only (SyncBatchNorm on the device):
  /**
   * Merges `world` ranks' (count, mean, m2) triples (world x C x 3 float64, rank-major) in rank order; the
   * running stats move when the merged count exceeds 1; totalCount (1 float64) gets the merged count.
   */
  welfordGather(a: { dtype: OpDType; summaries: DeviceBuffer; world: number; channels: number; eps: number; momentum: number;
    mean: DeviceBuffer; invstd: DeviceBuffer; runningMean: DeviceBuffer | null; runningVar: DeviceBuffer | null;
    totalCount: DeviceBuffer }): void;
  /** destination += source over `count` per-channel values of `dtype`. */
  accumulate(a: { dtype: OpDType; source: DeviceBuffer; destination: DeviceBuffer; count: number }): void;
}

export type CommOp = 'sum' | 'avg' | 'min' | 'max' | 'welford';

/** A native communicator (threads, gloo, nccl): blocking collectives in place. */
export interface NativeComm {
  readonly backend: string;
  readonly rank: number;
  readonly size: number;
  readonly timeoutMs: number;
  /**
   * Every collective first agrees across ranks on what it is (kind, dtype,
   * count, op, root and the optional `tag`: [source, ...fingerprint], up to 4
   * integers); a disagreement throws on every rank an error whose `calls`
   * holds each rank's call (CommMismatch in native/comm/checked.h).
   */
  allReduce(data: CommArray, op: CommOp, tag?: readonly number[]): void;
  allGather(input: CommArray, output: CommArray, tag?: readonly number[]): void;
  broadcast(data: CommArray, root: number, tag?: readonly number[]): void;
  barrier(): void;
  /** nccl only: in place on device memory. */
  allReduceDevice(buffer: DeviceBuffer, count: number, dtype: CommDtype, op: Exclude<CommOp, 'welford'>, tag?: readonly number[]): void;
  /** nccl only: `output` (device memory) receives size x count elements, rank-major. */
  allGatherDevice(input: DeviceBuffer, output: DeviceBuffer, count: number, dtype: CommDtype, tag?: readonly number[]): void;
  broadcastDevice(buffer: DeviceBuffer, count: number, dtype: CommDtype, root: number): void;
  destroy(): void;
}

export type CommDtype = 'float32' | 'float64' | 'int64';

/** One rank's call, as a CommMismatch error reports it. */
export interface CommCall {
  /** The native description: "all_reduce of 192 float64 (sum) ...". */
  call: string;
  kind: number;
  count: number;
  tag: number[];
}

export interface NativeAddon {
  ops: NativeOps;
  threadsJoin(name: string, rank: number, size: number, timeoutMs: number): Promise<NativeComm>;
  /** Registers a rank without waiting; poll the handle with threadsJoinPoll. */
  threadsJoinStart(name: string, rank: number, size: number, timeoutMs: number): unknown;
  /** The communicator once every rank joined, else null; throws after the timeout naming the missing ranks. */
  threadsJoinPoll(handle: unknown): NativeComm | null;
  glooConnect(storeHost: string, storePort: number, fileStore: string, prefix: string, hostname: string,
    iface: string, rank: number, size: number, timeoutMs: number, secret: string): Promise<NativeComm>;
  /** HMAC-SHA256 of the store's native client (native/comm/hmac_sha256.h); exposed for its tests. */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  ncclLoad(path: string): { path: string; version: number };
  ncclUniqueId(): Uint8Array;
  ncclConnect(uniqueId: Uint8Array, rank: number, size: number, device: number, timeoutMs: number): Promise<NativeComm>;
  convertMemoryFormat(src: ArrayBufferView, dst: ArrayBufferView, shape: NativeShape,
    toChannelsLast: boolean): void;
  /** glibc's mallopt(M_MMAP_THRESHOLD) and (M_TRIM_THRESHOLD); false when not glibc or refused. */
  keepFreedMemory(mmapThreshold: number, trimThreshold: number): boolean;
  getNumThreads(): number;
  setNumThreads(n: number): void;
  /** The largest count setNumThreads accepts: 4x the cores, at least 64. */
  maxNumThreads(): number;
  cuda: NativeCuda;
  features: Readonly<NativeFeatures>;
}

/** What the loaded binary holds, and which file it is (see `features` in index.ts). */
export interface NativeFeatures {
  openmp: boolean;
  cuda: boolean;
  gloo: boolean;
  /** The CPU kernel variant picked at run time on this machine: 'avx2' or 'baseline'. */
  isa: string;
  /** The .node file loaded. */
  file: string;
  /** 'prebuild': the binary shipped in prebuilds/; 'source': compiled on this machine (build/). */
  build: 'prebuild' | 'source';
}

// lib/ (ts-jest) and dist/ (compiled) both sit one level below the package root.
const root = path.resolve(__dirname, '..');

/** How to get a binary, for errors that end with "no addon" or "no Gloo". */
export const BUILD_HELP =
  'The npm package carries a prebuilt binary for linux-x64 (glibc >= 2.34) with Gloo and CUDA inside; ' +
  'elsewhere, or to compile anyway, run `npm rebuild syncbn` with cmake (or node-gyp), make and a C++17 compiler on the PATH ' +
  '(the CMake build includes Gloo from syncbn\'s bundled source)';

function load(): NativeAddon {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const gypBuild = require('node-gyp-build') as { resolve(dir: string): string };
  let file: string;
  try {
    file = gypBuild.resolve(root);
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).trim().replace(/\s+/g, ' ');
    throw new Error(`syncbn: no native addon fits this machine (${why}). ${BUILD_HELP}.`);
  }
  let addon: Omit<NativeAddon, 'features'> & { features: Omit<NativeFeatures, 'file' | 'build'> };
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    addon = require(file);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const local = path.relative(root, file).split(path.sep)[0] === 'build';
    const hint = local ? ` It was built on this machine and is preferred over the prebuild: delete ${path.join(root, 'build')} to use the prebuild, or rebuild it.` : '';
    throw new Error(`syncbn: the native addon ${file} could not be loaded (${why}).${hint} ${BUILD_HELP}.`);
  }
  const build = path.relative(root, file).split(path.sep)[0] === 'prebuilds' ? 'prebuild' : 'source';
  addon.features = Object.freeze({ ...addon.features, file, build });
  return addon as NativeAddon;
}

export const native: NativeAddon = load();
