// MomentumBatchNorm1d/2d/3d: the momentum-teacher variant (flame's
// `momentum_bn`, momentum2-teacher). Not plain BatchNorm: every forward, in
// train and eval mode alike, normalizes with a blend of batch and running
// statistics; the running statistics move every second forward, with the
// average of the pair; the momentum decays on a cosine schedule.
import * as F from '../functional';
import { narrowed, WidenedChannels } from '../half_params';
import { Tensor } from '../tensor';
import { BatchNorm, BatchNormOptions } from './batchnorm';
import { StateDictLoad } from './module';

export interface MomentumBatchNormOptions extends Omit<BatchNormOptions, 'momentum'> {
  /** Starting momentum (weight of the batch statistics). Default 1.0. */
  momentum?: number;
  /** Length of the cosine schedule, in pairs of forwards. Default 100. */
  totalIters?: number;
}

function momentumOptions(opts: MomentumBatchNormOptions): BatchNormOptions {
  if (opts.momentum === null) throw new RangeError('MomentumBatchNorm: momentum must be a number, got null');
  const totalIters = opts.totalIters ?? 100;
  if (typeof totalIters !== 'number' || !Number.isFinite(totalIters) || totalIters <= 0) {
    throw new RangeError(`MomentumBatchNorm: totalIters must be a positive number, got ${String(totalIters)}`);
  }
  return { ...opts, momentum: opts.momentum ?? 1.0 };
}

/**
 * Shared implementation of MomentumBatchNorm1d/2d/3d.
 *
 * State dict: exactly the reference's five keys (`weight`, `bias`,
 * `running_mean`, `running_var`, `num_batches_tracked`, the counter staying 0
 * as in the reference), so checkpoints load strictly both ways with flame's
 * MomentumBatchNorm (a torch.nn.BatchNorm subclass). As there, the schedule
 * (`curIter`, `momentum`) is plain state, not saved: to resume at pair n, set
 * `curIter = n - 1` and call `momentumCosineDecay()`. The first forward of
 * an unfinished pair is not saved.
 */
export abstract class MomentumBatchNorm extends BatchNorm {
  /** Length of the cosine schedule, in pairs of forwards. Cf. flame's `total_iters`. */
  totalIters: number;
  /** Pairs of forwards seen: the position on the cosine schedule. Cf. flame's `cur_iter`. */
  curIter = 0;
  /** The current momentum (weight of the batch statistics in the blend): (cos(pi * curIter / totalIters) + 1) / 2. */
  declare momentum: number;
  private last: { mean: Tensor; variance: Tensor } | null = null;

  constructor(numFeatures: number, opts: MomentumBatchNormOptions = {}) {
    super(numFeatures, momentumOptions(opts));
    this.totalIters = opts.totalIters ?? 100;
  }

  /**
   * One step of the schedule: `curIter` + 1, then momentum =
   * (cos(pi * curIter / totalIters) + 1) / 2. Forward calls it after every
   * second forward. Cf. flame's `momentum_cosine_decay()`.
   *
   * @example
   * const bn = new nn.MomentumBatchNorm1d(8, { totalIters: 4 });
   * bn.momentumCosineDecay();
   * bn.curIter;   // 1
   * bn.momentum;  // (cos(pi / 4) + 1) / 2 = 0.853...
   */
  momentumCosineDecay(): void {
    this.curIter += 1;
    this.momentum = (Math.cos(Math.PI * (this.curIter / this.totalIters)) + 1) * 0.5;
  }

  override resetRunningStats(): void {
    super.resetRunningStats();
    this.last = null;
  }

  /**
   * Normalizes with tmpMean = m * mean + (1 - m) * runningMean and
   * tmpVar = m * var * n / (n - 1) + (1 - m) * runningVar (var unbiased, as the
   * reference has it), in train and eval mode alike.
   */
  override forward(input: Tensor): Tensor {
    this.checkInput(input);
    const n = F.valuesPerChannel(input.shape);
    // n / (n - 1) is undefined for one value per channel.
    F.verifyBatchSize(input.shape);
    const batch = F.batchNormMoments(input);
    const unbias = n / (n - 1);
    // A float16 or bfloat16 layer blends in float32 copies of its running statistics, and normalizes with the
    // blend rounded to its dtype (as the reference computes it in the layer's dtype).
    const wide = new WidenedChannels();
    const rm = wide.wide(this.runningMean, true);
    const rv = wide.wide(this.runningVar, true);
    // Without running statistics the blend keeps the batch's alone.
    const m = rm === null ? 1 : this.momentum;
    const blend = F.blendStats(batch.mean, batch.variance, { momentum: m, varScale: unbias, runningMean: rm, runningVar: rv });
    const tmp = { mean: narrowed(blend.mean, this.dtype), variance: narrowed(blend.variance, this.dtype) };
    const output = F.nativeBatchNorm(input, this.weight, this.bias, tmp.mean, tmp.variance, false, 0, this.eps).output;
    if (this.last === null) {
      this.last = batch;
    } else {
      if (rm !== null && rv !== null) {
        F.blendStats(batch.mean, batch.variance, {
          momentum: this.momentum, other: this.last, varScale: unbias, runningMean: rm, runningVar: rv, out: { mean: rm, variance: rv },
        });
      }
      this.last = null;
      this.momentumCosineDecay();
    }
    wide.restore();
    this.saved = { input, training: false, saveMean: tmp.mean, saveInvstd: tmp.variance, runningMean: tmp.mean, runningVar: tmp.variance };
    return output;
  }

  protected override loadFromStateDict(stateDict: Record<string, Tensor>, prefix: string, load: StateDictLoad, localMetadata: Record<string, unknown> = {}): void {
    super.loadFromStateDict(stateDict, prefix, load, localMetadata);
    // Loaded statistics start a new pair.
    load.copies.push(() => {
      this.last = null;
    });
  }
}

/**
 * Momentum-teacher BatchNorm over (N, C) or (N, C, L) input. Cf. flame's
 * `MomentumBatchNorm1d`.
 *
 * @example
 * const bn = new nn.MomentumBatchNorm1d(128, { totalIters: 1000 });
 * const y = bn.forward(randn([64, 128]));
 */
export class MomentumBatchNorm1d extends MomentumBatchNorm {
  static override readonly spatialDims = 1;
}

/**
 * Momentum-teacher BatchNorm over (N, C, H, W) input. Cf. flame's `MomentumBatchNorm2d`.
 *
 * @example
 * const bn = new nn.MomentumBatchNorm2d(64);
 * const y = bn.forward(randn([8, 64, 7, 7]));
 */
export class MomentumBatchNorm2d extends MomentumBatchNorm {
  static override readonly spatialDims = 2;
}

/**
 * Momentum-teacher BatchNorm over (N, C, D, H, W) input. Cf. flame's `MomentumBatchNorm3d`.
 *
 * @example
 * const bn = new nn.MomentumBatchNorm3d(8);
 * const y = bn.forward(randn([2, 8, 4, 4, 4]));
 */
export class MomentumBatchNorm3d extends MomentumBatchNorm {
  static override readonly spatialDims = 3;
}
