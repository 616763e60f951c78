#!/usr/bin/env node
// Joins bench.js and torch_bench.py results into one markdown table (ms,
// GB/s, fraction of copy bandwidth, torch / syncbn ratio) and appends it to
// bench/RESULTS.md with the device and the command. argv: syncbn.json torch.json
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const ours = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const theirs = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const key = (r) => `${r.shape.join('x')} ${r.dtype} ${r.format} ${r.mode}`;
const torchBy = new Map(theirs.rows.map((r) => [key(r), r]));
const lines = [
  `### GPU: ${ours.device} (PyTorch ${theirs.torch}, cuDNN ${theirs.cudnn}), ${new Date().toISOString().slice(0, 10)}`,
  '',
  'Command: `bash bench/gpu/run.sh` on the device machine (builds nothing: carries dist/, build/Release and node).',
  '',
  '| case | syncbn ms | syncbn GB/s | of copy | torch ms | torch GB/s | torch / syncbn |',
  '| --- | --- | --- | --- | --- | --- | --- |',
];
for (const r of ours.rows) {
  const t = torchBy.get(key(r));
  lines.push(`| ${key(r)} | ${r.ms.toFixed(3)} | ${r.gbs.toFixed(0)} | ${(100 * r.ofCopy).toFixed(0)}% | ${t ? t.ms.toFixed(3) : '-'} | ${t ? t.gbs.toFixed(0) : '-'} | ${t ? (t.ms / r.ms).toFixed(2) : '-'} |`);
}
const text = lines.join('\n') + '\n';
process.stdout.write(text);
fs.appendFileSync(path.join(__dirname, '..', 'RESULTS.md'), `\n${text}`);
