import { compareCodePoints } from '../../src/store-kit.js';
import type { Allocation, Applied, Counters, Entry, JsonObject, OperationKind, Reservation } from '../../src/index.js';
import type { HoldRef, StateView, StoredRequest, StoredReservation, Write } from '../../src/store-kit.js';
import { countersOf, decodeKey, entryOf, int, levelAfter, linesOf, type EntryJson, type EntryRef, type LevelJson } from './postgres-codec.js';

/**
 * What decide asked for that the view had not loaded. Thrown through decide (a private
 * signal, never seen outside the store): the store loads it and decides again.
 */
export class Missing extends Error {
  readonly need: Need;

  constructor(need: Need) {
    super(`PostgreSQL store: decide needs ${need.kind} it had not loaded`);
    this.need = need;
  }
}

/** What a {@link Missing} names. Keys are decoded (as decide sees them). */
export type Need =
  | { kind: 'lock'; skus: string[] }
  | { kind: 'request'; id: string }
  | { kind: 'reservation'; id: string }
  | { kind: 'tally'; of: string }
  | { kind: 'holds'; sku: string }
  | { kind: 'anywhere' }
  | { kind: 'buyer'; sku: string; buyer: string };

/** A due hold as loaded. */
export interface HoldItem {
  reservationId: string;
  sku: string;
  expiresAt: number;
}

/** A prefix of a sorted list of rows, and whether it is all of them. */
interface Known<T> {
  items: T[];
  complete: boolean;
}

const byHold = (a: HoldItem, b: HoldItem): number =>
  a.expiresAt - b.expiresAt || compareCodePoints(a.reservationId, b.reservationId) || compareCodePoints(a.sku, b.sku);

/** Rows of the JSON the load statement returns. */
export interface RequestJson {
  id: string; k: OperationKind; f: string; at: number; e: EntryJson[];
  /** A deduct's, reserve's or amend's allocations as JSON text; null: it had no anyOf line. */
  a: string | null;
  /** An amend's reservation as it left it (public shape, JSON text); null on every other request. */
  am: string | null;
}
export interface ReservationJson {
  id: string; st: StoredReservation['state']; l: string; xp: number; fx: number | null; c: number; cm: string | null; m: string | null; h: string[];
  e: EntryJson[] | null;
  /** The buyer its reserve named (escaped); null: none. */
  b: string | null;
}
export interface HoldJson { s: string; r: string; xp: number }
/** A buyer's total of a SKU as stored (0: no row). */
export interface BuyerJson { s: string; b: string; q: number | string }
export interface LoadJson {
  q: RequestJson[]; v: ReservationJson[]; t: Array<{ o: string; s: string; q: number }>; hs: string[]; h: HoldJson[]; a: HoldJson[]; b: BuyerJson[];
}

/**
 * Every entry the current attempt has seen or made, with where it lives, so that seqs known
 * only after commit (and the sequencer) can be put on the very objects outcomes hold.
 */
export class EntryRefs {
  readonly #refs = new Map<Entry, { ref: EntryRef | null; flush: number; pos: number }>();

  loaded(entry: Entry, row: EntryJson): void {
    this.#refs.set(entry, { ref: { op: row.op, pos: row.pos }, flush: -1, pos: row.pos });
  }

  made(entry: Entry, flush: number, pos: number): void {
    this.#refs.set(entry, { ref: null, flush, pos });
  }

