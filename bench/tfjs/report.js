// bench:tfjs's tables (markdown, ratios first) and chart (SVG: the speedup
// of syncbn's layer over tf.layers.batchNormalization per row, log scale).
'use strict';

const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3));
const ratio = (a, b) => `${(a / b).toFixed(a / b >= 100 ? 0 : 1)}x`;

function name(r) {
  return `${r.shape.join('x')} axis ${r.axis} ${r.mode}`;
}

function table(result) {
  const out = [`bench:tfjs, @tensorflow/tfjs ${result.tfjs}, ${result.machine.cores} cores (${result.machine.cpu}), ${result.date}${result.quick ? ' (quick)' : ''}\n`];
  for (const b of result.backends) {
    out.push(`\n### tfjs ${b.backend} backend (syncbn kernels: ${b.threads} threads, and 1)\n`);
    out.push('| case | tf.layers.batchNormalization ms | syncbn ms | speedup | syncbn 1 thread ms | speedup | tfjs values |' +
      (b.backend === 'wasm' ? ' output copy share |' : '') + '\n');
    out.push(`| --- | --- | --- | --- | --- | --- | --- |${b.backend === 'wasm' ? ' --- |' : ''}\n`);
    for (const r of b.rows) {
      const failed = r.ms.tfjs === null;
      const right = failed ? `throws: ${r.tfjsError}` : r.tfjsMaxDiff < 1e-3 ? 'right' : `off by ${r.tfjsMaxDiff.toPrecision(3)}`;
      const vs = (ms) => (failed ? '-' : ratio(r.ms.tfjs, ms));
      out.push(`| ${name(r)} | ${failed ? '-' : fmt(r.ms.tfjs)} | ${fmt(r.ms.syncbn)} | ${vs(r.ms.syncbn)} | ${fmt(r.ms.syncbn1)} | ` +
        `${vs(r.ms.syncbn1)} | ${right} |${b.backend === 'wasm' ? ` ${(100 * Math.min(1, r.copyMs / r.ms.syncbn)).toFixed(0)}% |` : ''}\n`);
    }
    out.push('\n| one training step (trainOnBatch) | tf.layers.batchNormalization ms | syncbn ms | speedup |\n| --- | --- | --- | --- |\n');
    for (const [model, m] of Object.entries(b.models)) {
      if (m.skipped) out.push(`| ${model} | not run: ${m.skipped} | | |\n`);
      else out.push(`| ${model} | ${fmt(m.ms.tfjs)} | ${fmt(m.ms.syncbn)} | ${ratio(m.ms.tfjs, m.ms.syncbn)} |\n`);
    }
  }
  const s = result.sync;
  out.push(`\nSyncBatchNormalization forward + backward at ${s.shape.join('x')} per rank, one kernel thread per rank: ` +
    `world 1 ${fmt(s.world1)} ms, world 2 ${fmt(s.world2)} ms (${ratio(s.world2, s.world1)} of world 1).\n`);
  return out.join('');
}

function svg(result) {
  const rows = result.backends.flatMap((b) => b.rows.filter((r) => r.ms.tfjs !== null).map((r) => ({ label: `${b.backend} ${name(r)}`, x: r.ms.tfjs / r.ms.syncbn })));
  const rowH = 18;
  const left = 330;
  const width = 820;
  const max = Math.log10(Math.max(10, ...rows.map((r) => r.x)));
  const scale = (v) => ((width - left - 60) * Math.max(0, Math.log10(v))) / max;
  const bars = rows.map((r, i) => {
    const y = 40 + i * rowH;
    return `<text x="${left - 6}" y="${y + 12}" font-size="11" text-anchor="end">${r.label}</text>` +
      `<rect x="${left}" y="${y + 2}" width="${scale(r.x).toFixed(1)}" height="${rowH - 5}" fill="#3b7dd8"/>` +
      `<text x="${left + scale(r.x) + 4}" y="${y + 12}" font-size="11">${r.x.toFixed(0)}x</text>`;
  });
  const height = 50 + rows.length * rowH;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="14">syncbn's tfjs layer: speedup over ` +
    `tf.layers.batchNormalization (log scale), @tensorflow/tfjs ${result.tfjs}</text>${bars.join('')}</svg>\n`;
}

module.exports = { table, svg };
