/**
 * bench/chart.svg, written by hand (no dependency): one panel per workload (three to a row),
 * ops/s of every contender across the in-flight counts on a shared log scale, raw baselines
 * dashed, stores solid, a legend below.
 */
import { NAMES } from './contenders.js';
import type { Results } from './results.js';

const PANEL = { width: 400, height: 300, top: 96, left: 80, gap: 100, perRow: 3, rowGap: 100 };
const RIGHT_MARGIN = 30;
/** `top` is below the last row of panels. */
const LEGEND = { top: 56, rowHeight: 22, columnWidth: 230, columns: 4 };

interface Style {
  color: string;
  dash: string;
}

/** Hues by engine: memory blue, SQLite orange, Redis purple; baselines lighter and dashed. */
const STYLES: Record<string, Style> = {
  [NAMES.rawMap]: { color: '#6baed6', dash: '6 4' },
  [NAMES.memoryStore]: { color: '#08519c', dash: '' },
  [NAMES.rawSqlite]: { color: '#fdae6b', dash: '6 4' },
  [NAMES.rawSqliteBatch]: { color: '#e6550d', dash: '2 3' },
  [NAMES.sqliteStore]: { color: '#8c2d04', dash: '' },
  [NAMES.rawRedis]: { color: '#9e9ac8', dash: '6 4' },
  [NAMES.redisStore]: { color: '#54278f', dash: '' },
};
const FALLBACK_STYLE: Style = { color: '#444444', dash: '' };

