// `npm run demo` (the README's main command) trains on 2 gloo ranks and ends
// by checking that both hold identical parameters and running stats; a binary
// without Gloo runs the same training on 2 worker threads and says so.
import * as path from 'node:path';
import { native } from '../../lib/native';
import { ROOT, runNode } from './support';

describe('demo', () => {
  test(`trains to high accuracy and the ranks agree (over ${native.features.gloo ? 'gloo' : 'worker threads'})`, async () => {
    const r = await runNode([path.join(ROOT, 'examples', 'demo.js')], {}, 120000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const prefix = native.features.gloo ? '\\[rank 0\\] ' : '';
    expect(r.stdout).toMatch(new RegExp(`${prefix}\\[#{24}\\] epoch 8/8 {2}loss \\d\\.\\d{4} {2}accuracy \\d+\\.\\d%`));
    const acc = Number(/held-out accuracy ([\d.]+)%/.exec(r.stdout)![1]);
    expect(acc).toBeGreaterThan(90);
    expect(r.stdout).toContain('check: parameters and running stats are identical on all 2 ranks');
    if (native.features.gloo) {
      expect(r.stdout).toContain('training on 2 ranks over gloo');
    } else {
      expect(r.stdout.split('\n')[0]).toBe(
        `demo: ${native.features.file} has no Gloo, so the 2 ranks run as worker threads (backend 'threads'); ` +
          'the prebuilt binary and the CMake build have Gloo (README, Install)');
      expect(r.stdout).toContain('training on 2 ranks over threads');
    }
  });
});
