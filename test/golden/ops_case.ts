// The shape of an ATen-level ops fixture case (test/golden/generate.py
// ops_case) and the CPU entry to its check, which lives in checks.js (shared
// with the GPU suite).
import * as lib from '../../lib';
import { FloatingDType, MemoryFormat } from '../../lib';
import { opsCase } from './checks';

interface Worker {
  count: number;
  mean?: number[];
  invstd?: number[];
}
type Expected = Record<'mean' | 'invstd' | 'running_mean' | 'running_var' | 'y' | 'sum_dy' | 'sum_dy_xmu' | 'grad_weight' | 'grad_bias' | 'dx', number[]>;
export interface OpsCase {
  name: string;
  dtype: FloatingDType;
  shape: number[];
  eps: number;
  momentum: number;
  splits: number[];
  x: number[];
  dy: number[];
  weight: number[];
  bias: number[];
  running_mean: number[];
  running_var: number[];
  expected: Expected & {
    workers: Worker[];
    eval?: Record<'y' | 'dx' | 'grad_weight' | 'grad_bias', number[]>;
  };
}

/** Every F.* op of one case on the CPU in memory format `fmt`. */
export function checkOpsCase(c: OpsCase, fmt: MemoryFormat): void {
  opsCase(lib, 'cpu', c, fmt);
}