  /** A flush was written: its entries now have an op. */
  flushed(flush: number, op: number): void {
    for (const r of this.#refs.values()) if (r.ref === null && r.flush === flush) r.ref = { op, pos: r.pos };
  }

  /** The entries of flush `flush` were inserted numbered from `last` + 1, in their order. */
  numberedAt(flush: number, last: number): void {
    for (const [entry, r] of this.#refs) if (r.flush === flush) entry.seq = last + r.pos + 1;
  }

  /** Ops whose entries lack a seq. */
  unnumberedOps(): number[] {
    const ops = new Set<number>();
    for (const [entry, r] of this.#refs) if (r.ref !== null && typeof entry.seq !== 'number') ops.add(r.ref.op);
    return [...ops];
  }

  /** Puts seqs on the entries (`null` where none is known). */
  number(seqOf: (ref: EntryRef) => number | null): void {
    for (const [entry, r] of this.#refs) {
      if (r.ref === null) continue;
      if (typeof entry.seq !== 'number') entry.seq = seqOf(r.ref);
    }
  }

  /** Marks entries made here as not numbered yet: they run inside the app's transaction. */
  unnumbered(): void {
    for (const [entry, r] of this.#refs) if (r.flush >= 0) entry.seq = null;
  }
}

function storedRequest(row: RequestJson, refs: EntryRefs): StoredRequest {
  const entries = row.e.map((e) => {
    const entry = entryOf(e);
    refs.loaded(entry, e);
    return entry;
  });
  const outcome: Applied = { ok: true, replayed: false, entries, levels: row.e.map(levelAfter) };
  // As materialize made it: allocations only when the request had an anyOf line.
  if (row.a !== null && row.a !== undefined) outcome.allocations = JSON.parse(row.a) as Allocation[];
  // An amend answers with the reservation as it left it: the record may have changed since.
  const amended = row.am === null || row.am === undefined ? null : (JSON.parse(row.am) as Reservation);
  const shown = amended === null ? outcome : ({ ...outcome, reservation: amended } as Applied);
  return { requestId: decodeKey(row.id), kind: row.k, fingerprint: row.f, at: row.at, outcome: shown };
}

/** The reservation's state as stored; the outcome of its commit or release rebuilt from their entries. */
export function storedReservation(row: ReservationJson, refs: EntryRefs): StoredReservation {
  const stored: StoredReservation = {
    id: decodeKey(row.id), state: row.st, lines: linesOf(row.l), expiresAt: row.xp, createdAt: row.c,
    committed: row.cm === null ? null : linesOf(row.cm), holds: row.h.map(decodeKey), outcome: null,
  };
  if (row.m !== null) stored.meta = JSON.parse(row.m) as JsonObject;
  if (row.b !== null && row.b !== undefined) stored.buyer = decodeKey(row.b);
  if (row.e !== null) {
    const entries = row.e.map((e) => {
      const entry = entryOf(e);
      refs.loaded(entry, e);
      return entry;
    });
    stored.outcome = { ok: true, replayed: false, entries, levels: row.e.map(levelAfter) };
  }
  return stored;
}

/**
 * The outcome a request record stands for, rebuilt (a reserve's includes its reservation as
 * created: the expiry it was made with, and its lines as its own entries took them, one per
 * SKU, since an amend may have changed the record's).
 */
export function requestOutcome(row: RequestJson, reservation: ReservationJson | null, refs: EntryRefs): StoredRequest {
  const stored = storedRequest(row, refs);
  if (row.k === 'reserve' && reservation !== null) {
    const created = storedReservation({ ...reservation, e: null }, refs);
    // The expiry it was made with: an extend since moved expires_at and kept the first one.
    const expiresAt = reservation.fx === null || reservation.fx === undefined ? created.expiresAt : int(reservation.fx, 'first_expires_at');
    const lines = row.e.map((e) => ({ sku: decodeKey(e.s), qty: int(e.dr, 'reserved_delta') }));
    // As publicReservation made it: meta and buyer only when it has them.
    const view: Reservation = { id: created.id, state: 'held', lines, expiresAt, createdAt: created.createdAt, committed: null };
    if (created.meta !== undefined) view.meta = created.meta;
    if (created.buyer !== undefined) view.buyer = created.buyer;
    stored.outcome = { ...stored.outcome, reservation: view } as Applied;
  }
  return stored;
}

/**
 * The state decide reads, for one attempt: what was loaded (levels only of SKUs this
 * transaction holds locked) plus every write decided since (not yet flushed). Anything else
 * throws {@link Missing}.
 */
export class Cache implements StateView {
  readonly levels = new Map<string, Counters>();
  readonly requests = new Map<string, StoredRequest | null>();
  readonly reservations = new Map<string, StoredReservation | null>();
  /** Reversal tallies by original request: units by SKU, and the SKUs the load covered (locked then). */
  readonly tallies = new Map<string, { bySku: Map<string, number>; covered: Set<string> }>();
  readonly holds = new Map<string, Known<HoldItem>>();
  /**
   * Buyer totals by SKU, then buyer (nested: no two pairs share a key), only of SKUs this
   * transaction holds locked: every writer of a total holds its SKU's level row, so they stay
   * true until the commit, as levels do (0: loaded, no row).
   */
  readonly buyers = new Map<string, Map<string, number>>();
  anywhere: Known<HoldItem> | null = null;
  readonly refs: EntryRefs;
  /** Latest `at` of the commands: holds are loaded up to it. */
  readonly horizon: number;
  readonly holdsFetch: number;

  constructor(refs: EntryRefs, horizon: number, holdsFetch: number) {
    this.refs = refs;
    this.horizon = horizon;
    this.holdsFetch = holdsFetch;
  }

  /** Forgets what other transactions may change once this one takes more locks (levels stay: they are locked). */
  forgetUnlocked(): void {
    this.requests.clear();
    this.reservations.clear();
    this.tallies.clear();
    this.holds.clear();
    this.anywhere = null;
  }

  counters(sku: string): Counters {
    const c = this.levels.get(sku);
    if (c === undefined) throw new Missing({ kind: 'lock', skus: [sku] });
    return c;
  }

  request(requestId: string): StoredRequest | null {
    const r = this.requests.get(requestId);
    if (r === undefined) throw new Missing({ kind: 'request', id: requestId });
    return r;
  }

  reversed(of: string, sku: string): number {
    if (!this.levels.has(sku)) throw new Missing({ kind: 'lock', skus: [sku] });
    const t = this.tallies.get(of);
    if (t === undefined || !t.covered.has(sku)) throw new Missing({ kind: 'tally', of });
    return t.bySku.get(sku) ?? 0;
  }

  buyerTaken(sku: string, buyer: string): number {
    if (!this.levels.has(sku)) throw new Missing({ kind: 'lock', skus: [sku] });
    const taken = this.buyers.get(sku)?.get(buyer);
    if (taken === undefined) throw new Missing({ kind: 'buyer', sku, buyer });
    return taken;
  }

  /** Whether the total of a pair is known. */
  knowsBuyer(sku: string, buyer: string): boolean {
    return this.buyers.get(sku)?.has(buyer) === true;
  }

  reservation(reservationId: string): StoredReservation | null {
    const r = this.reservations.get(reservationId);
    if (r === undefined) throw new Missing({ kind: 'reservation', id: reservationId });
    return r;
  }

  dueHolds(sku: string, now: number, limit: number): string[] {
    const known = this.holds.get(sku);
    if (known === undefined) throw new Missing({ kind: 'holds', sku });
    const due = dueOf(known, now, limit, () => new Missing({ kind: 'holds', sku }));
    return due.map((h) => h.reservationId);
  }

  dueAnywhere(now: number, limit: number): HoldRef[] {
    if (this.anywhere === null) throw new Missing({ kind: 'anywhere' });
    return dueOf(this.anywhere, now, limit, () => new Missing({ kind: 'anywhere' })).map((h) => ({ reservationId: h.reservationId, sku: h.sku }));
  }

  /** The last hold a sweep at `now` with `limit` takes: its place in the order is what the sweep's seal checks. */
  lastDueAnywhere(now: number, limit: number): HoldItem | null {
    if (this.anywhere === null) return null;
    const due = dueOf(this.anywhere, now, limit, () => new Missing({ kind: 'anywhere' }));
    return due[due.length - 1] ?? null;
  }

  /** Takes in locked level rows. */
  locked(rows: readonly LevelJson[]): void {
    for (const row of rows) this.levels.set(decodeKey(row.s), countersOf(row));
  }

  /** Takes in what the load statement read; `asked` says what was asked, so absent rows read as null. */
  absorb(data: LoadJson, asked: { requests: string[]; reservations: string[]; tallies: string[]; anywhere: number }): void {
    const reservationRows = new Map(data.v.map((v) => [decodeKey(v.id), v]));
    for (const id of asked.requests) this.requests.set(id, null);
    for (const row of data.q) {
      const id = decodeKey(row.id);
      this.requests.set(id, requestOutcome(row, reservationRows.get(id) ?? null, this.refs));
    }
    for (const id of asked.reservations) this.reservations.set(id, null);
    for (const row of data.v) this.reservations.set(decodeKey(row.id), storedReservation(row, this.refs));
    for (const of of asked.tallies) this.tallies.set(of, { bySku: new Map(), covered: new Set(this.levels.keys()) });
    for (const row of data.t) this.tallies.get(decodeKey(row.o))?.bySku.set(decodeKey(row.s), int(row.q, 'reversal qty'));
    const bySku = new Map<string, HoldItem[]>();
    for (const sku of data.hs) bySku.set(decodeKey(sku), []);
    for (const h of data.h) bySku.get(decodeKey(h.s))?.push(holdItem(h));
    for (const [sku, items] of bySku) this.holds.set(sku, { items: items.sort(byHold), complete: items.length < this.holdsFetch });
    if (asked.anywhere > 0) {
      const items = data.a.map(holdItem).sort(byHold);
      this.anywhere = { items, complete: items.length < asked.anywhere };
    }
    for (const row of data.b) {
      const sku = decodeKey(row.s);
      // A total of a SKU not locked could change before the lock is taken: left out.
      if (this.levels.has(sku)) this.#setBuyer(sku, decodeKey(row.b), int(row.q, 'buyer total'));
    }
  }

  #setBuyer(sku: string, buyer: string, taken: number): void {
    let bySku = this.buyers.get(sku);
    if (bySku === undefined) this.buyers.set(sku, (bySku = new Map()));
    bySku.set(buyer, taken);
  }

  /** SKUs locked with nothing reserved: no stored hold can exist for them (reserved is the sum of holds). */
  noHolds(skus: Iterable<string>): void {
    for (const sku of skus) if (!this.holds.has(sku) && this.levels.get(sku)?.reserved === 0) this.holds.set(sku, { items: [], complete: true });
  }

  /** Applies a decided write to the view, so the next command of the unit sees it. */
  apply(write: Write, outcome: Applied | null): void {
    for (const step of write.steps) for (const change of step.changes) this.levels.set(change.sku, change.after);
    if (write.request !== null && outcome !== null) {
      const { requestId, kind, fingerprint } = write.request;
      this.requests.set(requestId, { requestId, kind, fingerprint, at: write.at, outcome });
    }
    for (const { sku, buyer, taken } of write.buyerTotals) this.#setBuyer(sku, buyer, taken);
    if (write.reversal !== null) {
      const tally = this.tallies.get(write.reversal.of);
      for (const line of write.reversal.lines) tally?.bySku.set(line.sku, (tally.bySku.get(line.sku) ?? 0) + line.qty);
    }
    if (write.reservation !== null) this.#addReservation(write.reservation);
    for (const hold of write.holdsEnded) this.#endHold(hold);
    for (const id of write.expired) {
      const r = this.reservations.get(id);
      if (r !== null && r !== undefined && r.state === 'held') r.state = 'expired';
    }
    if (write.settled !== null) {
      const r = this.reservations.get(write.settled.reservationId);
      if (r !== null && r !== undefined) {
        r.state = write.settled.state;
        r.committed = write.settled.committed;
        r.outcome = outcome;
      }
    }
    if (write.extended !== null) this.#extend(write.extended.id, write.extended.expiresAt);
    if (write.amended !== null) this.#amend(write.amended);
  }

  /**
   * An amended reservation: its new lines and holds (dropped SKUs' holds ended already, with
   * `holdsEnded`); a hold of a SKU it did not hold joins the known due prefixes.
   */
  #amend(amended: StoredReservation): void {
    const r = this.reservations.get(amended.id);
    if (r === null || r === undefined) return;
    const added = amended.holds.filter((sku) => !r.holds.includes(sku));
    r.lines = amended.lines.map((l) => ({ ...l }));
    r.holds = [...amended.holds];
    for (const sku of added) this.#insertHold({ reservationId: r.id, sku, expiresAt: r.expiresAt });
  }

  /** A reservation's expiry moved: its holds move in the known due prefixes (out of them, if now past the horizon). */
  #extend(id: string, expiresAt: number): void {
    const r = this.reservations.get(id);
    if (r === null || r === undefined) return;
    r.expiresAt = expiresAt;
    for (const sku of r.holds) {
      const same = (h: HoldItem): boolean => h.reservationId === id && h.sku === sku;
      const item = { reservationId: id, sku, expiresAt };
      const known = this.holds.get(sku);
      if (known !== undefined) {
        known.items = known.items.filter((h) => !same(h));
        insertKnown(known, item);
      }
      if (this.anywhere !== null) {
        this.anywhere.items = this.anywhere.items.filter((h) => !same(h));
        if (expiresAt <= this.horizon) insertKnown(this.anywhere, item);
      }
    }
  }

  #addReservation(created: StoredReservation): void {
    const copy: StoredReservation = { ...created, lines: created.lines.map((l) => ({ ...l })), holds: [...created.holds] };
    this.reservations.set(created.id, copy);
    for (const line of created.lines) this.#insertHold({ reservationId: created.id, sku: line.sku, expiresAt: created.expiresAt });
  }

