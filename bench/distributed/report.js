// Tables and the SVG chart of `npm run bench:dist`.
'use strict';

const fmt = (ms) => (ms === null || ms === undefined ? 'n/a' : ms < 1 ? ms.toFixed(3) : ms.toFixed(2));
const times = (a, b) => (a === null || a === undefined || !b ? 'n/a' : `${(a / b).toFixed(2)}x`);

/** The row of `backend` at `world` and `channels`, or null when it did not run. */
function find(result, backend, world, channels) {
  const run = result.runs.find((r) => r.backend === backend && r.world === world && r.rows);
  return run?.rows.find((r) => r.channels === channels) ?? null;
}

/**
 * One markdown table per world size: PyTorch's Gloo all_reduce of 3C float64,
 * syncbn's allReduce of the same over gloo and threads, SyncBatchNorm's
 * overhead per layer (fwd + bwd over BatchNorm2d on the same local batch),
 * each with its ratio to PyTorch's all-reduce.
 */
function markdownTables(result) {
  const out = [];
  for (const world of result.options.worlds) {
    const head = ['channels (payload)', 'PyTorch gloo all_reduce ms', 'syncbn gloo allReduce ms (x)', 'syncbn threads allReduce ms (x)',
      'SyncBatchNorm gloo overhead ms (x)', 'of it in the 2 syncs ms (x)', 'SyncBatchNorm threads overhead ms (x)', 'BatchNorm2d fwd+bwd ms (local)'];
    const rows = [head, head.map(() => '---')];
    for (const C of result.options.channels) {
      const t = find(result, 'torch', world, C);
      const g = find(result, 'gloo', world, C);
      const th = find(result, 'threads', world, C);
      const base = t?.allreduce.ms ?? null;
      const cell = (row, pick) => {
        const v = row ? pick(row) : null;
        return v === null ? 'n/a' : `${fmt(v)} (${times(v, base)})`;
      };
      rows.push([
        `${C} (${(3 * C * 8 / 1024).toFixed(1)} KiB)`,
        fmt(base),
        cell(g, (r) => r.allreduce.ms),
        cell(th, (r) => r.allreduce.ms),
        cell(g, (r) => r.syncbn.overheadMs),
        cell(g, (r) => r.syncbn.collectiveMs ?? null),
        cell(th, (r) => r.syncbn.overheadMs),
        fmt((g ?? th)?.syncbn.plainMs ?? null),
      ]);
    }
    out.push(`World ${world}:\n\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}`);
  }
  return out.join('\n\n');
}

function escapeXml(s) {
  return String(s).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]);
}

const SERIES = [
  { label: 'PyTorch gloo all_reduce', color: '#d62728', backend: 'torch', pick: (r) => r.allreduce.ms },
  { label: 'syncbn gloo allReduce', color: '#1f77b4', backend: 'gloo', pick: (r) => r.allreduce.ms },
  { label: 'SyncBatchNorm gloo overhead / layer', color: '#2ca02c', backend: 'gloo', pick: (r) => r.syncbn.overheadMs },
  { label: 'SyncBatchNorm gloo: in its 2 syncs', color: '#17becf', backend: 'gloo', pick: (r) => r.syncbn.collectiveMs ?? null, dash: '2 2' },
  { label: 'syncbn threads allReduce', color: '#9467bd', backend: 'threads', pick: (r) => r.allreduce.ms, dash: '4 3' },
  { label: 'SyncBatchNorm threads overhead / layer', color: '#8c564b', backend: 'threads', pick: (r) => r.syncbn.overheadMs, dash: '4 3' },
];

/** Log-log lines of ms against channels, one panel per world size. */
function svgChart(result) {
  const { worlds, channels } = result.options;
  const panelW = 420;
  const panelH = 300;
  const margin = { left: 60, top: 50, bottom: 45 };
  const values = [];
  for (const w of worlds) for (const C of channels) for (const s of SERIES) {
    const row = find(result, s.backend, w, C);
    const v = row ? s.pick(row) : null;
    if (v !== null && v > 0) values.push(v);
  }
  const lo = Math.log10(Math.min(...values, 0.01)) - 0.1;
  const hi = Math.log10(Math.max(...values, 0.1)) + 0.1;
  const cx = (i) => (channels.length === 1 ? panelW / 2 : (i / (channels.length - 1)) * (panelW - 20) + 10);
  const cy = (v) => panelH - ((Math.log10(v) - lo) / (hi - lo)) * panelH;
  const parts = [];
  worlds.forEach((w, p) => {
    const ox = margin.left + p * (panelW + margin.left);
    const oy = margin.top;
    parts.push(`<g transform="translate(${ox},${oy})"><rect width="${panelW}" height="${panelH}" fill="none" stroke="#999"/>`);
    parts.push(`<text x="${panelW / 2}" y="-8" text-anchor="middle" font-size="13">world ${w}</text>`);
    for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
      parts.push(`<line x1="0" x2="${panelW}" y1="${cy(10 ** e)}" y2="${cy(10 ** e)}" stroke="#eee"/>`);
      parts.push(`<text x="-6" y="${cy(10 ** e) + 4}" text-anchor="end" font-size="11">${10 ** e} ms</text>`);
    }
    channels.forEach((C, i) => parts.push(`<text x="${cx(i)}" y="${panelH + 16}" text-anchor="middle" font-size="11">${C}</text>`));
    parts.push(`<text x="${panelW / 2}" y="${panelH + 34}" text-anchor="middle" font-size="11">channels (payload 3C float64)</text>`);
    for (const s of SERIES) {
      const pts = channels.map((C, i) => {
        const row = find(result, s.backend, w, C);
        const v = row ? s.pick(row) : null;
        return v !== null && v > 0 ? `${cx(i).toFixed(1)},${cy(v).toFixed(1)}` : null;
      }).filter(Boolean);
      if (pts.length === 0) continue;
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${pts.join(' ')}"/>`);
      for (const pt of pts) parts.push(`<circle cx="${pt.split(',')[0]}" cy="${pt.split(',')[1]}" r="2.5" fill="${s.color}"/>`);
    }
    parts.push('</g>');
  });
  const width = margin.left + worlds.length * (panelW + margin.left);
  const legendY = margin.top + panelH + margin.bottom + 10;
  const legend = SERIES.map((s, i) => `<g transform="translate(${margin.left + (i % 3) * 260},${legendY + Math.floor(i / 3) * 18})">` +
    `<line x1="0" x2="24" y1="-4" y2="-4" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>` +
    `<text x="30" y="0" font-size="12">${escapeXml(s.label)}</text></g>`).join('');
  const height = legendY + 40;
  const title = `<text x="${margin.left}" y="22" font-size="14">${escapeXml(`bench:dist ${result.date}: ms per call (log), ${result.machine.cpu}, ${result.machine.cores} cores`)}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${title}${parts.join('')}${legend}</svg>\n`;
}

module.exports = { markdownTables, svgChart, find };
