import { LIMITS } from '../src/index.js';
import type { Entry, EntryKind, Level, RequestRecord, Reservation, StockLedger, VerifyReport } from '../src/index.js';
import { ConformanceError, deepEqual, firstDifference, show } from './assert.js';
import { reservationProblems } from './reservation-races.js';

/** What the invariant check read, for further checks by the caller. */
export interface InvariantSnapshot {
  /** Every entry, in seq order. */
  entries: Entry[];
  /** The stored level of every SKU that has an entry, by SKU. */
  levels: Map<string, Level>;
  verify: VerifyReport;
}

/**
 * An operation whose all-or-none outcome should be checked: the id its entries carry, their kind
 * (by default the kind of the request `requestId` names; `'commit'` or `'release'` for those moves
 * of the reservation `requestId`), and every SKU it names.
 */
export interface ExpectedOperation {
  requestId: string;
  kind?: EntryKind;
  skus: readonly string[];
}

/** Most entries the check pages through (bounded, like every loop of the library). */
const ENTRIES_READ_MAX = 1_000_000;

/** Kinds of entry that end a hold. */
const ENDS_HOLD: ReadonlySet<EntryKind> = new Set(['commit', 'release', 'expire']);

/**
 * Checks the invariants of DESIGN.md section 7 on a quiet ledger (no write in flight, and the
 * ledger's clock not behind the time of any write: a reservation stays expired once a hold of it
 * expired, while its other holds count as due only from `expiresAt` on) and throws a
 * `ConformanceError` listing every problem found:
 *
 * - `verify()` is ok;
 * - entries page correctly (`next` is the last seq, null on an empty page) and their `seq` runs
 *   1, 2, 3, ... without gaps;
 * - no level below zero; `0 <= reserved <= onHand <= LIMITS.quantityMax` after every entry;
 * - no (requestId, kind, SKU) twice in the entries;
 * - holds: every commit, release or expire entry ends a hold made by an earlier reserve entry of
 *   the same reservation and SKU, for its whole quantity; the folded `reserved` of every SKU is
 *   what its holds not yet ended hold;
 * - reads: each read level is the fold of the SKU's entries (version included) less the holds
 *   that are due (their reservation reads as `expired`): `reserved` minus their units, `version`
 *   plus one each; `0 <= reserved <= onHand`, `available = onHand - reserved >= 0`;
 *   each entry's `onHandAfter`/`reservedAfter` is the running fold;
 * - every reservation is in exactly one state, consistent with its entries
 *   ({@link reservationProblems});
 * - every applied request is all or none: `request(id)` holds exactly the entries with that id
 *   and its kind, with consecutive seqs in SKU order (so do a commit's or release's entries); and,
 *   for each `operations` item, either every SKU it names has an entry with its id and kind or
 *   none does.
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

  const holds = liveHolds(entries, problems);
  const reservations = new Map<string, Reservation | null>();
  for (const id of new Set(holds.map((h) => h.reservationId))) reservations.set(id, await ledger.reservation(id));
  const due = new Map<string, { qty: number; count: number }>();
  const holding = new Map<string, number>();
  for (const hold of holds) {
    holding.set(hold.sku, (holding.get(hold.sku) ?? 0) + hold.qty);
    const state = reservations.get(hold.reservationId)?.state;
    if (state === 'expired') {
      const d = due.get(hold.sku) ?? { qty: 0, count: 0 };
      due.set(hold.sku, { qty: d.qty + hold.qty, count: d.count + 1 });
    } else if (state !== 'held') {
      problems.push(`${show(hold.reservationId)} still holds ${hold.qty} of ${show(hold.sku)} (no commit, release or expire entry) but reads as ${show(state ?? null)}`);
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
    if (f.reserved !== (holding.get(sku) ?? 0)) {
      problems.push(`${show(sku)}: entries fold to reserved ${f.reserved}, but the holds not yet ended hold ${holding.get(sku) ?? 0}`);
    }
    if (level.onHand < 0 || level.reserved < 0 || level.reserved > level.onHand || level.available < 0) problems.push(`level out of bounds: ${show(level)}`);
    if (level.available !== level.onHand - level.reserved) problems.push(`available is not onHand - reserved: ${show(level)}`);
    const d = due.get(sku) ?? { qty: 0, count: 0 };
    const read = { onHand: level.onHand, reserved: level.reserved, version: level.version };
    const expected = { onHand: f.onHand, reserved: f.reserved - d.qty, version: f.version + d.count };
    if (!deepEqual(read, expected)) {
      const dueText = d.count === 0 ? '' : ` less ${d.count} due hold(s) of ${d.qty} unit(s)`;
      problems.push(`${show(sku)}: read ${show(read)}, entries fold${dueText} to ${show(expected)}`);
    }
  }

  const reservationIds = entries.filter((e) => e.kind === 'reserve').map((e) => e.requestId);
  problems.push(...await reservationProblems(ledger, entries, reservationIds));

  await checkAllOrNone(ledger, entries, options.operations ?? [], problems);

  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join('\n  - ');
    throw new ConformanceError(`invariants broken (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${shown}`);
  }
  return { entries, levels, verify };
}

/**
 * Holds not yet ended, from the entries alone: one per reserve entry without a commit, release
 * or expire entry of the same reservation and SKU. Each ending entry must end a hold made
 * earlier, for its whole quantity, and nothing else.
 */
