/**
 * Tables of one bench run: aligned text for the terminal, Markdown for bench/results.md.
 */
import { TARGET_IN_FLIGHT, type ResultRow, type Results, type TargetCheck } from './results.js';

type Align = 'l' | 'r';

interface Table {
  header: string[];
  align: Align[];
  rows: string[][];
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Milliseconds to about three significant digits: 0.0051, 0.42, 3.10, 250. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toPrecision(2);
}

/** 850, 3.1k, 250k, 1.2M: short counts for the slice ranges. */
function fmtShort(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

function fmtRatio(ratio: number | null): string {
  return ratio === null ? '-' : `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}x`;
}

function workloadTable(results: Results, workload: string): Table {
  const rows = results.rows.filter((r) => r.workload === workload);
  const hot = rows.some((r) => r.hotUnits !== null);
  const header = ['contender', 'in flight', 'ops/s', 'p50 ms', 'p99 ms', 'p99/p50', 'vs baseline', 'slices ops/s', ...(hot ? ['sold of units'] : [])];
  const align: Align[] = ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'];
  const cells = (r: ResultRow): string[] => {
    const m = r.measurement;
    const sold = r.hotUnits === null ? [] : [`${fmtInt(m.unitsSold)} of ${fmtInt(r.hotUnits)}`];
    const slices = `${fmtShort(Math.min(...m.sliceOpsPerSecond))}-${fmtShort(Math.max(...m.sliceOpsPerSecond))}`;
    const tail = (m.p99Ms / m.p50Ms).toFixed(2);
    return [r.contender, String(m.inFlight), fmtInt(m.opsPerSecond), fmtMs(m.p50Ms), fmtMs(m.p99Ms), tail, fmtRatio(results.vsBaseline(r)), slices, ...sold];
  };
  return { header, align, rows: rows.map(cells) };
}

function targetTable(checks: readonly TargetCheck[]): Table {
  const verdict = (c: TargetCheck): string => (c.met === null ? 'not measured' : c.met ? 'met' : 'MISSED');
  return {
    header: ['workload', `target (${TARGET_IN_FLIGHT} in flight)`, 'measured', ''],
    align: ['l', 'l', 'r', 'l'],
    rows: checks.map((c) => [c.workload, c.target, fmtRatio(c.value), verdict(c)]),
  };
}

function textLines(table: Table): string[] {
  const all = [table.header, ...table.rows];
  const widths = table.header.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  const line = (row: readonly string[]): string =>
    `  ${row.map((cell, col) => (table.align[col] === 'r' ? cell.padStart(widths[col] ?? 0) : cell.padEnd(widths[col] ?? 0))).join('  ')}`.trimEnd();
  return [line(table.header), `  ${widths.map((w) => '-'.repeat(w)).join('  ')}`, ...table.rows.map(line)];
}

function markdownLines(table: Table): string[] {
  const row = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [row(table.header), row(table.align.slice(0, table.header.length).map((a) => (a === 'r' ? '---:' : '---'))), ...table.rows.map(row)];
}

export const BASELINES_NOTE =
  'vs baseline: memory store over raw Map; raw SQLite 100 ops/tx and SQLite store over raw SQLite 1 op/tx; ' +
  'Redis store over raw Redis EVALSHA; raw PostgreSQL 100 ops/tx and PostgreSQL store over raw PostgreSQL 1 op/tx; ' +
  'a twin (policy, traced) over its plain store; each at the same workload and in-flight count, the raw side running ' +
  'the same operations (a cart, a checkout) by hand. slices ops/s: the slowest and the fastest slice of the measurement.';

export function printWorkload(results: Results, workload: string): void {
  console.log(`\n${workload}`);
  for (const line of textLines(workloadTable(results, workload))) console.log(line);
}

export function printTargets(checks: readonly TargetCheck[]): void {
  console.log('\ntargets');
  for (const line of textLines(targetTable(checks))) console.log(line);
  console.log(`\n${BASELINES_NOTE}`);
}

export interface MarkdownContext {
  results: Results;
  workloads: readonly string[];
  checks: readonly TargetCheck[];
  machine: string;
  date: Date;
  command: string;
  method: string;
  notes: readonly string[];
}

export function markdown(ctx: MarkdownContext): string {
  const sections = ctx.workloads.flatMap((w) => [`## ${w}`, '', ...markdownLines(workloadTable(ctx.results, w)), '']);
  return [
    '# Benchmark results',
    '',
    `Machine: ${ctx.machine}. Date: ${ctx.date.toISOString().slice(0, 10)}. Command: \`${ctx.command}\`.`,
    '',
    ctx.method,
    '',
    ...ctx.notes.map((n) => `- ${n}`),
    ...(ctx.notes.length > 0 ? [''] : []),
    '![ops/s per contender and in-flight count](chart.svg)',
    '',
    ...sections,
    BASELINES_NOTE,
    '',
    '## Targets',
    '',
    ...markdownLines(targetTable(ctx.checks)),
    '',
  ].join('\n');
}
