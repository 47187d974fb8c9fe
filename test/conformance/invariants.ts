import { LIMITS } from '../../src/index.js';
import type { Entry, Level, StockLedger, VerifyReport } from '../../src/index.js';
import { ConformanceError, deepEqual, firstDifference, show } from './assert.js';

/** What the invariant check read, for further checks by the caller. */
export interface InvariantSnapshot {
  /** Every entry, in seq order. */
  entries: Entry[];
  /** The stored level of every SKU that has an entry, by SKU. */
  levels: Map<string, Level>;
  verify: VerifyReport;
}

/** An operation whose all-or-none outcome should be checked: its request id and every SKU it names. */
export interface ExpectedOperation {
  requestId: string;
  skus: readonly string[];
}

/** Most entries the check pages through (bounded, like every loop of the library). */
const ENTRIES_READ_MAX = 1_000_000;

/**
 * Checks the invariants of DESIGN.md section 7 on a quiet ledger (no write in flight) and throws
 * a `ConformanceError` listing every problem found:
 *
 * - `verify()` is ok;
 * - entries page correctly (`next` is the last seq, null on an empty page) and their `seq` runs
 *   1, 2, 3, ... without gaps;
 * - no level below zero; `0 <= reserved <= onHand <= LIMITS.quantityMax`; `available = onHand - reserved`;
 * - no (requestId, kind, SKU) twice in the entries;
 * - folding the entries gives every stored level (version included), and each entry's
 *   `onHandAfter`/`reservedAfter` is the running fold;
 * - every applied request is all or none: `request(id)` holds exactly the entries with that id,
 *   with consecutive seqs in SKU order; and, for each `operations` item, either every SKU it
 *   names has an entry with its request id or none does.
 *
 * @example
 * ```ts
 * await Promise.all(orders.map((o) => ledger.deduct(o)));
 * const { entries } = await checkInvariants(ledger);
 * ```
 */
export async function checkInvariants(
  ledger: StockLedger,
  options: { operations?: readonly ExpectedOperation[] } = {},
): Promise<InvariantSnapshot> {
  const problems: string[] = [];
  const verify = await ledger.verify();
  if (!verify.ok) problems.push(`verify() reports drift: ${show(verify.drift)}`);

  const entries = await readAllEntries(ledger, problems);

  entries.forEach((entry, i) => {
    if (entry.seq !== i + 1) problems.push(`entry #${i + 1} has seq ${entry.seq} (seqs must run 1, 2, 3, ...)`);
  });

  const seen = new Set<string>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.requestId, entry.kind, entry.sku]);
    if (seen.has(key)) problems.push(`(requestId, kind, sku) ${key} appears twice: applied more than once`);
    seen.add(key);
  }

  const folded = new Map<string, { onHand: number; reserved: number; version: number }>();
  for (const entry of entries) {
    const f = folded.get(entry.sku) ?? { onHand: 0, reserved: 0, version: 0 };
    f.onHand += entry.onHandDelta;
    f.reserved += entry.reservedDelta;
    f.version += 1;
    folded.set(entry.sku, f);
    if (entry.onHandAfter !== f.onHand || entry.reservedAfter !== f.reserved) {
      problems.push(`entry seq ${entry.seq} (${show(entry.sku)}) says after = ${entry.onHandAfter}/${entry.reservedAfter}, running fold = ${f.onHand}/${f.reserved} (a lost update)`);
    }
    if (f.onHand < 0 || f.reserved < 0 || f.reserved > f.onHand || f.onHand > LIMITS.quantityMax) {
      problems.push(`entry seq ${entry.seq} takes ${show(entry.sku)} to onHand ${f.onHand}, reserved ${f.reserved}`);
    }
  }

  const skus = [...folded.keys()].sort();
  const levels = new Map<string, Level>();
  for (let i = 0; i < skus.length; i += LIMITS.skusPerReadMax) {
    for (const level of await ledger.stocks(skus.slice(i, i + LIMITS.skusPerReadMax))) levels.set(level.sku, level);
  }
  for (const sku of skus) {
    const level = levels.get(sku);
    const f = folded.get(sku);
    if (level === undefined || f === undefined) {
      problems.push(`no level read for ${show(sku)}`);
      continue;
    }
    if (level.onHand < 0 || level.reserved < 0 || level.reserved > level.onHand) problems.push(`level out of bounds: ${show(level)}`);
    if (level.available !== level.onHand - level.reserved) problems.push(`available is not onHand - reserved: ${show(level)}`);
    const stored = { onHand: level.onHand, reserved: level.reserved, version: level.version };
    if (!deepEqual(stored, f)) problems.push(`${show(sku)}: stored ${show(stored)}, entries fold to ${show(f)}`);
  }

  await checkAllOrNone(ledger, entries, options.operations ?? [], problems);

  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join('\n  - ');
    throw new ConformanceError(`invariants broken (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${shown}`);
  }
  return { entries, levels, verify };
}

async function readAllEntries(ledger: StockLedger, problems: string[]): Promise<Entry[]> {
  const entries: Entry[] = [];
  let after = 0;
  while (entries.length <= ENTRIES_READ_MAX) {
    const page = await ledger.entries({ after, limit: LIMITS.entriesPageMax });
    const last = page.entries[page.entries.length - 1];
    if (page.next !== (last === undefined ? null : last.seq)) {
      problems.push(`entries({ after: ${after} }).next is ${page.next}, expected ${last === undefined ? null : last.seq}`);
    }
    if (last === undefined) return entries;
    for (const entry of page.entries) {
      if (entry.seq <= after) {
        problems.push(`entries({ after: ${after} }) returned seq ${entry.seq}`);
        return entries;
      }
      after = entry.seq;
      entries.push(entry);
    }
  }
  problems.push(`more than ${ENTRIES_READ_MAX} entries: not all were checked`);
  return entries;
}

async function checkAllOrNone(
  ledger: StockLedger, entries: Entry[], operations: readonly ExpectedOperation[], problems: string[],
): Promise<void> {
  const byRequest = new Map<string, Entry[]>();
  for (const entry of entries) {
    const list = byRequest.get(entry.requestId);
    if (list === undefined) byRequest.set(entry.requestId, [entry]);
    else list.push(entry);
  }
  for (const [requestId, list] of byRequest) {
    const record = await ledger.request(requestId);
    if (record === null) {
      problems.push(`entries of ${show(requestId)} exist but request() returns null`);
      continue;
    }
    const difference = firstDifference(list, record.entries);
    if (difference !== null) problems.push(`entries of ${show(requestId)} differ from its request record at ${difference}`);
    list.forEach((entry, i) => {
      const previous = list[i - 1];
      if (previous !== undefined && (entry.seq !== previous.seq + 1 || !(previous.sku < entry.sku))) {
        problems.push(`entries of ${show(requestId)} are not consecutive in SKU order: ${show(list.map((e) => [e.seq, e.sku]))}`);
      }
    });
  }
  for (const op of operations) {
    const touched = new Set((byRequest.get(op.requestId) ?? []).map((entry) => entry.sku));
    if (touched.size === 0) continue;
    const missing = op.skus.filter((sku) => !touched.has(sku));
    if (missing.length > 0) problems.push(`${show(op.requestId)} is partly applied: entries for ${show([...touched])}, none for ${show(missing)}`);
  }
}