function liveHolds(entries: readonly Entry[], problems: string[]): Array<{ reservationId: string; sku: string; qty: number }> {
  const holds = new Map<string, { reservationId: string; sku: string; qty: number }>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.requestId, entry.sku]);
    if (entry.kind === 'reserve') {
      if (entry.onHandDelta !== 0 || entry.reservedDelta <= 0) problems.push(`reserve entry seq ${entry.seq} has deltas ${entry.onHandDelta}/${entry.reservedDelta}`);
      holds.set(key, { reservationId: entry.requestId, sku: entry.sku, qty: entry.reservedDelta });
    } else if (ENDS_HOLD.has(entry.kind)) {
      const hold = holds.get(key);
      if (hold === undefined) {
        problems.push(`${entry.kind} entry seq ${entry.seq} (${show(entry.requestId)}, ${show(entry.sku)}) ends no hold (none made, or already ended)`);
        continue;
      }
      if (entry.reservedDelta !== -hold.qty || (entry.kind !== 'commit' && entry.onHandDelta !== 0) || entry.onHandDelta > 0 || -entry.onHandDelta > hold.qty) {
        problems.push(`${entry.kind} entry seq ${entry.seq} has deltas ${entry.onHandDelta}/${entry.reservedDelta} for a hold of ${hold.qty}`);
      }
      holds.delete(key);
    } else if (entry.reservedDelta !== 0) {
      problems.push(`${entry.kind} entry seq ${entry.seq} changes reserved by ${entry.reservedDelta}`);
    }
  }
  return [...holds.values()];
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
  // Entries by (id, kind): a reservation's id carries its reserve, commit or release, and expire entries.
  const byMove = new Map<string, Entry[]>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.requestId, entry.kind]);
    const list = byMove.get(key);
    if (list === undefined) byMove.set(key, [entry]);
    else list.push(entry);
  }
  const records = new Map<string, RequestRecord | null>();
  for (const id of new Set(entries.map((e) => e.requestId))) records.set(id, await ledger.request(id));
  for (const list of byMove.values()) {
    const { requestId, kind } = list[0] as Entry;
    const record = records.get(requestId) ?? null;
    if (record === null) {
      problems.push(`entries of ${show(requestId)} exist but request() returns null`);
      continue;
    }
    if (kind === 'expire') continue; // expiries are written one hold at a time, by whichever call finds them due
    if (ENDS_HOLD.has(kind)) {
      if (record.kind !== 'reserve') problems.push(`${kind} entries of ${show(requestId)}, which is a ${record.kind}, not a reservation`);
    } else if (record.kind !== kind) {
      problems.push(`${kind} entries of ${show(requestId)}, whose request record is a ${record.kind}`);
    } else {
      const difference = firstDifference(list, record.entries);
      if (difference !== null) problems.push(`entries of ${show(requestId)} differ from its request record at ${difference}`);
    }
    list.forEach((entry, i) => {
      const previous = list[i - 1];
      if (previous !== undefined && (entry.seq !== previous.seq + 1 || !(previous.sku < entry.sku))) {
        problems.push(`${kind} entries of ${show(requestId)} are not consecutive in SKU order: ${show(list.map((e) => [e.seq, e.sku]))}`);
      }
    });
  }
  for (const op of operations) {
    const kind = op.kind ?? records.get(op.requestId)?.kind;
    const touched = new Set((kind === undefined ? [] : (byMove.get(JSON.stringify([op.requestId, kind])) ?? [])).map((entry) => entry.sku));
    if (touched.size === 0) continue;
    const missing = op.skus.filter((sku) => !touched.has(sku));
    if (missing.length > 0) problems.push(`${show(op.requestId)} is partly applied: entries for ${show([...touched])}, none for ${show(missing)}`);
  }
}
