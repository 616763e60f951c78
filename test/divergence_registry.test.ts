// The registry that lets a divergence error name the layer another rank is
// at holds SyncBatchNorm layers weakly: layers a program drops leave no entry
// behind, and live layers keep theirs (and their names). Run in a plain Node
// process with --expose-gc (dist/, compiled by jest's global setup): inside
// jest's sandbox, collections and finalizers are not the program's own.
import * as path from 'node:path';
import { ROOT, runNode } from './distributed/support';

const PROGRAM = `
const { nn } = require(${JSON.stringify(path.join(ROOT, 'dist'))});
const { registeredLayers } = require(${JSON.stringify(path.join(ROOT, 'dist', 'nn', 'sync_batchnorm'))});
(async () => {
  const kept = new nn.SynchronizedBatchNorm2d(8);
  kept.layerName = 'features.bn1';
  const before = registeredLayers();
  (() => { for (let i = 0; i < 500; i++) new nn.SyncBatchNorm(4); })();
  const built = registeredLayers();
  // FinalizationRegistry callbacks run in tasks after a collection.
  for (let i = 0; i < 100 && registeredLayers() > before; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  console.log(JSON.stringify({ before, built, after: registeredLayers(), name: kept.layerName }));
})();
`;

test('entries of collected layers are dropped; live layers keep theirs', async () => {
  const r = await runNode(['--expose-gc', '-e', PROGRAM]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const got = JSON.parse(r.stdout);
  expect(got.before).toBe(1);
  expect(got.built).toBe(501);
  expect(got.after).toBe(1);
  expect(got.name).toBe('features.bn1');
});
