// Bugs users would hit, each as one search/replace on a lib/ file, and the
// test files that must fail with it (every one of them, by an assertion, not
// a compile error). test/mutation/run.js applies each to a copy of the
// package. A pattern that no longer matches exactly once fails the check,
// naming it: update the pattern with the code, never drop the mutation.
'use strict';

const GOLDEN_VARIED = 'test/golden/varied.test.ts';
const GOLDEN_MODULES = 'test/golden/modules.test.ts';
const THREADS = 'test/distributed/syncbn_threads.test.ts';
const COLLECTIVES = 'test/distributed/collectives.test.ts';
// The GPU suite's checks dispatched on the CPU (check_cuda.js --device cpu).
const GPU_DRY = 'test/gpu/golden_cuda.test.ts';
const TFJS_LAYERS = 'test/tfjs/layers.test.ts';
const TFJS_SYNC = 'test/tfjs/sync.test.ts';
const TFJS_PARALLEL = 'test/tfjs/data_parallel.test.ts';

module.exports = [
  {
    name: "BatchNorm's forward ignores eps (always 1e-5)",
    file: 'lib/nn/batchnorm.ts',
    find: 'useBatchStats, factor, this.eps);',
    replace: 'useBatchStats, factor, 1e-5);',
    tests: [GOLDEN_VARIED, GPU_DRY],
  },
  {
    name: "BatchNorm's eval backward ignores eps",
    file: 'lib/nn/batchnorm.ts',
    find: '      eps: this.eps,\n      outputMask:',
    replace: '      eps: s.training ? this.eps : 1e-5,\n      outputMask:',
    tests: [GOLDEN_VARIED],
  },
  {
    name: "the user's momentum replaced by 0.1",
    file: 'lib/nn/batchnorm.ts',
    find: '1 / batches : (this.momentum ?? 0) }',
    replace: '1 / batches : 0.1 }',
    tests: [GOLDEN_VARIED, THREADS],
  },
  {
    name: 'momentum applied as 1 - m',
    file: 'lib/nn/batchnorm.ts',
    find: '1 / batches : (this.momentum ?? 0) }',
    replace: '1 / batches : 1 - (this.momentum ?? 0) }',
    tests: [GOLDEN_MODULES, GOLDEN_VARIED, THREADS],
  },
  {
    name: 'num_batches_tracked never incremented',
    file: 'lib/nn/batchnorm.ts',
    find: '(this.numBatchesTracked!.data as BigInt64Array)[0] += 1n;',
    replace: '(this.numBatchesTracked!.data as BigInt64Array)[0] += 0n;',
    tests: [GOLDEN_MODULES, GOLDEN_VARIED, THREADS, GPU_DRY],
  },
  {
    name: "a dict without num_batches_tracked or versions resets the counter (1.13's rule; 2.x keeps it)",
    file: 'lib/nn/batchnorm.ts',
    find: '[key]: this.numBatchesTracked.clone() }',
    replace: "[key]: zeros([], { dtype: 'int64' }) }",
    tests: ['test/module.test.ts', 'test/golden/checkpoints.test.ts'],
  },
  {
    name: "a materialized lazy layer keeps its lazy class (PyTorch's cls_to_become changes it)",
    file: 'lib/nn/batchnorm.ts',
    find: 'if (becomes !== null) Object.setPrototypeOf(this, becomes.prototype);',
    replace: '',
    tests: ['test/layer_classes.test.ts'],
  },
  {
    name: "a bfloat16 layer's running statistics never move (the updated float32 copies are not written back)",
    file: 'lib/half_params.ts',
    find: 'for (const [t, w] of this.back.splice(0)) t.copy_(w);',
    replace: 'this.back.splice(0);',
    tests: ['test/golden/half_cpu.test.ts', THREADS],
  },
  {
    name: 'eval normalizes with batch statistics',
    file: 'lib/nn/batchnorm.ts',
    find: 'const useBatchStats = this.training || (this.runningMean === null && this.runningVar === null);',
    replace: 'const useBatchStats = true;',
    tests: [GOLDEN_MODULES, GOLDEN_VARIED],
  },
  {
    name: "SyncBatchNorm's synced forward ignores eps",
    file: 'lib/nn/sync_batchnorm.ts',
    find: 'eps: this.eps, momentum: factor,',
    replace: 'eps: 1e-5, momentum: factor,',
    tests: [THREADS],
  },
  {
    name: "SyncBatchNorm's synced forward does not count the batch",
    file: 'lib/nn/sync_batchnorm.ts',
    find: 'if (tracking) this.countBatch();\n    this.saved = null;',
    replace: 'this.saved = null;',
    tests: [THREADS],
  },
  {
    name: 'SyncBatchNorm leaves the running stats alone when every rank is empty (PyTorch 2 moves them)',
    file: 'lib/nn/sync_batchnorm.ts',
    find: 'if (stats.count === 0 && rm !== null && rv !== null) emptyWorldStep(rm, rv, factor);',
    replace: '',
    tests: [THREADS],
  },
  {
    name: "SyncBatchNorm's grad input divides by the local count",
    file: 'lib/nn/sync_batchnorm.ts',
    find: 'r.sumDy!, r.sumDyXmu!, s.count);',
    replace: 'r.sumDy!, r.sumDyXmu!, s.input.numel() / C);',
    tests: [THREADS],
  },
  {
    name: "SyncBatchNorm's backward skips the all-reduce of the grad sums",
    file: 'lib/backends/kernel_ops.ts',
    find: "    group.syncAllReduce(at.fingerprint, sums, 'sum', at);",
    replace: "    if (sums.length < 0) group.syncAllReduce(at.fingerprint, sums, 'sum', at);",
    tests: [THREADS],
  },
  {
    name: "SyncBatchNorm's weight and bias grads overwrite instead of accumulating",
    file: 'lib/nn/sync_batchnorm.ts',
    find: 'if (weight.requiresGrad) accumulate(weight, r.gradWeight!, where);',
    replace: 'if (weight.requiresGrad) weight.grad = r.gradWeight!;',
    tests: [THREADS],
  },
  {
    name: 'convertSyncBatchnorm drops the momentum',
    file: 'lib/nn/sync_batchnorm.ts',
    find: 'eps: m.eps, momentum: m.momentum,',
    replace: 'eps: m.eps, momentum: 0.1,',
    tests: [COLLECTIVES],
  },
  {
    name: 'F.batchNormStats ignores eps',
    file: 'lib/backends/kernel_ops.ts',
    find: 'input: this.array(input), eps, mean: this.array(mean),',
    replace: 'input: this.array(input), eps: 1e-5, mean: this.array(mean),',
    tests: [GOLDEN_VARIED, GPU_DRY],
  },
  {
    name: 'F.batchNormGatherStatsWithCounts ignores momentum',
    file: 'lib/backends/cpu.ts',
    find: 'world, channels: C, momentum, eps,',
    replace: 'world, channels: C, momentum: 0.1, eps,',
    tests: [GOLDEN_VARIED],
  },
  {
    name: 'F.batchNormBackward in eval ignores eps',
    file: 'lib/backends/kernel_ops.ts',
    find: 'eps: a.eps, gradInput:',
    replace: 'eps: a.training ? a.eps : 1e-5, gradInput:',
    tests: [GOLDEN_VARIED, GPU_DRY],
  },
  {
    name: 'F.batchNormWelfordFinalize ignores eps',
    file: 'lib/backends/cpu.ts',
    find: 'native.ops.welfordFinalize({ dtype, summary, channels: C, eps, momentum,',
    replace: 'native.ops.welfordFinalize({ dtype, summary, channels: C, eps: 1e-5, momentum,',
    tests: [GOLDEN_VARIED, THREADS],
  },
  {
    name: "the tfjs layer moves the moving variance towards the unbiased variance (PyTorch's convention, not tfjs's)",
    file: 'lib/tfjs/batch_normalization.ts',
    find: 'variance[c] = unbiased[c] * ((count - 1) / count);',
    replace: 'variance[c] = unbiased[c];',
    tests: [TFJS_LAYERS],
  },
  {
    name: "the tfjs layer's momentum taken as PyTorch's (weight of the new value)",
    file: 'lib/tfjs/batch_normalization.ts',
    find: 'const decay = 1 - momentum;',
    replace: 'const decay = momentum;',
    tests: [TFJS_LAYERS, TFJS_SYNC],
  },
  {
    name: "SyncBatchNormalization's backward sums not reduced over the ranks",
    file: 'lib/tfjs/batch_normalization.ts',
    find: "    group.syncAllReduce(fingerprint, sums, 'sum', { check: true, where: `${this.where} backward` });\n",
    replace: '',
    tests: [TFJS_SYNC],
  },
  {
    name: 'distributedOptimizer applies each rank its own gradients',
    file: 'lib/tfjs/data_parallel.ts',
    find: '    group.syncAllReduce(fingerprint, bucket, this.op, { check: this.check, where: this.where });\n',
    replace: '',
    tests: [TFJS_PARALLEL],
  },
  {
    name: 'a rank refused for its secret is not reported: the rendezvous waits out its timeout',
    file: 'lib/distributed/init.ts',
    find: 'if (await store.check([REFUSED_KEY])) {',
    replace: 'if (false && (await store.check([REFUSED_KEY]))) {',
    tests: ['test/distributed/rendezvous_faults.test.ts'],
  },
];
