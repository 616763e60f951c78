// Cost of SyncBatchNorm's divergence check (one extra 8-value all-reduce per
// sync) relative to the layer's forward + backward, per rank, over gloo.
// Run: npx syncbn-run --nproc-per-node 2 bench/divergence_check.js
'use strict';

const { nn, randn, distributed: dist, setNumThreads } = require('..');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs: 60000 });
  setNumThreads(1); // one core per rank on a 2-core machine
  const rank = dist.getRank();
  const rows = [];
  for (const shape of [[16, 64, 28, 28], [32, 256, 7, 7], [64, 512]]) {
    const x = randn(shape);
    const dy = randn(shape);
    const samples = { true: [], false: [] };
    const layers = { true: new nn.SyncBatchNorm(shape[1], { checkDivergence: true }), false: new nn.SyncBatchNorm(shape[1], { checkDivergence: false }) };
    // Alternate short blocks so drift hits both alike.
    for (let round = 0; round < 12; round++) {
      for (const check of [true, false]) {
        for (let i = 0; i < 12; i++) {
          const t0 = process.hrtime.bigint();
          layers[check].forward(x);
          layers[check].backward(dy);
          if (i >= 2) samples[check].push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }
    }
    const times = { true: median(samples.true), false: median(samples.false) };
    rows.push({ shape: shape.join('x'), withCheckMs: times.true.toFixed(3), withoutMs: times.false.toFixed(3), overhead: `${(100 * (times.true / times.false - 1)).toFixed(1)}%` });
  }
  if (rank === 0) console.table(rows);
  await dist.destroyProcessGroup();
}

main().catch((e) => { console.error(e); process.exit(1); });
