// The ops that have a kernel on both devices: one native.ops call each, the
// same for the CPU and CUDA; a backend says only how it allocates an output
// and which array (TypedArray or DeviceBuffer) holds a tensor.
import { native, NativeShape, OpDType } from '../native';
import { paramDtype } from '../op_checks';
import { batchView, Tensor } from '../tensor';
import type { BackwardArgs, BackwardReduceResult, BatchNormBackwardResult, NativeBatchNormResult } from './backend';

type Arr = Float32Array | Float64Array | Uint16Array | import('../native').DeviceBuffer;

// The hot ops spell dtype, shape and channelsLast out in their literal: a
// spread would build a second object per call.

export abstract class KernelOps {
  /** A new tensor shaped and laid out like `input` (every op writes all of it). */
  protected abstract like(input: Tensor): Tensor;
  /** A new tensor of `n` per-channel values (paramDtype of the input's dtype). */
  protected abstract perChannel(input: Tensor, n: number): Tensor;
  /** The array that holds `t` on this device. */
  protected abstract array(t: Tensor): Arr;

  protected channels(input: Tensor): Tensor {
    return this.perChannel(input, input.shape[1]);
  }

  private opt(t: Tensor | null): Arr | null {
    return t ? this.array(t) : null;
  }

  forwardTraining(input: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null,
    runningVar: Tensor | null, momentum: number, eps: number): NativeBatchNormResult {
    const output = this.like(input);
    const saveMean = this.channels(input);
    const saveInvstd = this.channels(input);
    native.ops.forwardTraining({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
      input: this.array(input), weight: this.opt(weight), bias: this.opt(bias),
      eps, momentum, runningMean: this.opt(runningMean), runningVar: this.opt(runningVar), output: this.array(output),
      saveMean: this.array(saveMean), saveInvstd: this.array(saveInvstd) });
    return { output, saveMean, saveInvstd };
  }

  forwardInference(input: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor, runningVar: Tensor,
    eps: number): NativeBatchNormResult {
    const output = this.like(input);
    native.ops.forwardInference({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
      input: this.array(input), runningMean: this.array(runningMean),
      runningVar: this.array(runningVar), weight: this.opt(weight), bias: this.opt(bias), eps, output: this.array(output) });
    return { output, saveMean: this.perChannel(input, 0), saveInvstd: this.perChannel(input, 0) };
  }

  backward(gradOutput: Tensor, input: Tensor, a: BackwardArgs): BatchNormBackwardResult {
    const [wantInput, wantWeight, wantBias] = a.want;
    const gradInput = wantInput ? this.like(input) : null;
    const gradWeight = wantWeight ? (a.accumulate ? a.into.weight! : this.channels(input)) : null;
    const gradBias = wantBias ? (a.accumulate ? a.into.bias! : this.channels(input)) : null;
    native.ops.backward({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
      gradOutput: this.array(gradOutput), input: this.array(input),
      weight: this.opt(a.weight), mean: this.array(a.mean), invstdOrVar: this.array(a.invstdOrVar), training: a.training,
      eps: a.eps, gradInput: this.opt(gradInput), gradWeight: this.opt(gradWeight), gradBias: this.opt(gradBias),
      accumulate: a.accumulate });
    return { gradInput, gradWeight, gradBias };
  }

  stats(input: Tensor, eps: number): { mean: Tensor; invstd: Tensor } {
    const mean = this.channels(input);
    const invstd = this.channels(input);
    native.ops.stats({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
      input: this.array(input), eps, mean: this.array(mean), invstd: this.array(invstd) });
    return { mean, invstd };
  }

  elemt(input: Tensor, weight: Tensor | null, bias: Tensor | null, mean: Tensor, invstd: Tensor): Tensor {
    const output = this.like(input);
    native.ops.elemt({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
      input: this.array(input), mean: this.array(mean), invstd: this.array(invstd),
      weight: this.opt(weight), bias: this.opt(bias), output: this.array(output) });
    return output;
  }

  backwardReduce(gradOutput: Tensor, input: Tensor, mean: Tensor, invstd: Tensor,
    want: { inputG: boolean; weightG: boolean; biasG: boolean }): BackwardReduceResult {
    const sumDy = want.inputG ? this.channels(input) : null;
    const sumDyXmu = want.inputG ? this.channels(input) : null;
    const gradWeight = want.weightG ? this.channels(input) : null;
    const gradBias = want.biasG ? this.channels(input) : null;
    native.ops.backwardReduce({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
      gradOutput: this.array(gradOutput), input: this.array(input),
      mean: this.array(mean), invstd: this.array(invstd), sumDy: this.opt(sumDy), sumDyXmu: this.opt(sumDyXmu),
      gradWeight: this.opt(gradWeight), gradBias: this.opt(gradBias) });
    return { sumDy, sumDyXmu, gradWeight, gradBias };
  }

  backwardElemt(gradOutput: Tensor, input: Tensor, mean: Tensor, invstd: Tensor, weight: Tensor | null, sumDy: Tensor,
    sumDyXmu: Tensor, count: number): Tensor {
    const gradInput = this.like(input);
    native.ops.backwardElemt({ dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast',
      gradOutput: this.array(gradOutput), input: this.array(input),
      mean: this.array(mean), invstd: this.array(invstd), weight: this.opt(weight), sumDy: this.array(sumDy),
      sumDyXmu: this.array(sumDyXmu), totalCount: count, gradInput: this.array(gradInput) });
    return gradInput;
  }

  /** dtype, shape and layout of an op's input, as every op over a batch names them, for the subclasses' own ops. */
  protected onBatch(input: Tensor): { dtype: OpDType; shape: NativeShape; channelsLast: boolean } {
    return { dtype: input.dtype as OpDType, shape: batchView(input.shape), channelsLast: input.memoryFormat === 'channelsLast' };
  }

  protected paramDtype(input: Tensor): 'float32' | 'float64' {
    return paramDtype(input.dtype);
  }
}