  /** A hold made by this unit, in the known due prefixes of its SKU and anywhere. */
  #insertHold(item: HoldItem): void {
    const known = this.holds.get(item.sku);
    if (known !== undefined) insertKnown(known, item);
    if (this.anywhere !== null && item.expiresAt <= this.horizon) insertKnown(this.anywhere, item);
  }

  #endHold(hold: HoldRef): void {
    const known = this.holds.get(hold.sku);
    if (known !== undefined) known.items = known.items.filter((h) => !(h.reservationId === hold.reservationId && h.sku === hold.sku));
    if (this.anywhere !== null) {
      this.anywhere.items = this.anywhere.items.filter((h) => !(h.reservationId === hold.reservationId && h.sku === hold.sku));
    }
    const r = this.reservations.get(hold.reservationId);
    if (r !== null && r !== undefined) r.holds = r.holds.filter((sku) => sku !== hold.sku);
  }
}

function holdItem(h: HoldJson): HoldItem {
  return { reservationId: decodeKey(h.r), sku: decodeKey(h.s), expiresAt: int(h.xp, 'expires_at') };
}

/**
 * Adds a hold made by this unit to a known prefix. Past the end of a partial prefix it is left
 * out: rows not loaded may sort before it, and a query that reaches there reloads anyway.
 */
function insertKnown(known: Known<HoldItem>, item: HoldItem): void {
  const { items } = known;
  const last = items[items.length - 1];
  if (!known.complete && (last === undefined || byHold(item, last) > 0)) return;
  let i = items.length;
  while (i > 0 && byHold(items[i - 1] as HoldItem, item) > 0) i -= 1;
  items.splice(i, 0, item);
}

/**
 * The due items of a known prefix, at most `limit`; `missing()` when rows not loaded could
 * belong to the answer (the prefix is partial, it ran out, and its last item was due).
 */
function dueOf(known: Known<HoldItem>, now: number, limit: number, missing: () => Missing): HoldItem[] {
  const due: HoldItem[] = [];
  for (const h of known.items) {
    if (h.expiresAt > now || due.length >= limit) break;
    due.push(h);
  }
  const last = known.items[known.items.length - 1];
  if (!known.complete && due.length < limit && (last === undefined || last.expiresAt <= now)) throw missing();
  return due;
}
