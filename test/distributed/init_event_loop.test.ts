// A rank waiting in initProcessGroup leaves its event loop free: the store
// (rank 0 hosts it on a worker thread) and Gloo's rendezvous (a libuv worker)
// wait off the main thread, so timers keep firing while a late rank arrives.
import * as path from 'node:path';
import { native } from '../../lib/native';
import { freePort, runNode } from './support';
import { requireOrSkip } from '../support/require';

const WORKER = path.join(__dirname, 'workers', 'init_loop_worker.js');
const describeGloo = requireOrSkip('gloo', native.features.gloo, 'this build of syncbn has no Gloo');

describeGloo('initProcessGroup does not block the event loop', () => {
  test.each([0, 1])('rank %i waits 1.5 s for the other rank: its 5 ms timer keeps firing meanwhile', async (early) => {
    const port = String(await freePort());
    const late = 1 - early;
    const env = { WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, SYNCBN_SECRET: `loop-${port}`, DELAY_RANK: String(late), DELAY_MS: '1500' };
    const runs = await Promise.all([0, 1].map((rank) => runNode([WORKER], { ...env, RANK: String(rank) }, 30000)));
    const out = runs.map((r) => JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}'));
    for (const o of out) {
      expect(o.error).toBeUndefined();
      expect(o.sum).toBe(3);
    }
    const waiting = out[early];
    expect(waiting.ms).toBeGreaterThan(1000);
    // A blocked loop would tick about once; a free one about ms / 5 times.
    // Half of that leaves room for a loaded machine.
    expect(waiting.ticks).toBeGreaterThan(waiting.ms / 5 / 2);
  });
});
