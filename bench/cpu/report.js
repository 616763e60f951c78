// Tables and the SVG chart of the CPU benchmark.
'use strict';

const { MINIMAL_PASSES, MODES, DTYPE_BYTES } = require('./cases');

const fmt = (ms) => (ms === null || ms === undefined ? 'n/a' : ms < 10 ? ms.toFixed(3) : ms.toFixed(1));
const times = (x) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(2)}x`);

function ratio(a, b) {
  return a === null || a === undefined || b === null || b === undefined ? null : a / b;
}

function markdown(rows) {
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** The copy floor a case reads (run.js measures one per shape and element size). */
function floorKey(c) {
  return `${c.shape.join('x')}${DTYPE_BYTES[c.dtype ?? 'float32'] === 2 ? ' 16-bit' : ''}`;
}

// copyMs: the machine's copy of each shape's x to y (machine.js copyFloor),
// scaled to each mode's least traffic (a copy is two passes): what syncbn
// would take at the machine's copy speed for this size, in cache or not.
function enrich(rows, copyMs = {}) {
  for (const r of rows) {
    const copy = copyMs[floorKey(r)];
    if (copy !== undefined) r.floorMs = (copy * MINIMAL_PASSES[r.mode]) / 2;
    r.x = { natural: ratio(r.ms.pytorch, r.ms.natural), disposed: ratio(r.ms.pytorch, r.ms.disposed) };
    r.naturalOverDisposed = ratio(r.ms.natural, r.ms.disposed);
    r.spread = { natural: ratio(r.p90.natural, r.ms.natural), pytorch: ratio(r.p90.pytorch, r.ms.pytorch) };
  }
}

/** The headline: every case, syncbn as users write it and disposed, PyTorch, and their ratios. */
function pairTable(result) {
  const head = ['case', 'syncbn nn ms', 'syncbn F+dispose ms', 'pytorch nn ms', 'x (nn)', 'x (F+dispose)', 'nn / F+dispose', 'p90 / median (nn, pytorch)', 'copy floor ms', 'other processes, cores (median / max)'];
  const rows = [head, head.map(() => '---')];
  for (const r of result.rows) {
    rows.push([r.id, fmt(r.ms.natural), fmt(r.ms.disposed), fmt(r.ms.pytorch), times(r.x.natural), times(r.x.disposed),
      times(r.naturalOverDisposed), `${times(r.spread.natural)}, ${times(r.spread.pytorch)}`, fmt(r.floorMs),
      r.otherCores?.median == null ? 'n/a' : `${r.otherCores.median.toFixed(2)} / ${r.otherCores.max.toFixed(2)}`]);
  }
  return markdown(rows);
}

/**
 * Each 16-bit case beside its float32 case: syncbn's time relative to its own
 * float32 time (as users write it, and disposed), and against PyTorch on the
 * same 16-bit input.
 */
function dtypeTable(result) {
  const head = ['case', 'dtype', 'syncbn nn ms (float32 ms)', 'nn 16-bit / float32', 'F+dispose ms (float32 ms)', 'F+dispose 16-bit / float32', 'pytorch ms (float32 ms)', 'pytorch 16-bit / float32', 'x (nn) vs pytorch 16-bit'];
  const rows = [head, head.map(() => '---')];
  const base = new Map(result.rows.filter((r) => (r.dtype ?? 'float32') === 'float32').map((r) => [r.id, r]));
  for (const r of result.rows) {
    if ((r.dtype ?? 'float32') === 'float32') continue;
    const b = base.get(r.id.slice(0, -(r.dtype.length + 1)));
    if (!b) continue;
    const pair = (s) => `${fmt(r.ms[s])} (${fmt(b.ms[s])})`;
    rows.push([b.id, r.dtype, pair('natural'), times(ratio(r.ms.natural, b.ms.natural)), pair('disposed'), times(ratio(r.ms.disposed, b.ms.disposed)),
      pair('pytorch'), times(ratio(r.ms.pytorch, b.ms.pytorch)), times(r.x.natural)]);
  }
  return markdown(rows);
}

const LOOP_NAMES = { natural: 'syncbn nn (no dispose())', disposed: 'syncbn nn + dispose()', pytorch: 'pytorch nn' };

/** The training loop: time per step and memory, each peer in its own process. */
function loopTable(result) {
  const l = result.loop;
  const head = [`training loop, ${l.steps} steps of forward + backward at ${l.shape.join('x')}`, 'ms per step', 'median / p90 step ms', 'x (pytorch / peer)', 'RSS before loop MB', 'peak RSS MB'];
  const rows = [head, head.map(() => '---')];
  const torchMs = l.summary.pytorch?.msPerStep ?? null;
  for (const [style, s] of Object.entries(l.summary)) {
    rows.push([LOOP_NAMES[style], fmt(s.msPerStep), `${fmt(s.medianMs)} / ${fmt(s.p90Ms)}`, style === 'pytorch' ? '1.00x' : times(ratio(torchMs, s.msPerStep)),
      s.rssBeforeMB.toFixed(0), s.peakRssMB.toFixed(0)]);
  }
  return markdown(rows);
}

/**
 * The slow peers, and PyTorch measured right after each of them, with the
 * cores busy meanwhile in this Node process, in PyTorch and in every other
 * process on the machine.
 */
function slowTable(result) {
  const s = result.slow;
  const names = s.peers.filter((p) => p.available).map((p) => p.name);
  const head = ['case', ...names.map((n) => `${n} ms (x nn)`), 'pytorch ms: alone', ...names.map((n) => `after ${n} / then after a full gc`)];
  const rows = [head, head.map(() => '---')];
  for (const r of s.rows) {
    const one = (a) => {
      if (!a) return 'n/a';
      const c = a.cores;
      return c ? `${fmt(a.ms)} (cores: node ${c.node.toFixed(2)}, pytorch ${c.pytorch.toFixed(2)}, others ${c.others.toFixed(2)})` : fmt(a.ms);
    };
    const after = (k) => (k === 'alone' ? one(r.pytorchAfter.alone) : `${one(r.pytorchAfter[k])} / ${one(r.pytorchAfterCollect[k])}`);
    rows.push([r.id, ...names.map((n) => (r.ms[n] === undefined ? 'n/a' : `${fmt(r.ms[n])} (${times(ratio(r.ms[n], r.syncbnNatural))})`)),
      after('alone'), ...names.map(after)]);
  }
  return markdown(rows);
}

const COLORS = { natural: '#1b9e77', disposed: '#66c2a5', pytorch: '#d95f02' };
const LABELS = { natural: 'syncbn nn (no dispose())', disposed: 'syncbn F + dispose()', pytorch: 'PyTorch nn' };

function escapeXml(s) {
  return String(s).replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]);
}

/**
 * One panel per mode; per case a group of horizontal bars, one per peer,
 * in milliseconds on a log scale (the cases span three decades), each bar
 * labelled with its time.
 */
function svgChart(result) {
  const styles = Object.keys(COLORS).filter((s) => result.rows.some((r) => r.ms[s] !== undefined && r.ms[s] !== null));
  const barH = 10;
  const groupGap = 10;
  const left = 230;
  const width = 900;
  const plotW = width - left - 60;
  const all = result.rows.flatMap((r) => styles.map((s) => r.ms[s])).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...all)));
  const hi = Math.ceil(Math.log10(Math.max(...all)));
  const xOf = (v) => left + ((Math.log10(v) - lo) / Math.max(1, hi - lo)) * plotW;
  const parts = [];
  let y = 70;
  for (const mode of MODES) {
    const rows = result.rows.filter((r) => r.mode === mode);
    if (rows.length === 0) continue;
    parts.push(`<text x="10" y="${y}" font-size="15" font-weight="bold">${mode}: milliseconds per call (log scale; shorter is faster)</text>`);
    y += 12;
    const top = y;
    for (const r of rows) {
      const label = `${r.shape.join('x')} ${r.format === 'channelsLast' ? 'channels-last' : 'contiguous'}${(r.dtype ?? 'float32') === 'float32' ? '' : ` ${r.dtype}`}`;
      parts.push(`<text x="${left - 8}" y="${y + (styles.length * barH) / 2 + 4}" font-size="11" text-anchor="end">${escapeXml(label)}</text>`);
      for (const s of styles) {
        const v = r.ms[s];
        if (v > 0) {
          const x = xOf(v);
          parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x - left).toFixed(1)}" height="${barH - 1}" fill="${COLORS[s]}"><title>${escapeXml(`${LABELS[s]}: ${fmt(v)} ms`)}</title></rect>`);
          parts.push(`<text x="${(x + 3).toFixed(1)}" y="${y + barH - 1}" font-size="9">${fmt(v)} ms</text>`);
        }
        y += barH;
      }
      y += groupGap;
    }
    for (let e = lo; e <= hi; e++) {
      for (const m of [1, 2, 5]) {
        const tick = m * 10 ** e;
        if (Math.log10(tick) > hi) continue;
        const x = xOf(tick).toFixed(1);
        parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${y - groupGap}" stroke="${m === 1 ? '#999' : '#ddd'}" stroke-width="0.6"/>`);
        parts.push(`<text x="${x}" y="${y + 2}" font-size="9" text-anchor="middle">${tick >= 1 ? tick : tick.toPrecision(1)} ms</text>`);
      }
    }
    y += 40;
  }
  const legend = styles.map((s, i) => `<rect x="${10 + i * 200}" y="30" width="12" height="12" fill="${COLORS[s]}"/><text x="${26 + i * 200}" y="40" font-size="12">${escapeXml(LABELS[s])}</text>`).join('');
  const torch = result.peers.pytorch?.available ? `PyTorch ${result.peers.pytorch.version}` : 'PyTorch not run';
  const title = `<text x="10" y="16" font-size="12">${escapeXml(`syncbn ${result.peers.syncbn.version} vs ${torch}, ${result.threads} threads each; ${result.machine.cpu}; ${result.date}`)}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${title}${legend}${parts.join('')}</svg>\n`;
}

module.exports = { pairTable, loopTable, slowTable, dtypeTable, enrich, svgChart, floorKey };
