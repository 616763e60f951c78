// bench/cpu/allocation_floor.js runs, and the fact bench/NOTES.md 34 rests on
// holds on this Node: an external ArrayBuffer (napi_create_external_arraybuffer)
// is not freed inside a synchronous loop, whatever the collector does, because
// Node posts its finalizer to a later turn of the event loop. A smoke test and a
// count, never a timing.
import * as path from 'node:path';
import { runNode, ROOT } from './distributed/support';

const TOOL = path.join(ROOT, 'bench', 'cpu', 'allocation_floor.js');

function report(stdout: string): Record<string, number | string> {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

describe('allocation_floor.js', () => {
  test('external buffers: every block allocated in the loop is still live at its end', async () => {
    // 20 warm-up steps and 30 timed ones, two outputs a step, 128 KiB each.
    const r = await runNode([TOOL, '4,8,1024', '30', 'external', 'held', '1'], {}, 60000);
    // Its stderr says why when the probe cannot be built (no C compiler).
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const out = report(r.stdout);
    expect(out.externalBlocksLive).toBe(2 * (20 + 30));
    expect(out.msPerStep).toBeGreaterThan(0);
  });

  test('outputs from Buffer.allocUnsafeSlow, dropped at once: a report with the collections counted', async () => {
    const r = await runNode([TOOL, '4,8,1024', '30', 'node', 'dropped', '1'], {}, 60000);
    expect(r.code).toBe(0);
    const out = report(r.stdout);
    expect(out.strategy).toBe('node');
    expect(out.externalBlocksLive).toBe(0);
    for (const k of ['minor', 'markCompact', 'incremental', 'peakRssMB']) expect(typeof out[k]).toBe('number');
  });

  test('an unknown strategy is a usage error, not a run', async () => {
    const r = await runNode([TOOL, '4,8,1024', '30', 'extrenal'], {}, 60000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/usage: allocation_floor\.js/);
  });
});
