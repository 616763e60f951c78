// Runs a BatchNorm module through a PyTorch fixture's steps (forward, backward,
// grads accumulating, running stats and the counter), shared by the golden
// suites whose fixtures record modules step by step.
import { nn, tensor, FloatDType, MemoryFormat } from '../../lib';
import { assertClose, TOLERANCE } from '../support/assert_close';

export interface ModuleStep {
  training: boolean;
  y: number[];
  dx: number[];
  grad_weight?: number[];
  grad_bias?: number[];
  running_mean?: number[];
  running_var?: number[];
  num_batches_tracked?: number;
}

export interface ModuleInputs {
  shape: number[];
  weight: number[];
  bias: number[];
  x: number[][];
  dy: number[][];
}

export interface ModuleSetup {
  module: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d';
  dtype: FloatDType;
  eps?: number;
  momentum: number | null;
  affine: boolean;
  track_running_stats: boolean;
  repr: string;
}

/** Builds the layer the fixture describes and checks every step in memory format `fmt`. */
export function checkModuleSteps(setup: ModuleSetup, inp: ModuleInputs, steps: ModuleStep[], fmt: MemoryFormat, name: string): void {
  const { dtype } = setup;
  const tol = TOLERANCE[dtype];
  const C = inp.shape[1];
  const bn = new nn[setup.module](C, {
    ...(setup.eps === undefined ? {} : { eps: setup.eps }),
    momentum: setup.momentum,
    affine: setup.affine,
    trackRunningStats: setup.track_running_stats,
    dtype,
  });
  expect(bn.toString()).toBe(setup.repr);
  if (setup.affine) {
    bn.weight!.copy_(tensor(inp.weight, [C], { dtype }));
    bn.bias!.copy_(tensor(inp.bias, [C], { dtype }));
  }
  steps.forEach((s, i) => {
    const at = `${name} step ${i} (${s.training ? 'train' : 'eval'})`;
    bn.train(s.training);
    const x = tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt });
    const dy = tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt });
    const xBefore = x.toArray();
    const y = bn.forward(x);
    expect(y.memoryFormat).toBe(fmt);
    assertClose(y, s.y, tol, `${at} output`);
    const dx = bn.backward(dy);
    expect(dx.memoryFormat).toBe(fmt);
    assertClose(dx, s.dx, tol, `${at} grad input`);
    expect(x.toArray()).toEqual(xBefore);
    if (setup.affine) {
      assertClose(bn.weight!.grad!, s.grad_weight!, tol, `${at} grad weight`);
      assertClose(bn.bias!.grad!, s.grad_bias!, tol, `${at} grad bias`);
    } else {
      expect(bn.weight).toBeNull();
    }
    if (setup.track_running_stats) {
      assertClose(bn.runningMean!, s.running_mean!, tol, `${at} running mean`);
      assertClose(bn.runningVar!, s.running_var!, tol, `${at} running var`);
      expect(bn.numBatchesTracked!.item()).toBe(s.num_batches_tracked);
    } else {
      expect(bn.runningMean).toBeNull();
    }
  });
}

/** Memory formats a shape runs in: channels-last needs a spatial dim. */
export function formatsFor(shape: readonly number[]): MemoryFormat[] {
  return shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
}