export interface ChartInput {
  results: Results;
  workloads: readonly string[];
  inFlight: readonly number[];
  subtitle: string;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function styleOf(name: string): Style {
  return STYLES[name] ?? FALLBACK_STYLE;
}

/** 1k, 10k, 1M: labels of the decades on the y axis. */
function shortCount(n: number): string {
  if (n >= 1e6) return `${n / 1e6}M`;
  if (n >= 1e3) return `${n / 1e3}k`;
  return String(n);
}

/** Decades that enclose every figure, at least one apart. */
function decades(values: readonly number[]): { low: number; high: number } {
  const positive = values.filter((v) => v > 0);
  const low = Math.floor(Math.log10(Math.min(...positive, 1e6)));
  const high = Math.max(low + 1, Math.ceil(Math.log10(Math.max(...positive, 1))));
  return { low, high };
}

interface Frame {
  x0: number;
  top: number;
  y: (opsPerSecond: number) => number;
  x: (index: number) => number;
}

/** The top of row `row` of panels. */
const rowTop = (row: number): number => PANEL.top + row * (PANEL.height + PANEL.rowGap);

function frameOf(panelIndex: number, span: { low: number; high: number }, points: number): Frame {
  const x0 = PANEL.left + (panelIndex % PANEL.perRow) * (PANEL.width + PANEL.gap);
  const top = rowTop(Math.floor(panelIndex / PANEL.perRow));
  const step = PANEL.width / points;
  return {
    x0,
    top,
    x: (index) => x0 + step * (index + 0.5),
    y: (ops) => top + PANEL.height * (1 - (Math.log10(ops) - span.low) / (span.high - span.low)),
  };
}

function axes(frame: Frame, span: { low: number; high: number }, input: ChartInput, title: string): string[] {
  const out = [`<text x="${frame.x0 + PANEL.width / 2}" y="${frame.top - 20}" class="panel">${escapeXml(title)}</text>`];
  for (let decade = span.low; decade <= span.high; decade += 1) {
    for (const factor of [1, 2, 5]) {
      const value = factor * 10 ** decade;
      if (decade === span.high && factor > 1) continue;
      const y = frame.y(value).toFixed(1);
      out.push(`<line x1="${frame.x0}" x2="${frame.x0 + PANEL.width}" y1="${y}" y2="${y}" class="${factor === 1 ? 'grid' : 'minor'}"/>`);
      if (factor === 1) out.push(`<text x="${frame.x0 - 8}" y="${y}" class="ytick">${shortCount(value)}</text>`);
    }
  }
  input.inFlight.forEach((n, i) => out.push(`<text x="${frame.x(i).toFixed(1)}" y="${frame.top + PANEL.height + 20}" class="xtick">${n}</text>`));
  out.push(`<rect x="${frame.x0}" y="${frame.top}" width="${PANEL.width}" height="${PANEL.height}" class="frame"/>`);
  out.push(`<text x="${frame.x0 + PANEL.width / 2}" y="${frame.top + PANEL.height + 40}" class="axis">operations in flight</text>`);
  const midY = frame.top + PANEL.height / 2;
  out.push(`<text x="${frame.x0 - 58}" y="${midY}" class="axis" transform="rotate(-90 ${frame.x0 - 58} ${midY})">ops/s (log scale)</text>`);
  return out;
}

function series(frame: Frame, input: ChartInput, workload: string, contender: string): string[] {
  const points = input.inFlight.flatMap((n, i) => {
    const row = input.results.find(workload, contender, n);
    return row ? [{ x: frame.x(i), y: frame.y(row.measurement.opsPerSecond) }] : [];
  });
  const { color, dash } = styleOf(contender);
  const path = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
  const dashAttr = dash === '' ? '' : ` stroke-dasharray="${dash}"`;
  return [
    `<path d="${path}" fill="none" stroke="${color}" stroke-width="2.5"${dashAttr}/>`,
    ...points.map((p) => `<circle cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="3.5" fill="${color}"/>`),
  ];
}

function legend(contenders: readonly string[], top: number): string[] {
  return contenders.flatMap((name, i) => {
    const x = PANEL.left + (i % LEGEND.columns) * LEGEND.columnWidth;
    const y = top + Math.floor(i / LEGEND.columns) * LEGEND.rowHeight;
    const { color, dash } = styleOf(name);
    const dashAttr = dash === '' ? '' : ` stroke-dasharray="${dash}"`;
    return [
      `<line x1="${x}" x2="${x + 30}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2.5"${dashAttr}/>`,
      `<circle cx="${x + 15}" cy="${y}" r="3.5" fill="${color}"/>`,
      `<text x="${x + 38}" y="${y}" class="legend">${escapeXml(name)}</text>`,
    ];
  });
}

const CSS = `
  text { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; fill: #222; }
  .title { font-size: 18px; font-weight: 600; text-anchor: middle; }
  .subtitle { font-size: 12px; fill: #555; text-anchor: middle; }
  .panel { font-size: 15px; font-weight: 600; text-anchor: middle; }
  .ytick { font-size: 12px; text-anchor: end; dominant-baseline: middle; }
  .xtick { font-size: 12px; text-anchor: middle; }
  .axis { font-size: 12px; fill: #555; text-anchor: middle; }
  .legend { font-size: 13px; dominant-baseline: middle; }
  .grid { stroke: #ccc; stroke-width: 1; }
  .minor { stroke: #eee; stroke-width: 1; }
  .frame { fill: none; stroke: #888; stroke-width: 1; }
`;

export function chartSvg(input: ChartInput): string {
  const panelCount = Math.max(1, input.workloads.length);
  const columns = Math.min(panelCount, PANEL.perRow);
  const width = PANEL.left + columns * PANEL.width + (columns - 1) * PANEL.gap + RIGHT_MARGIN;
  const legendTop = rowTop(Math.ceil(panelCount / PANEL.perRow) - 1) + PANEL.height + LEGEND.top;
  const contenders = [...new Set(input.results.rows.map((r) => r.contender))];
  const span = decades(input.results.rows.map((r) => r.measurement.opsPerSecond));
  const legendRows = Math.ceil(contenders.length / LEGEND.columns);
  const height = legendTop + legendRows * LEGEND.rowHeight + 10;
  const panels = input.workloads.flatMap((workload, i) => {
    const frame = frameOf(i, span, input.inFlight.length);
    return [...axes(frame, span, input, workload), ...contenders.flatMap((c) => series(frame, input, workload, c))];
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<style>${CSS}</style>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="26" class="title">stock-ledger bench: operations per second by operations in flight</text>`,
    `<text x="${width / 2}" y="46" class="subtitle">${escapeXml(input.subtitle)}</text>`,
    ...panels,
    ...legend(contenders, legendTop),
    '</svg>',
    '',
  ].join('\n');
}
