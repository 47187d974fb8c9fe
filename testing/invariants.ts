import { LIMITS } from '../src/index.js';
import type { Counters, FeedEntry, EntryKind, Level, RequestRecord, Reservation, StockLedger, VerifyReport } from '../src/index.js';
import { verifyItem } from '../src/store-kit.js';
import type { HoldCheck, VerifyItem } from '../src/store-kit.js';
import { ConformanceError, deepEqual, firstDifference, show } from './assert.js';
import { reservationProblems } from './reservation-races.js';

/** What the invariant check read, for further checks by the caller. */
export interface InvariantSnapshot {
  /** Every entry, in seq order. */
  entries: FeedEntry[];
  /** The level of every SKU that has an entry, by SKU, as read. */
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

/** Most problems one failure lists (the count says how many there were). */
const PROBLEMS_SHOWN_MAX = 20;

/** Kinds of entry that end a hold. */
const ENDS_HOLD: ReadonlySet<EntryKind> = new Set(['commit', 'release', 'expire']);

/** A hold not yet ended, from the entries alone. */
interface LiveHold {
  reservationId: string;
  sku: string;
  qty: number;
}

/** What the check read through the public API, shared by its parts. */
interface Reads {
  entries: FeedEntry[];
  /** Each SKU's entries, in seq order. */
  bySku: Map<string, FeedEntry[]>;
  /** The fold of each SKU's entries. */
  folded: Map<string, Counters>;
  holds: LiveHold[];
  /** `reservation(id)` of every reservation with a live hold. */
  reservations: Map<string, Reservation | null>;
  /** `request(id)` of every id an entry carries. */
  records: Map<string, RequestRecord | null>;
  levels: Map<string, Level>;
  /** `buyerTotals()` as read: SKU -> buyer -> taken, for every (SKU, buyer) an entry names. */
  buyerTotals: Map<string, Map<string, number>>;
}

/**
 * Checks the invariants of a quiet ledger (no write in flight, and the ledger's clock not
 * behind the time of any write: a reservation stays expired once a hold of it expired, while
 * its other holds count as due only from `expiresAt` on) and throws a `ConformanceError`
 * listing every problem found, each naming the invariant it breaks:
 *
 * - `verify()` is ok (each drift item is listed with its invariant);
 * - the same invariants, checked by the core's own `verifyItem` (from `stock-ledger/store`) on
 *   what the public API reads, as of the ledger's clock: per SKU, the level `stocks()` reads
 *   against the fold of its `entries()` less the holds that are due (their reservation reads as
 *   `expired`: `reserved` minus their units, `version` plus one each), and the live holds the
 *   entries leave against the level, against each reservation's entries and against its
 *   `reservation(id)` record (state, lines, `expiresAt` as its reserve answered). A store whose
 *   own `verify()` is wrong is caught here;
 * - entries page correctly (`next` is the last seq, null on an empty page) and their `seq` runs
 *   1, 2, 3, ... without gaps; each entry's `onHandAfter`/`reservedAfter` is the running fold,
 *   and keeps `0 <= reserved`, `onHand - reserved + backorderMax >= 0` and
 *   `onHand <= LIMITS.quantityMax`; `available` reads `onHand - reserved + backorderMax`, and the
 *   policy a level shows is the one the SKU's last `policy` entry carries (none: the default);
 * - no (requestId, kind, SKU) twice in the entries (`appliedOnce`);
 * - holds: every commit, release or expire entry ends a hold made by an earlier reserve entry of
 *   the same reservation and SKU, for its whole quantity;
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
  for (const d of verify.drift) problems.push(`verify(): invariant ${d.invariant} of ${show(d.sku)} broken: ${d.message}`);

  const reads = await readAll(ledger, problems);
  checkEntries(reads.entries, problems);
  checkAsRead(reads, problems);
  checkBuyerLimits(reads.bySku, problems);
  const reservationIds = reads.entries.filter((e) => e.kind === 'reserve').map((e) => e.requestId);
  problems.push(...await reservationProblems(ledger, reads.entries, reservationIds));
  checkAllOrNone(reads, options.operations ?? [], problems);

  if (problems.length > 0) {
    const shown = problems.slice(0, PROBLEMS_SHOWN_MAX).join('\n  - ');
    throw new ConformanceError(`invariants broken (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${shown}`);
  }
  return { entries: reads.entries, levels: reads.levels, verify };
}

/** Everything the checks compare, read once. */
async function readAll(ledger: StockLedger, problems: string[]): Promise<Reads> {
  const entries = await readAllEntries(ledger, problems);
  const folded = foldEntries(entries, problems);
  const holds = liveHolds(entries, problems);
  const reservations = new Map<string, Reservation | null>();
  for (const id of new Set(holds.map((h) => h.reservationId))) reservations.set(id, await ledger.reservation(id));
  const records = new Map<string, RequestRecord | null>();
  for (const id of new Set(entries.map((e) => e.requestId))) records.set(id, await ledger.request(id));
  const skus = [...folded.keys()].sort();
  const levels = new Map<string, Level>();
  for (let i = 0; i < skus.length; i += LIMITS.skusPerReadMax) {
    for (const level of await ledger.stocks(skus.slice(i, i + LIMITS.skusPerReadMax))) levels.set(level.sku, level);
  }
  const bySku = new Map<string, FeedEntry[]>();
  for (const e of entries) {
    const list = bySku.get(e.sku);
    if (list === undefined) bySku.set(e.sku, [e]);
    else list.push(e);
  }
  return { entries, bySku, folded, holds, reservations, records, levels, buyerTotals: await readBuyerTotals(ledger, bySku) };
}

/** The value of `key`, made by `make` and kept the first time. */
function entryOf<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  const known = map.get(key);
  if (known !== undefined) return known;
  const made = make();
  map.set(key, made);
  return made;
}

