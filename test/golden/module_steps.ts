// The fixture shapes of module steps and the CPU entry to their check, which
// lives in checks.js (shared with the GPU suite).
import * as lib from '../../lib';
import { FloatDType, MemoryFormat } from '../../lib';
import { formatsFor as formats, moduleSteps } from './checks';

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

/** Builds the layer the fixture describes and checks every step on the CPU in memory format `fmt`. */
export function checkModuleSteps(setup: ModuleSetup, inp: ModuleInputs, steps: ModuleStep[], fmt: MemoryFormat, name: string): void {
  try {
    moduleSteps(lib, 'cpu', setup, inp, steps, fmt);
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`);
  }
}

/** Memory formats a shape runs in: channels-last needs a spatial dim. */
export const formatsFor: (shape: readonly number[]) => MemoryFormat[] = formats;
