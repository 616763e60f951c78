// Tables, the SVG chart, and the summary in bench/RESULTS.md.
'use strict';

const { bytes, EFFECTIVE_PASSES, MINIMAL_PASSES, MODES } = require('./cases');

const fmt = (ms) => (ms === null ? 'n/a' : ms < 10 ? ms.toFixed(3) : ms.toFixed(1));

function ratio(peer, base) {
  if (peer === null || base === null) return null;
  return peer / base;
}

/** Markdown table: every case, every peer's median ms and its ratio to syncbn (>1: syncbn is faster). */
function markdownTable(result) {
  const peers = result.peers.filter((p) => p.available).map((p) => p.name);
  const head = ['case', ...peers.map((p) => (p === 'syncbn' ? 'syncbn ms' : `${p} ms (x)`)), 'syncbn GB/s', 'roofline (effective / minimal)', 'copy floor ms (syncbn / floor)'];
  const rows = [head, head.map(() => '---')];
  for (const r of result.rows) {
    const base = r.ms.syncbn;
    const cells = [r.id];
    for (const p of peers) {
      const ms = r.ms[p] ?? null;
      const x = ratio(ms, base);
      cells.push(p === 'syncbn' ? fmt(ms) : ms === null ? (r.skipped[p] ? 'n/a' : '-') : `${fmt(ms)} (${x.toFixed(2)})`);
    }
    cells.push(r.gbs.effective.toFixed(1));
    cells.push(`${(100 * r.roofline.effective).toFixed(0)}% / ${(100 * r.roofline.minimal).toFixed(0)}%`);
    cells.push(r.floorMs === undefined ? '-' : `${fmt(r.floorMs)} (${(base / r.floorMs).toFixed(2)})`);
    rows.push(cells);
  }
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

// copyMs: the machine's copy of each shape's x to y (machine.js copyFloor).
// A mode's floor is that copy scaled to its least traffic (MINIMAL_PASSES;
// a copy is two passes): what syncbn would take if it ran at the machine's
// copy speed for this size, in cache or not.
function enrich(rows, roofGBs, copyMs = {}) {
  for (const r of rows) {
    const copy = copyMs[r.shape.join('x')];
    if (copy !== undefined) r.floorMs = (copy * MINIMAL_PASSES[r.mode]) / 2;
    const ms = r.ms.syncbn;
    const eff = bytes(r, EFFECTIVE_PASSES) / (ms / 1e3) / 1e9;
    const min = bytes(r, MINIMAL_PASSES) / (ms / 1e3) / 1e9;
    r.gbs = { effective: eff, minimal: min };
    r.roofline = { effective: eff / roofGBs, minimal: min / roofGBs };
  }
}

const COLORS = { syncbn: '#1b9e77', pytorch: '#d95f02', 'tfjs-cpu': '#7570b3', 'tfjs-wasm': '#e7298a', onnxruntime: '#66a61e', 'ts-loop': '#a6761d' };

function escapeXml(s) {
  return String(s).replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]);
}

/**
 * One panel per mode; per case a group of horizontal bars, one per peer:
 * time relative to syncbn on a log scale, so "how many times slower" reads off directly.
 */
function svgChart(result) {
  const peers = result.peers.filter((p) => p.available).map((p) => p.name);
  const barH = 9;
  const groupGap = 10;
  const left = 230;
  const width = 900;
  const plotW = width - left - 30;
  const maxRatio = Math.max(2, ...result.rows.flatMap((r) => peers.map((p) => ratio(r.ms[p] ?? null, r.ms.syncbn) ?? 0)));
  const lo = Math.log10(0.25);
  const hi = Math.log10(maxRatio * 1.2);
  const xOf = (v) => left + ((Math.log10(Math.max(v, 0.25)) - lo) / (hi - lo)) * plotW;
  const parts = [];
  let y = 60;
  for (const mode of MODES) {
    const rows = result.rows.filter((r) => r.mode === mode);
    parts.push(`<text x="10" y="${y}" font-size="15" font-weight="bold">${mode}: time relative to syncbn (log scale; 1 = syncbn, right = slower)</text>`);
    y += 12;
    const top = y;
    for (const r of rows) {
      const label = `${r.shape.join('x')} ${r.format === 'channelsLast' ? 'NHWC' : 'NCHW'}`;
      parts.push(`<text x="${left - 8}" y="${y + (peers.length * barH) / 2 + 4}" font-size="11" text-anchor="end">${escapeXml(label)}</text>`);
      for (const p of peers) {
        const v = ratio(r.ms[p] ?? null, r.ms.syncbn);
        if (v !== null) {
          parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, xOf(v) - left).toFixed(1)}" height="${barH - 1}" fill="${COLORS[p] ?? '#999'}"><title>${escapeXml(`${p}: ${fmt(r.ms[p])} ms (${v.toFixed(2)}x syncbn)`)}</title></rect>`);
          parts.push(`<text x="${(xOf(v) + 3).toFixed(1)}" y="${y + barH - 1}" font-size="8">${v.toFixed(v < 10 ? 2 : 0)}</text>`);
        }
        y += barH;
      }
      y += groupGap;
    }
    for (const tick of [0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].filter((t) => t <= maxRatio * 1.2)) {
      const x = xOf(tick).toFixed(1);
      parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${y - groupGap}" stroke="${tick === 1 ? '#000' : '#ccc'}" stroke-width="${tick === 1 ? 1.2 : 0.6}"/>`);
      parts.push(`<text x="${x}" y="${y + 2}" font-size="9" text-anchor="middle">${tick}x</text>`);
    }
    y += 40;
  }
  const legend = peers.map((p, i) => `<rect x="${10 + i * 140}" y="18" width="12" height="12" fill="${COLORS[p] ?? '#999'}"/><text x="${26 + i * 140}" y="28" font-size="12">${escapeXml(p)}</text>`).join('');
  const title = `<text x="10" y="12" font-size="11">${escapeXml(`${result.machine.cpu}, ${result.machine.threads} threads, ${result.date}`)}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${title}${legend}${parts.join('')}</svg>\n`;
}

module.exports = { markdownTable, enrich, svgChart };