/** `buyerTotals()` of every buyer an entry names, on the SKUs its entries name. */
async function readBuyerTotals(ledger: StockLedger, bySku: ReadonlyMap<string, FeedEntry[]>): Promise<Map<string, Map<string, number>>> {
  const skusOf = new Map<string, Set<string>>();
  for (const [sku, list] of bySku) {
    for (const e of list) if (e.buyer !== undefined) entryOf(skusOf, e.buyer, () => new Set<string>()).add(sku);
  }
  const totals = new Map<string, Map<string, number>>();
  for (const [buyer, skus] of skusOf) {
    const list = [...skus];
    for (let i = 0; i < list.length; i += LIMITS.skusPerReadMax) {
      for (const t of await ledger.buyerTotals({ buyer, skus: list.slice(i, i + LIMITS.skusPerReadMax) })) {
        entryOf(totals, t.sku, () => new Map<string, number>()).set(buyer, t.taken);
      }
    }
  }
  return totals;
}

/**
 * Per SKU, in feed order: every deduct or reserve entry on a SKU with a `buyerMax` names its
 * buyer, and leaves that buyer at or below the limit in force then (a limit lowered later does
 * not take back what was sold before).
 */
function checkBuyerLimits(bySku: ReadonlyMap<string, FeedEntry[]>, problems: string[]): void {
  for (const [sku, list] of bySku) {
    let limit: number | null = null;
    const taken = new Map<string, number>();
    for (const e of list) {
      if (e.kind === 'policy') limit = e.policy?.buyerMax ?? null;
      if (e.buyer !== undefined) taken.set(e.buyer, (taken.get(e.buyer) ?? 0) + e.reservedDelta - e.onHandDelta);
      if (limit === null || (e.kind !== 'deduct' && e.kind !== 'reserve')) continue;
      if (e.buyer === undefined) problems.push(`${e.kind} entry seq ${e.seq} of ${show(sku)} names no buyer, but the SKU has buyerMax ${limit}`);
      else if ((taken.get(e.buyer) ?? 0) > limit) {
        problems.push(`${e.kind} entry seq ${e.seq} takes buyer ${show(e.buyer)} to ${taken.get(e.buyer) ?? 0} of ${show(sku)}, past buyerMax ${limit}`);
      }
    }
  }
}

/** Seqs without gaps (a request applied twice is `appliedOnce`, checked per SKU). */
function checkEntries(entries: readonly FeedEntry[], problems: string[]): void {
  entries.forEach((entry, i) => {
    if (entry.seq !== i + 1) problems.push(`entry #${i + 1} has seq ${entry.seq} (seqs must run 1, 2, 3, ...)`);
  });
}

