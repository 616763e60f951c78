// Types of checks.js (plain JavaScript: the GPU suite runs it without an npm tree).
import type * as Lib from '../../lib';

export type LibModule = typeof Lib;
export type Device = 'cpu' | 'cuda';
export interface Tol { rtol: number; atol: number }
export interface GoldenCase {
  name: string;
  run(lib: LibModule, device: Device): void;
}
export type Family = 'modules' | 'varied' | 'ops' | 'momentum' | 'half' | 'edges';

export const FIXTURES: string;
export const TOLERANCE: Record<'float32' | 'float64' | 'float16' | 'bfloat16', Tol>;
export const FILES: string[];
export const FAMILIES: Family[];
export function load(file: string): any; // eslint-disable-line @typescript-eslint/no-explicit-any
export function formatsFor(shape: readonly number[]): Lib.MemoryFormat[];
export function close(actual: ArrayLike<number> | Lib.Tensor, expected: ArrayLike<number>, tol: Tol, label: string): void;
export function same(actual: ArrayLike<number> | Lib.Tensor, expected: ArrayLike<number | string>, tol: Tol, label: string): void;
export function decode(v: number | string): number;
export function equal(actual: unknown, expected: unknown, label: string): void;
export function cases(family: Family): GoldenCase[];
export function moduleSteps(lib: LibModule, device: Device, setup: object, inp: object, steps: object[], fmt: Lib.MemoryFormat): void;
export function opsCase(lib: LibModule, device: Device, c: object, fmt: Lib.MemoryFormat): void;
export function edgeInput(shape: number[], constant: number[]): Float64Array;
export function edgeParams(lib: LibModule, C: number, on: { dtype: Lib.DType; device: Device }): Lib.Tensor[];
