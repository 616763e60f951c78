// Cost of one user-level collective: 2 Gloo ranks, allReduce of 192 float64
// (a 64-channel forward sync), best and median of 5 x 2000 calls.
// usage: node bench/collective_cost.js [path/to/dist]   (PyTorch: bench/collective_cost_torch.py)
'use strict';
const path = require('node:path');
const { spawn } = require('node:child_process');
const distPath = path.resolve(process.argv[2] && process.argv[2] !== 'rank' ? process.argv[2] : path.join(__dirname, '..', 'dist'));
const role = process.argv[3];
if (role !== 'rank') {
  const port = String(20000 + Math.floor(Math.random() * 20000));
  for (let r = 0; r < 2; r++) {
    const c = spawn(process.execPath, [__filename, distPath, 'rank'], { env: { ...process.env, RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, OMP_NUM_THREADS: '1' }, stdio: 'inherit' });
  }
} else {
  const { distributed: dist, tensor } = require(distPath);
  (async () => {
    await dist.initProcessGroup({ backend: 'gloo', timeoutMs: 20000 });
    const t = tensor(new Float64Array(192).fill(1), [192], { dtype: 'float64' });
    for (let i = 0; i < 500; i++) dist.allReduce(t);
    const res = [];
    for (let rep = 0; rep < 5; rep++) {
      const n = 2000;
      const s = process.hrtime.bigint();
      for (let i = 0; i < n; i++) dist.allReduce(t);
      res.push(Number(process.hrtime.bigint() - s) / 1e3 / n);
    }
    res.sort((a, b) => a - b);
    if (process.env.RANK === '0') console.log(`${distPath}: allReduce 192 float64 world 2: median ${res[2].toFixed(1)} us/call (min ${res[0].toFixed(1)})`);
    await dist.destroyProcessGroup();
  })();
}