/** Each SKU's entries folded, checking every entry's `after` fields and bounds on the way. */
function foldEntries(entries: readonly FeedEntry[], problems: string[]): Map<string, Counters> {
  const folded = new Map<string, Counters>();
  for (const entry of entries) {
    const f: Counters = folded.get(entry.sku) ?? { onHand: 0, reserved: 0, version: 0 };
    f.onHand += entry.onHandDelta;
    f.reserved += entry.reservedDelta;
    f.version += 1;
    if (entry.kind === 'policy') {
      if (entry.policy === undefined || entry.onHandDelta !== 0 || entry.reservedDelta !== 0) problems.push(`policy entry seq ${entry.seq} has no policy, or deltas`);
      else if (entry.policy.backorderMax === 0 && entry.policy.lowStockAt === null && entry.policy.buyerMax === null) delete f.policy;
      else f.policy = { ...entry.policy };
    } else if (entry.policy !== undefined) {
      problems.push(`${entry.kind} entry seq ${entry.seq} carries a policy`);
    }
    folded.set(entry.sku, f);
    if (entry.onHandAfter !== f.onHand || entry.reservedAfter !== f.reserved) {
      problems.push(`entry seq ${entry.seq} (${show(entry.sku)}) says after = ${entry.onHandAfter}/${entry.reservedAfter}, running fold = ${f.onHand}/${f.reserved} (a lost update)`);
    }
    if (f.reserved < 0 || f.onHand - f.reserved + (f.policy?.backorderMax ?? 0) < 0 || f.onHand > LIMITS.quantityMax) {
      problems.push(`entry seq ${entry.seq} takes ${show(entry.sku)} to onHand ${f.onHand}, reserved ${f.reserved}`);
    }
  }
  return folded;
}

/**
 * Every SKU as read, through the core's `verifyItem`: what `stocks()` reads is the stored side,
 * the entries (with due holds counted as expired) the folded side.
 */
function checkAsRead(reads: Reads, problems: string[]): void {
  for (const [sku, f] of reads.folded) {
    const level = reads.levels.get(sku);
    if (level === undefined) {
      problems.push(`no level read for ${show(sku)}`);
      continue;
    }
    const backorderMax = level.policy?.backorderMax ?? 0;
    if (level.available !== level.onHand - level.reserved + backorderMax) {
      problems.push(`invariant available of ${show(sku)} broken: reads ${level.available}, onHand - reserved + backorderMax is ${level.onHand - level.reserved + backorderMax}`);
    }
    if (!deepEqual(level.policy ?? null, f.policy ?? null)) {
      problems.push(`the level of ${show(sku)} shows policy ${show(level.policy ?? null)}, its last policy entry says ${show(f.policy ?? null)}`);
    }
    const { item, due } = itemAsRead(sku, level, f, reads);
    const dueText = due.count === 0 ? 'no hold due' : `${due.count} due hold(s) of ${due.qty} unit(s) counted as expired`;
    for (const d of verifyItem(item)) problems.push(`invariant ${d.invariant} of ${show(sku)} broken, as read (${dueText}): ${d.message}`);
  }
}

/** One SKU as the public API shows it, in the shape `verify()` compares. */
function itemAsRead(sku: string, level: Level, f: Counters, reads: Reads): { item: VerifyItem; due: { qty: number; count: number } } {
  const due = { qty: 0, count: 0 };
  const dueBy = new Map<string, number>();
  const holds: HoldCheck[] = [];
  for (const hold of reads.holds) {
    if (hold.sku !== sku) continue;
    const reservation = reads.reservations.get(hold.reservationId) ?? null;
    if (reservation?.state === 'expired') {
      due.qty += hold.qty;
      due.count += 1;
      dueBy.set(hold.reservationId, (dueBy.get(hold.reservationId) ?? 0) + hold.qty);
    } else {
      holds.push(holdCheck(hold, reservation, reads.records.get(hold.reservationId) ?? null));
    }
  }
  const item: VerifyItem = {
    sku,
    stored: level.policy === undefined
      ? { onHand: level.onHand, reserved: level.reserved, version: level.version }
      : { onHand: level.onHand, reserved: level.reserved, version: level.version, policy: level.policy },
    folded: { onHand: f.onHand, reserved: f.reserved - due.qty, version: f.version + due.count },
    holds,
    foldedHolds: foldedHolds(reads.bySku.get(sku) ?? [], dueBy),
    repeated: repeated(reads.bySku.get(sku) ?? []),
    buyers: buyersAsRead(sku, reads),
  };
  return { item, due };
}

