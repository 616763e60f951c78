// Quickstart: a BatchNorm2d layer trained for a few steps, then evaluated,
// saved and loaded: what a user of torch.nn.BatchNorm2d expects.
// Run with `npm run quickstart` (after `npm install`).
'use strict';

const { nn, randn, manualSeed } = require('..');

manualSeed(0);
const bn = new nn.BatchNorm2d(16, { momentum: 0.1, eps: 1e-5 });
console.log(String(bn));

for (let step = 1; step <= 3; step++) {
  const x = randn([8, 16, 10, 10], { memoryFormat: step === 2 ? 'channelsLast' : 'contiguous' });
  const y = bn.forward(x);
  const dx = bn.backward(randn(y.shape));
  const out = y.toArray();
  let mean = 0;
  for (const v of out) mean += v / out.length;
  console.log(`step ${step}: output mean ${mean.toExponential(2)}, grad input ${dx.shape.join('x')}, ` +
    `running_mean[0] ${bn.runningMean.toArray()[0].toFixed(5)}, num_batches_tracked ${bn.numBatchesTracked.item()}`);
}
console.log(`weight.grad[0..3]: ${Array.from(bn.weight.grad.toArray().subarray(0, 3), (v) => v.toFixed(4)).join(', ')}`);

bn.eval();
const y = bn.forward(randn([2, 16, 10, 10]));
console.log(`eval output ${y.shape.join('x')} uses the running statistics`);

const copy = new nn.LazyBatchNorm2d();
copy.loadStateDict(bn.stateDict());
console.log(`state dict keys: ${Object.keys(bn.stateDict()).join(', ')}`);
console.log(`loaded into a lazy layer: ${String(copy)}`);
