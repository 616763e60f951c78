// The golden fixtures again, on 'cuda': BatchNorm1d/2d/3d in float32 and
// float64, both memory formats, and float16 / bfloat16 inputs with float32
// parameters. Needs a GPU; SYNCBN_REQUIRE=cuda turns the skip into a failure.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cuda, nn, tensor, FloatDType, MemoryFormat } from '../../lib';
import { assertClose, TOLERANCE } from '../support/assert_close';
import { requireOrSkip } from '../support/require';

const gpu = requireOrSkip('cuda', cuda.isAvailable(), `no usable GPU (${cuda.unavailableReason()})`);
const FIXTURES = path.join(__dirname, '..', 'golden', 'fixtures');

interface Step { training: boolean; y: number[]; dx: number[]; grad_weight?: number[]; grad_bias?: number[]; running_mean?: number[]; running_var?: number[] }
interface Case { kind: string; affine: boolean; track_running_stats: boolean; momentum: number | null; steps: Step[] }
interface Inputs { module: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d'; shape: number[]; weight: number[]; bias: number[]; x: number[][]; dy: number[][] }

gpu('BatchNorm on CUDA vs PyTorch', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    const fixture: { inputs: Record<string, Inputs>; cases: Case[] } = JSON.parse(fs.readFileSync(path.join(FIXTURES, `modules_${dtype}.json`), 'utf8'));
    for (const c of fixture.cases) {
      const inp = fixture.inputs[c.kind];
      const formats: MemoryFormat[] = inp.shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
      for (const fmt of formats) {
        test(`${dtype} ${c.kind} affine=${c.affine} track=${c.track_running_stats} momentum=${c.momentum} ${fmt}`, () => {
          const tol = TOLERANCE[dtype];
          const bn = new nn[inp.module](inp.shape[1], { momentum: c.momentum, affine: c.affine, trackRunningStats: c.track_running_stats, dtype: dtype as FloatDType });
          if (c.affine) {
            bn.weight!.copy_(tensor(inp.weight, [inp.shape[1]], { dtype }));
            bn.bias!.copy_(tensor(inp.bias, [inp.shape[1]], { dtype }));
          }
          bn.to('cuda');
          c.steps.forEach((s, i) => {
            bn.train(s.training);
            const x = tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt, device: 'cuda' });
            const y = bn.forward(x);
            expect(y.device).toBe('cuda:0');
            assertClose(y, s.y, tol, `step ${i} output`);
            assertClose(bn.backward(tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt, device: 'cuda' })), s.dx, tol, `step ${i} grad input`);
            if (c.affine) {
              assertClose(bn.weight!.grad!, s.grad_weight!, tol, `step ${i} grad weight`);
              assertClose(bn.bias!.grad!, s.grad_bias!, tol, `step ${i} grad bias`);
            }
            if (c.track_running_stats) {
              assertClose(bn.runningMean!, s.running_mean!, tol, `step ${i} running mean`);
              assertClose(bn.runningVar!, s.running_var!, tol, `step ${i} running var`);
            }
          });
        });
      }
    }
  }

  const half: { cases: Array<{ dtype: 'float16' | 'bfloat16'; kind: string; module: 'BatchNorm1d' | 'BatchNorm2d'; shape: number[]; weight: number[]; bias: number[]; steps: Array<Step & { x: number[]; dy: number[] }> }> } =
    JSON.parse(fs.readFileSync(path.join(FIXTURES, 'half.json'), 'utf8'));
  // Outputs are rounded to the input's dtype: about 3 significant digits for
  // float16, 2 for bfloat16; statistics stay float32.
  const HALF = { float16: { rtol: 2e-3, atol: 2e-3 }, bfloat16: { rtol: 1.6e-2, atol: 1.6e-2 } };
  for (const c of half.cases) {
    test(`${c.dtype} input, float32 parameters: ${c.kind}`, () => {
      const C = c.shape[1];
      const bn = new nn[c.module](C);
      bn.weight!.copy_(tensor(c.weight, [C]));
      bn.bias!.copy_(tensor(c.bias, [C]));
      bn.to('cuda');
      c.steps.forEach((s, i) => {
        bn.train(s.training);
        const y = bn.forward(tensor(s.x, c.shape, { dtype: c.dtype, device: 'cuda' }));
        expect(y.dtype).toBe(c.dtype);
        assertClose(y, s.y, HALF[c.dtype], `step ${i} output`);
        assertClose(bn.backward(tensor(s.dy, c.shape, { dtype: c.dtype, device: 'cuda' })), s.dx, HALF[c.dtype], `step ${i} grad input`);
        assertClose(bn.runningMean!, s.running_mean!, TOLERANCE.float32, `step ${i} running mean`);
        assertClose(bn.runningVar!, s.running_var!, { rtol: 1e-4, atol: 1e-5 }, `step ${i} running var`);
      });
    });
  }

  test('device allocations go through the caching allocator', () => {
    const before = cuda.memoryStats();
    for (let i = 0; i < 5; i++) tensor(new Float32Array(1 << 16), [1 << 16], { device: 'cuda' });
    expect(cuda.memoryStats().allocations).toBeGreaterThan(before.allocations);
  });

  test('mixing devices is PyTorch\'s error', () => {
    const bn = new nn.BatchNorm1d(3).to('cuda');
    expect(() => bn.forward(tensor([1, 2, 3, 4, 5, 6], [2, 3]))).toThrow(/Expected all tensors to be on the same device, but found at least two devices, cpu and cuda:0!/);
  });
});