/**
 * A live hold next to its reservation's record. Its `expiresAt` is the one its reserve
 * answered (kept in the request record), so a record that moved it is caught. The public
 * record has no list of held SKUs: a reservation that reads as held or expired holds them all.
 */
function holdCheck(hold: LiveHold, reservation: Reservation | null, record: RequestRecord | null): HoldCheck {
  // The hold lasts until the reservation's expiry as read now (an extend moves it, writing no
  // entry); only a hold without a reservation to read falls back to what its reserve answered.
  const answered = reservation?.expiresAt ?? (record as { reservation?: Reservation } | null)?.reservation?.expiresAt;
  const view = reservation === null ? null : {
    state: reservation.state,
    expiresAt: reservation.expiresAt,
    lineQty: reservation.lines.find((l) => l.sku === hold.sku)?.qty ?? null,
    listed: reservation.state === 'held' || reservation.state === 'expired',
  };
  return { reservationId: hold.reservationId, qty: hold.qty, expiresAt: answered ?? Number.NaN, record: view };
}

/**
 * Per reservation, what its entries on one SKU (`entries`) still hold (the sum of their
 * `reservedDelta`s), less the due holds (`dueBy`) that reads count as expired; only non-zero sums.
 */
function foldedHolds(entries: readonly FeedEntry[], dueBy: ReadonlyMap<string, number>): VerifyItem['foldedHolds'] {
  const held = new Map<string, number>();
  for (const e of entries) {
    const holder = e.reservationId ?? e.requestId;
    if (e.reservedDelta !== 0) held.set(holder, (held.get(holder) ?? 0) + e.reservedDelta);
  }
  for (const [id, qty] of dueBy) held.set(id, (held.get(id) ?? 0) - qty);
  return [...held].filter(([, qty]) => qty !== 0).map(([reservationId, qty]) => ({ reservationId, qty }));
}

/**
 * Per buyer of the SKU: `buyerTotals()` as read against the fold of the entries that carry the
 * buyer, less the buyer's due holds (reads count them as expired).
 */
function buyersAsRead(sku: string, reads: Reads): VerifyItem['buyers'] {
  const folded = new Map<string, number>();
  for (const e of reads.bySku.get(sku) ?? []) if (e.buyer !== undefined) folded.set(e.buyer, (folded.get(e.buyer) ?? 0) + e.reservedDelta - e.onHandDelta);
  for (const hold of reads.holds) {
    if (hold.sku !== sku || reads.reservations.get(hold.reservationId)?.state !== 'expired') continue;
    const buyer = reads.reservations.get(hold.reservationId)?.buyer;
    if (buyer !== undefined) folded.set(buyer, (folded.get(buyer) ?? 0) - hold.qty);
  }
  const stored = reads.buyerTotals.get(sku) ?? new Map<string, number>();
  return [...new Set([...folded.keys(), ...stored.keys()])].sort()
    .map((buyer) => ({ buyer, stored: stored.get(buyer) ?? 0, folded: folded.get(buyer) ?? 0 }))
    .filter((b) => b.stored !== 0 || b.folded !== 0);
}

/** Each (request id, kind) with more than one entry among one SKU's `entries`: applied more than once. */
function repeated(entries: readonly FeedEntry[]): VerifyItem['repeated'] {
  const counts = new Map<string, Map<EntryKind, number>>();
  for (const e of entries) {
    const byKind = counts.get(e.requestId) ?? new Map<EntryKind, number>();
    counts.set(e.requestId, byKind);
    byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  }
  return [...counts].flatMap(([requestId, byKind]) => [...byKind].filter(([, n]) => n > 1).map(([kind, count]) => ({ requestId, kind, count })));
}

/**
 * Holds not yet ended, from the entries alone: one per reserve entry without a commit, release
 * or expire entry of the same reservation and SKU; an amend entry changes, makes or ends one of
 * its reservation's. Each ending entry must end a hold made earlier, for its whole quantity,
 * and nothing else.
 */
