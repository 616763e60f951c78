// One gloo rank of test/distributed/init_event_loop.test.ts: counts the ticks
// of a 5 ms interval timer while initProcessGroup waits for a late rank
// (DELAY_RANK joins DELAY_MS late), then prints one JSON line.
'use strict';

const path = require('node:path');
const { distributed: dist, tensor } = require(path.resolve(__dirname, '../../../dist'));

const rank = Number(process.env.RANK);
const delayMs = rank === Number(process.env.DELAY_RANK) ? Number(process.env.DELAY_MS) : 0;

async function main() {
  await new Promise((r) => setTimeout(r, delayMs));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const t0 = Date.now();
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs: 20000 });
  const ms = Date.now() - t0;
  clearInterval(timer);
  const t = tensor([rank + 1]);
  dist.allReduce(t);
  await dist.destroyProcessGroup();
  console.log(JSON.stringify({ rank, ticks, ms, sum: t.toArray()[0] }));
}

main().catch((e) => {
  console.log(JSON.stringify({ rank, error: String(e.stack || e) }));
  process.exit(1);
});
