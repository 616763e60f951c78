// Loads the compiled addon (a prebuild or build/Release) and types what it exports.
import * as path from 'node:path';

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

type Buf = DeviceBuffer | null;
export type CudaDType = 'float32' | 'float64' | 'float16' | 'bfloat16';

/** The CUDA part of the addon; ops exist only when `compiled`. */
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
  forwardTraining(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, x: DeviceBuffer, weight: Buf, bias: Buf,
    eps: number, momentum: number, runningMean: Buf, runningVar: Buf, y: DeviceBuffer, saveMean: DeviceBuffer, saveInvstd: DeviceBuffer): void;
  forwardInference(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, x: DeviceBuffer, runningMean: DeviceBuffer,
    runningVar: DeviceBuffer, weight: Buf, bias: Buf, eps: number, y: DeviceBuffer): void;
  backward(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, dy: DeviceBuffer, x: DeviceBuffer, weight: Buf,
    mean: DeviceBuffer, invstdOrVar: DeviceBuffer, training: boolean, eps: number, dx: Buf, gradWeight: Buf, gradBias: Buf, accumulate: boolean): void;
  stats(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, x: DeviceBuffer, eps: number, mean: DeviceBuffer, invstd: DeviceBuffer): void;
  elemt(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, x: DeviceBuffer, mean: DeviceBuffer, invstd: DeviceBuffer,
    weight: Buf, bias: Buf, y: DeviceBuffer): void;
  backwardReduce(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, dy: DeviceBuffer, x: DeviceBuffer,
    mean: DeviceBuffer, invstd: DeviceBuffer, sumDy: Buf, sumDyXmu: Buf, gradWeight: Buf, gradBias: Buf): void;
  backwardElemt(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, dy: DeviceBuffer, x: DeviceBuffer,
    mean: DeviceBuffer, invstd: DeviceBuffer, weight: Buf, sumDy: DeviceBuffer, sumDyXmu: DeviceBuffer, totalCount: number, dx: DeviceBuffer): void;
  welfordStats(dtype: CudaDType, device: number, shape: NativeShape, channelsLast: boolean, x: DeviceBuffer, summary: DeviceBuffer): void;
  /** Merges world x C (count, mean, m2) triples in rank order; returns the merged count (the one value read back). */
  gatherWelford(dtype: CudaDType, device: number, world: number, channels: number, summaries: DeviceBuffer, eps: number, momentum: number,
    mean: DeviceBuffer, invstd: DeviceBuffer, runningMean: Buf, runningVar: Buf): number;
  /** dst += src over `count` per-channel values. */
  addInto(dtype: CudaDType, device: number, count: number, src: DeviceBuffer, dst: DeviceBuffer): void;
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
  batchNormStats(x: FloatArray, shape: NativeShape, channelsLast: boolean, eps: number,
    mean: FloatArray, invstd: FloatArray): void;
  batchNormGatherStatsWithCounts(means: FloatArray, invstds: FloatArray, counts: Float64Array,
    world: number, channels: number, momentum: number, eps: number, mean: FloatArray,
    invstd: FloatArray, runningMean: Opt<FloatArray>, runningVar: Opt<FloatArray>): void;
  batchNormElemt(x: FloatArray, shape: NativeShape, channelsLast: boolean, mean: FloatArray,
    invstd: FloatArray, weight: Opt<FloatArray>, bias: Opt<FloatArray>, out: FloatArray): void;
  batchNormBackwardReduce(dy: FloatArray, x: FloatArray, shape: NativeShape, channelsLast: boolean,
    mean: FloatArray, invstd: FloatArray, sumDy: Opt<FloatArray>, sumDyXmu: Opt<FloatArray>,
    gradWeight: Opt<FloatArray>, gradBias: Opt<FloatArray>): void;
  batchNormBackwardElemt(dy: FloatArray, x: FloatArray, shape: NativeShape, channelsLast: boolean,
    mean: FloatArray, invstd: FloatArray, weight: Opt<FloatArray>, sumDy: FloatArray,
    sumDyXmu: FloatArray, totalCount: number, gradInput: FloatArray): void;
  batchNormForwardTraining(x: FloatArray, shape: NativeShape, channelsLast: boolean,
    weight: Opt<FloatArray>, bias: Opt<FloatArray>, eps: number, momentum: number,
    runningMean: Opt<FloatArray>, runningVar: Opt<FloatArray>, out: FloatArray,
    saveMean: FloatArray, saveInvstd: FloatArray): void;
  batchNormForwardInference(x: FloatArray, shape: NativeShape, channelsLast: boolean,
    runningMean: FloatArray, runningVar: FloatArray, weight: Opt<FloatArray>,
    bias: Opt<FloatArray>, eps: number, out: FloatArray): void;
  batchNormBackward(dy: FloatArray, x: FloatArray, shape: NativeShape, channelsLast: boolean,
    weight: Opt<FloatArray>, mean: FloatArray, invstdOrVar: FloatArray, training: boolean,
    eps: number, gradInput: Opt<FloatArray>, gradWeight: Opt<FloatArray>,
    gradBias: Opt<FloatArray>, accumulate: boolean): void;
  batchNormMoments(x: FloatArray, shape: NativeShape, channelsLast: boolean, mean: FloatArray,
    variance: FloatArray): void;
  blendStats(channels: number, momentum: number, meanA: FloatArray, varA: FloatArray,
    meanB: Opt<FloatArray>, varB: Opt<FloatArray>, varScale: number, runningMean: Opt<FloatArray>,
    runningVar: Opt<FloatArray>, outMean: FloatArray, outVar: FloatArray): void;
  batchNormWelfordStats(x: FloatArray, shape: NativeShape, channelsLast: boolean, summary: Float64Array): void;
  batchNormWelfordFinalize(summary: Float64Array, channels: number, eps: number, momentum: number,
    mean: FloatArray, invstd: FloatArray, runningMean: Opt<FloatArray>, runningVar: Opt<FloatArray>): void;
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
