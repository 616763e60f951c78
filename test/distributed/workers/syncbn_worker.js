// One rank of a distributed test. Runs as a worker thread (threads backend:
// config in workerData, result posted back) or as a process started by
// syncbn-run (config file in argv[2], result written to argv[3]/rank<r>.json).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { isMainThread, parentPort, workerData } = require('node:worker_threads');
const { nn, tensor, distributed: dist } = require(path.resolve(__dirname, '../../../dist'));

function sliceRows(values, shape, start, n) {
  const per = values.length / shape[0];
  return values.slice(start * per, (start + n) * per);
}

async function run(cfg, rankOverride) {
  const opts = { backend: cfg.backend, timeoutMs: cfg.timeoutMs };
  if (cfg.backend === 'threads') Object.assign(opts, { rank: rankOverride, worldSize: cfg.sizes.length, initMethod: `local://${cfg.name}` });
  if (cfg.initMethod) opts.initMethod = cfg.initMethod;
  await dist.initProcessGroup(opts);
  const rank = dist.getRank();
  const out = { rank, steps: [] };
  try {
    let group = null;
    let members = null;
    for (const ranks of cfg.subgroups || []) {
      const g = await dist.newGroup(ranks);
      if (g.isMember()) {
        group = g;
        members = ranks;
      }
    }
    // The layer's dtype: the input's, or float32 for a half input (mixed precision).
    const layerDtype = cfg.layerDtype ?? cfg.dtype;
    const layerOpts = { eps: cfg.eps, momentum: cfg.momentum, dtype: layerDtype, processGroup: group, checkDivergence: cfg.checkDivergence ?? true };
    const Layer = cfg.layer ? nn[cfg.layer] : nn.SyncBatchNorm;
    const bn = new Layer(cfg.channels, layerOpts);
    const other = new Layer(cfg.otherChannels || cfg.channels, layerOpts);
    if (cfg.weight) bn.weight.copy_(tensor(cfg.weight, [cfg.channels], { dtype: layerDtype }));
    if (cfg.bias) bn.bias.copy_(tensor(cfg.bias, [cfg.channels], { dtype: layerDtype }));

    const start = cfg.sizes.slice(0, rank).reduce((a, b) => a + b, 0);
    for (let s = 0; s < cfg.steps.length; s++) {
      const step = cfg.steps[s];
      // At cfg.emptyStep every rank's batch is empty.
      const n = cfg.emptyStep === s ? 0 : cfg.sizes[rank];
      if (cfg.die && cfg.die.rank === rank && cfg.die.step === s) process.exit(3);
      if (cfg.absent && cfg.absent.rank === rank && cfg.absent.step === s) {
        out.absent = true;
        break;
      }
      bn.train(step.training);
      const shape = [n, ...cfg.shape.slice(1)];
      const x = tensor(sliceRows(step.x, cfg.shape, start, n), shape, { dtype: cfg.dtype, memoryFormat: cfg.memoryFormat });
      const dy = tensor(sliceRows(step.dy, cfg.shape, start, n), shape, { dtype: cfg.dtype, memoryFormat: cfg.memoryFormat });
      let layer = bn;
      let input = x;
      let grad = dy;
      if (cfg.diverge && cfg.diverge.rank === rank && cfg.diverge.step === s) {
        layer = other;
        if (cfg.otherChannels) {
          const alt = [n, cfg.otherChannels, ...cfg.shape.slice(2)];
          input = tensor(Array.from({ length: alt.reduce((a, b) => a * b, 1) }, (_, i) => i % 7), alt, { dtype: cfg.dtype });
          grad = input;
        }
      }
      const y = layer.forward(input);
      const dx = layer.backward(grad);
      out.steps.push({
        y: Array.from(y.toArray()),
        dx: Array.from(dx.toArray()),
        gradWeight: bn.weight && bn.weight.grad ? Array.from(bn.weight.grad.toArray()) : null,
        gradBias: bn.bias && bn.bias.grad ? Array.from(bn.bias.grad.toArray()) : null,
        runningMean: bn.runningMean ? Array.from(bn.runningMean.toArray()) : null,
        runningVar: bn.runningVar ? Array.from(bn.runningVar.toArray()) : null,
        counter: bn.numBatchesTracked ? bn.numBatchesTracked.item() : null,
      });
    }
    out.members = members;
  } catch (e) {
    out.error = e.message;
  }
  return out;
}

if (isMainThread) {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  run(cfg).then(
    (out) => {
      fs.writeFileSync(path.join(process.argv[3], `rank${out.rank}.json`), JSON.stringify(out));
      if (out.error) {
        console.error(out.error);
        process.exitCode = 1;
      }
    },
    (e) => {
      console.error(e.message);
      process.exitCode = 1;
    },
  );
} else {
  run(workerData.cfg, workerData.rank).then(
    (out) => parentPort.postMessage(out),
    (e) => parentPort.postMessage({ rank: workerData.rank, error: e.message, steps: [] }),
  );
}
