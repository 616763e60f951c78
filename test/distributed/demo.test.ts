// `npm run demo` (the README's main command) trains on 2 gloo ranks and ends
// by checking that both hold identical parameters and running stats.
import * as path from 'node:path';
import { native } from '../../lib/native';
import { requireOrSkip } from '../support/require';
import { ROOT, runNode } from './support';

requireOrSkip('gloo', native.features.gloo, 'this addon was built without Gloo')('demo', () => {
  test('trains to high accuracy and the ranks agree', async () => {
    const r = await runNode([path.join(ROOT, 'examples', 'demo.js')], {}, 120000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\[rank 0\] \[#{24}\] epoch 8\/8 {2}loss \d\.\d{4} {2}accuracy \d+\.\d%/);
    const acc = Number(/held-out accuracy ([\d.]+)%/.exec(r.stdout)![1]);
    expect(acc).toBeGreaterThan(90);
    expect(r.stdout).toContain('check: parameters and running stats are identical on all 2 ranks');
  });
});
