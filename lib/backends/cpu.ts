// The CPU backend: TypedArray storage, outputs from the recycled storage
// (storage.ts), the CPU kernels through native.ops.
import { native, OpDType } from '../native';
import { outputArray } from '../storage';
import { Device, FloatStorage, Tensor } from '../tensor';
import type { Backend, BlendArgs } from './backend';
import { KernelOps } from './kernel_ops';

/** A tensor's host array: float32/float64, or a half tensor's Uint16Array bits. */
function data(t: Tensor): FloatStorage {
  return t.data as FloatStorage;
}

function opt(t: Tensor | null): FloatStorage | null {
  return t ? (t.data as FloatStorage) : null;
}

class CpuBackend extends KernelOps implements Backend {
  protected like(input: Tensor): Tensor {
    return new Tensor(outputArray(input.dtype as OpDType, input.numel()), input.shape, input.memoryFormat, input.dtype);
  }

  protected perChannel(input: Tensor, n: number): Tensor {
    return new Tensor(outputArray(this.paramDtype(input), n), [n]);
  }

  protected array(t: Tensor): FloatStorage {
    return t.data as FloatStorage;
  }

  welfordStats(input: Tensor): Float64Array {
    const summary = new Float64Array(3 * input.shape[1]);
    native.ops.welfordStats({ ...this.onBatch(input), input: data(input), summary });
    return summary;
  }

  moments(input: Tensor): { mean: Tensor; variance: Tensor } {
    const mean = this.channels(input);
    const variance = this.channels(input);
    native.ops.moments({ ...this.onBatch(input), input: data(input), mean: data(mean), variance: data(variance) });
    return { mean, variance };
  }

  gatherStatsWithCounts(means: Tensor, invstds: Tensor, counts: Float64Array, runningMean: Tensor | null,
    runningVar: Tensor | null, momentum: number, eps: number): { mean: Tensor; invstd: Tensor } {
    const [world, C] = means.shape;
    const mean = this.perChannel(means, C);
    const invstd = this.perChannel(means, C);
    native.ops.gatherStatsWithCounts({ dtype: this.paramDtype(means), means: data(means), invstds: data(invstds), counts,
      world, channels: C, momentum, eps, mean: data(mean), invstd: data(invstd), runningMean: opt(runningMean),
      runningVar: opt(runningVar) });
    return { mean, invstd };
  }

  welfordFinalize(summary: Float64Array, runningMean: Tensor | null, runningVar: Tensor | null, eps: number,
    momentum: number, dtype: 'float32' | 'float64', _device: Device): { mean: Tensor; invstd: Tensor } {
    const C = summary.length / 3;
    const array = () => (dtype === 'float64' ? new Float64Array(C) : new Float32Array(C));
    const mean = new Tensor(array(), [C]);
    const invstd = new Tensor(array(), [C]);
    native.ops.welfordFinalize({ dtype, summary, channels: C, eps, momentum, mean: data(mean), invstd: data(invstd),
      runningMean: opt(runningMean), runningVar: opt(runningVar) });
    return { mean, invstd };
  }

  blendStats(mean: Tensor, variance: Tensor, a: BlendArgs): { mean: Tensor; variance: Tensor } {
    const C = mean.numel();
    const out = a.out ?? { mean: this.perChannel(mean, C), variance: this.perChannel(mean, C) };
    native.ops.blendStats({ dtype: this.paramDtype(mean), channels: C, momentum: a.momentum, meanA: data(mean),
      varA: data(variance), meanB: opt(a.other?.mean ?? null), varB: opt(a.other?.variance ?? null), varScale: a.varScale,
      runningMean: opt(a.runningMean), runningVar: opt(a.runningVar), outMean: data(out.mean), outVar: data(out.variance) });
    return out;
  }
}

export const cpu: Backend = new CpuBackend();
