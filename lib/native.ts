// Loads the compiled addon (a prebuild or build/Release) and types what it exports.
import * as path from 'node:path';

type FloatArray = Float32Array | Float64Array;
type Opt<T> = T | null;
/** [n, c, inner]: the (N, C, spatial) view every kernel works on. */
export type NativeShape = [number, number, number];

export type CommArray = Float32Array | Float64Array | BigInt64Array;
export type CommOp = 'sum' | 'avg' | 'min' | 'max' | 'welford';

/** A native communicator (threads, gloo): blocking collectives in place. */
export interface NativeComm {
  readonly backend: string;
  readonly rank: number;
  readonly size: number;
  readonly timeoutMs: number;
  allReduce(data: CommArray, op: CommOp): void;
  allGather(input: CommArray, output: CommArray): void;
  broadcast(data: CommArray, root: number): void;
  barrier(): void;
  destroy(): void;
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
  glooConnect(storeHost: string, storePort: number, fileStore: string, prefix: string, hostname: string,
    iface: string, rank: number, size: number, timeoutMs: number): Promise<NativeComm>;
  ncclLoad(path: string): { path: string; version: number };
  convertMemoryFormat(src: ArrayBufferView, dst: ArrayBufferView, shape: NativeShape,
    toChannelsLast: boolean): void;
  /** Bandwidth probes: dst = src, and a = b + s * c. */
  streamCopy(src: Float32Array, dst: Float32Array): void;
  streamTriad(a: Float32Array, b: Float32Array, c: Float32Array, scalar: number): void;
  getNumThreads(): number;
  setNumThreads(n: number): void;
  features: { openmp: boolean; cuda: boolean; gloo: boolean; isa: string };
}

function load(): NativeAddon {
  // lib/ (ts-jest) and dist/ (compiled) both sit one level below the package root.
  const root = path.resolve(__dirname, '..');
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require('node-gyp-build')(root) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `syncbn: the native addon could not be loaded from ${root} (${why}). ` +
        'Build it with `npm run build:addon` (needs cmake or node-gyp and a C++17 compiler).',
    );
  }
}

export const native: NativeAddon = load();
