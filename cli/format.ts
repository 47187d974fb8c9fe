/**
 * Output for people: aligned tables and short lines. JSON output does not come through here
 * (it prints the library's own objects as they are).
 */
import type { CompactReport, Entry, Hold, HoldsPage, Level, RequestRecord, Reservation, StockEvent, SweepResult, VerifyReport } from '../src/index.js';

/**
 * Left-aligned columns separated by two spaces, with a header row.
 *
 * @example
 * table(['SKU', 'ON HAND'], [['A', '3']]); // 'SKU  ON HAND\nA    3'
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function time(ms: number): string {
  return new Date(ms).toISOString();
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

export function formatLevels(levels: readonly Level[]): string {
  return table(['SKU', 'ON HAND', 'RESERVED', 'AVAILABLE', 'VERSION'],
    levels.map((l) => [l.sku, String(l.onHand), String(l.reserved), String(l.available), String(l.version)]));
}

const ENTRY_HEADER = ['SEQ', 'AT', 'KIND', 'SKU', 'ON HAND', 'RESERVED', 'REQUEST'];

function entryCells(e: Entry): string[] {
  return [String(e.seq ?? '-'), time(e.at), e.kind, e.sku, `${e.onHandAfter} (${signed(e.onHandDelta)})`,
    `${e.reservedAfter} (${signed(e.reservedDelta)})`, e.requestId];
}

export function formatEntries(entries: readonly Entry[]): string {
  if (entries.length === 0) return 'no entries';
  return table(ENTRY_HEADER, entries.map(entryCells));
}

/** One entry on one line, for `entries --follow` (no header: the stream has no end to align to). */
export function formatEntryLine(e: Entry): string {
  const [seq, at, kind, sku, onHand, reserved, request] = entryCells(e);
  return `#${seq} ${at} ${kind} ${sku} onHand ${onHand} reserved ${reserved} request ${request}`;
}

export function formatVerify(report: VerifyReport): string {
  const skus = `${report.skusChecked} SKU${report.skusChecked === 1 ? '' : 's'} checked`;
  if (report.ok) return `ok: ${skus}, no drift`;
  const rows = report.drift.map((d) => [d.sku, d.invariant, d.message]);
  return `DRIFT: ${skus}, ${report.drift.length} broken invariant${report.drift.length === 1 ? '' : 's'}\n${table(['SKU', 'INVARIANT', 'DETAIL'], rows)}`;
}

export function formatRequest(record: RequestRecord): string {
  const head = `request ${record.requestId}: ${record.kind} at ${time(record.at)}`;
  return `${head}\n${formatEntries(record.entries)}`;
}

export function formatReservation(r: Reservation): string {
  const lines = [
    `reservation ${r.id}: ${r.state}`,
    `created ${time(r.createdAt)}, expires ${time(r.expiresAt)}`,
    ...(r.buyer === undefined ? [] : [`buyer ${r.buyer}`]),
    table(['SKU', 'QTY', 'COMMITTED'], r.lines.map((l) => [l.sku, String(l.qty), committedOf(r, l.sku)])),
  ];
  return lines.join('\n');
}

function committedOf(r: Reservation, sku: string): string {
  if (r.committed === null) return '-';
  return String(r.committed.find((l) => l.sku === sku)?.qty ?? 0);
}

export function formatHolds(sku: string, page: HoldsPage): string {
  if (page.holds.length === 0) return `no live holds of ${sku}`;
  const rows = page.holds.map((h: Hold) => [h.reservationId, String(h.qty), time(h.expiresAt), h.buyer ?? '-']);
  const more = page.next === null ? '' : '\n(more holds: raise --limit)';
  return `${table(['RESERVATION', 'QTY', 'EXPIRES', 'BUYER'], rows)}${more}`;
}

export function formatSweep(result: SweepResult): string {
  const count = `expired ${result.expired} hold${result.expired === 1 ? '' : 's'}`;
  return result.more ? `${count}; more are due: run sweep again` : `${count}; none left due`;
}

/** One event on one line, its cursor last (what to pass as `--after` to go on). */
export function formatEvent(e: StockEvent): string {
  const threshold = e.type === 'depleted' ? '' : ` (threshold ${e.threshold})`;
  return `${time(e.entry.at)} ${e.type} ${e.sku}: available ${e.availableBefore} -> ${e.available}${threshold}, entry #${e.entry.seq} ${e.entry.kind} ${e.entry.requestId}; cursor ${e.cursor}`;
}

export function formatCompact(r: CompactReport): string {
  const removed = `removed ${r.requests} request record${r.requests === 1 ? '' : 's'}, ${r.reservations} reservation${r.reservations === 1 ? '' : 's'}, ${r.entries} entr${r.entries === 1 ? 'y' : 'ies'}`;
  const feed = r.compactedThrough === 0 ? 'nothing compacted yet' : `the feed now starts after seq ${r.compactedThrough}`;
  return `${removed} older than ${time(r.before)} in ${r.steps} step${r.steps === 1 ? '' : 's'}; ${feed}`;
}