function liveHolds(entries: readonly FeedEntry[], problems: string[]): LiveHold[] {
  // Nested by reservation, then SKU: no two (id, SKU) pairs can share a key.
  const holds = new Map<string, Map<string, LiveHold>>();
  for (const entry of entries) {
    if (entry.kind === 'reserve') {
      if (entry.onHandDelta !== 0 || entry.reservedDelta <= 0) problems.push(`reserve entry seq ${entry.seq} has deltas ${entry.onHandDelta}/${entry.reservedDelta}`);
      const ofReservation = holds.get(entry.requestId) ?? new Map<string, LiveHold>();
      holds.set(entry.requestId, ofReservation);
      ofReservation.set(entry.sku, { reservationId: entry.requestId, sku: entry.sku, qty: entry.reservedDelta });
    } else if (entry.kind === 'amend') {
      amendHold(entry, holds, problems);
    } else if (ENDS_HOLD.has(entry.kind)) {
      const ofReservation = holds.get(entry.requestId);
      const hold = ofReservation?.get(entry.sku);
      if (hold === undefined) {
        problems.push(`${entry.kind} entry seq ${entry.seq} (${show(entry.requestId)}, ${show(entry.sku)}) ends no hold (none made, or already ended)`);
        continue;
      }
      if (entry.reservedDelta !== -hold.qty || (entry.kind !== 'commit' && entry.onHandDelta !== 0) || entry.onHandDelta > 0 || -entry.onHandDelta > hold.qty) {
        problems.push(`${entry.kind} entry seq ${entry.seq} has deltas ${entry.onHandDelta}/${entry.reservedDelta} for a hold of ${hold.qty}`);
      }
      ofReservation?.delete(entry.sku);
    } else if (entry.reservedDelta !== 0) {
      problems.push(`${entry.kind} entry seq ${entry.seq} changes reserved by ${entry.reservedDelta}`);
    }
  }
  return [...holds.values()].flatMap((bySku) => [...bySku.values()]);
}

/** An amend entry moves a hold of its reservation (made earlier) by `reservedDelta`: it may make one, or end one at exactly 0. */
function amendHold(entry: FeedEntry, holds: Map<string, Map<string, LiveHold>>, problems: string[]): void {
  const id = entry.reservationId;
  if (id === undefined || !holds.has(id) || entry.onHandDelta !== 0 || entry.reservedDelta === 0) {
    problems.push(`amend entry seq ${entry.seq} has reservation ${show(id)} and deltas ${entry.onHandDelta}/${entry.reservedDelta}`);
    return;
  }
  const ofReservation = holds.get(id) as Map<string, LiveHold>;
  const qty = (ofReservation.get(entry.sku)?.qty ?? 0) + entry.reservedDelta;
  if (qty < 0) problems.push(`amend entry seq ${entry.seq} takes ${-entry.reservedDelta} from a hold of ${qty - entry.reservedDelta}`);
  if (qty > 0) ofReservation.set(entry.sku, { reservationId: id, sku: entry.sku, qty });
  else ofReservation.delete(entry.sku);
}

async function readAllEntries(ledger: StockLedger, problems: string[]): Promise<FeedEntry[]> {
  const entries: FeedEntry[] = [];
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

function checkAllOrNone(reads: Reads, operations: readonly ExpectedOperation[], problems: string[]): void {
  const { entries, records } = reads;
  // Entries by (id, kind): a reservation's id carries its reserve, commit or release, and expire entries.
  const byMove = new Map<string, FeedEntry[]>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.requestId, entry.kind]);
    const list = byMove.get(key);
    if (list === undefined) byMove.set(key, [entry]);
    else list.push(entry);
  }
  for (const list of byMove.values()) checkMove(list, records.get((list[0] as FeedEntry).requestId) ?? null, problems);
  for (const op of operations) {
    const kind = op.kind ?? records.get(op.requestId)?.kind;
    const touched = new Set((kind === undefined ? [] : (byMove.get(JSON.stringify([op.requestId, kind])) ?? [])).map((entry) => entry.sku));
    if (touched.size === 0) continue;
    const missing = op.skus.filter((sku) => !touched.has(sku));
    if (missing.length > 0) problems.push(`${show(op.requestId)} is partly applied: entries for ${show([...touched])}, none for ${show(missing)}`);
  }
}

/** The entries of one id and kind against the request record of that id. */
function checkMove(list: readonly FeedEntry[], record: RequestRecord | null, problems: string[]): void {
  const { requestId, kind } = list[0] as FeedEntry;
  if (record === null) {
    problems.push(`entries of ${show(requestId)} exist but request() returns null`);
    return;
  }
  if (kind === 'expire') return; // expiries are written one hold at a time, by whichever call finds them due
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
