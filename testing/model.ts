import { LIMITS } from '../src/index.js';
import type {
  AdjustInput, Allocation, AmendInput, AnyOfLine, Applied, CommitInput, DeductInput, ExtendInput, FeedEntry, EntryKind, JsonObject, JsonValue, Level, Line, OperationKind, OrderLine, OperationResult, Rejection, ReleaseInput,
  RequestRecord, Reservation, ReserveApplied, ReserveInput, RestockInput, ReverseInput, RevokeInput, SetPolicyInput, StockPolicy, SweepInput, SweepResult,
} from '../src/index.js';
import type { Op, Outcome, Thrown } from './ops.js';

/**
 * What one call wrote, kept exactly as it was first answered. Never changed afterwards.
 *
 * - `request`: an applied operation with its own request id (a reserve keeps the reservation
 *   it answered with; a revoke is a request with no entries, a tombstone);
 * - `settle`: an applied commit or release of a reservation (a commit keeps the lines it asked
 *   for, normalized, to tell a replay from a conflict);
 * - `expiry`: the expiries of due holds that one call wrote (a sweep, or any call that touched
 *   SKUs with due holds, even if it was then rejected);
 * - `extend`: a reservation's expiry moved (no entries: from then on its holds are due at
 *   `expiresAt`; its reserve's own answer, replays included, keeps the first expiry).
 */
type Written =
  | {
      type: 'request'; requestId: string; kind: OperationKind; payload: string; of: string | null; at: number;
      entries: FeedEntry[]; levels: Level[]; reservation: Reservation | null; allocations: Allocation[] | null;
    }
  | { type: 'settle'; reservationId: string; kind: 'commit' | 'release'; sold: Line[] | null; at: number; entries: FeedEntry[]; levels: Level[] }
  | { type: 'expiry'; at: number; entries: FeedEntry[] }
  | { type: 'extend'; reservationId: string; expiresAt: number; at: number; entries: FeedEntry[] };

/** A change to one SKU, before it becomes an entry. */
interface Change {
  requestId: string;
  kind: EntryKind;
  sku: string;
  onHandDelta: number;
  reservedDelta: number;
  meta: JsonObject | undefined;
  /** A policy change: the whole policy after it. */
  policy?: StockPolicy;
  /** The buyer the change takes for or gives back by. */
  buyer?: string | undefined;
  /** An amend's change: the reservation whose hold it changes. */
  reservationId?: string | undefined;
}

/** No backorder, no low-stock threshold: what a SKU has until a setPolicy says otherwise. */
const DEFAULT_POLICY: StockPolicy = { backorderMax: 0, lowStockAt: null, buyerMax: null };

/** One SKU of one reservation, still held in storage (no commit, release or expire entry yet). */
interface Hold {
  reservationId: string;
  sku: string;
  qty: number;
  expiresAt: number;
  meta: JsonObject | undefined;
  buyer: string | undefined;
}

type Result = OperationResult | Thrown;

/**
 * The reference model of one ledger: deliberately plain and slow, written from the contract
 * (the README's API tour, Reservations, Idempotency rules and Results and errors), not from
 * the library's decision code.
 *
 * Its whole state is the list of what calls wrote. Entries are their concatenation; a SKU's
 * level is the fold of its entries; what is still held is the reserve entries without a
 * commit, release or expire entry for the same reservation and SKU; a reservation's state is
 * read from what was written for it and the time; "what is left to reverse" is recomputed from
 * the list each time. It expects input that passed validation, except for the invalid inputs the
 * generators make on purpose (merged quantities past the limit, a reverse of itself), which it
 * answers with `{ thrown: 'INVALID_INPUT' }`.
 *
 * Time: every call carries its time `at`. A hold is due when `at >= expiresAt`. Reads (`stock`,
 * `reservation`) see due holds as expired; writes first write the expiry of the due holds of the
 * SKUs they touch, then decide.
 *
 * @example
 * ```ts
 * const model = new ReferenceModel();
 * model.apply({ kind: 'restock', input: { requestId: 'r1', sku: 'A', qty: 5 } }, 1000);
 * model.level('A').onHand === 5;
 * ```
 */
export class ReferenceModel {
  #written: Written[] = [];

  /** An independent copy (written records are immutable, so sharing them is safe). */
  clone(): ReferenceModel {
    const copy = new ReferenceModel();
    copy.#written = [...this.#written];
    return copy;
  }

  /** Runs one op at time `at` and returns what the ledger must answer. */
  apply(op: Op, at: number): Outcome {
    switch (op.kind) {
      case 'restock':
        return this.restock(op.input, at);
      case 'deduct':
        return this.deduct(op.input, at);
      case 'adjust':
        return this.adjust(op.input, at);
      case 'reverse':
        return this.reverse(op.input, at);
      case 'reserve':
        return this.reserve(op.input, at);
      case 'revoke':
        return this.revoke(op.input, at);
      case 'setPolicy':
        return this.setPolicy(op.input, at);
      case 'amend':
        return this.amend(op.input, at);
      case 'commit':
        return this.commit(op.input, at);
      case 'release':
        return this.release(op.input, at);
      case 'extend':
        return this.extend(op.input, at);
      case 'sweep':
        return this.sweep(op.input, at);
      case 'stock':
        return this.levelAt(op.sku, at);
      case 'reservation':
        return this.reservation(op.id, at);
    }
  }

  /**
   * Restock: one SKU, or lines merged like a deduct's (a sum past the quantity limit is
   * INVALID_INPUT); the shorthand and one line are one payload. Due holds of every SKU expire,
   * then the first line in SKU order that would pass the limit refuses all.
   */
  restock(input: RestockInput, at: number): Result {
    const lines = 'lines' in input ? mergeLines(input.lines) : [{ sku: input.sku, qty: input.qty }];
    if (lines.some((line) => line.qty > LIMITS.quantityMax)) return { thrown: 'INVALID_INPUT' };
    const payload = canonical(['restock', lines.map((l) => [l.sku, l.qty]), input.meta ?? null]);
    return this.#run(input.requestId, 'restock', payload, null, input.meta, at, () => {
      this.#expireDue(lines.map((l) => l.sku), at);
      for (const line of lines) {
        const { onHand } = this.level(line.sku);
        if (onHand + line.qty > LIMITS.quantityMax) {
          return { ok: false, code: 'QUANTITY_LIMIT', sku: line.sku, requested: line.qty, onHand, limit: LIMITS.quantityMax };
        }
      }
      return lines.map((line) => ({ sku: line.sku, onHandDelta: line.qty, reservedDelta: 0 }));
    });
  }

  deduct(input: DeductInput, at: number): Result {
    const given = 'lines' in input ? input.lines : [{ sku: input.sku, qty: input.qty }];
    if (tooLarge(given)) return { thrown: 'INVALID_INPUT' };
    const { buyer } = input;
    const payload = canonical(['deduct', payloadLines(given), input.meta ?? null, buyer ?? null]);
    return this.#run(input.requestId, 'deduct', payload, null, input.meta, at, () => {
      const taken = this.#take(given, buyer, at);
      if (!('lines' in taken)) return taken;
      const deltas = taken.lines.map((line) => ({ sku: line.sku, onHandDelta: -line.qty, reservedDelta: 0, buyer }));
      return taken.allocations === null ? deltas : { deltas, allocations: taken.allocations };
    });
  }

  /**
   * What a deduct or reserve takes after due expiries, or what refuses it. One-SKU lines only:
   * the buyer's limit, then the stock. With anyOf lines: the one-SKU lines' stock, then each
   * anyOf line in order (each sees what the lines before took), then the buyer's limit.
   */
  #take(given: OrderLine[], buyer: string | undefined, at: number, credit: ReadonlyMap<string, number> = new Map()): { lines: Line[]; allocations: Allocation[] | null } | Result {
    const named = [...new Set(given.flatMap((l) => ('anyOf' in l ? l.anyOf : [l.sku])))].sort(byText);
    if (buyer === undefined && named.some((sku) => this.policy(sku).buyerMax !== null)) return { thrown: 'INVALID_INPUT' };
    this.#expireDue(named, at);
    const plain = mergeLines(given.filter((l): l is Line => !('anyOf' in l)));
    if (given.every((l) => !('anyOf' in l))) {
      return this.#buyerLimitOf(plain, buyer, credit) ?? this.#shortOf(plain, credit) ?? { lines: plain, allocations: null };
    }
    const short = this.#shortOf(plain, credit);
    if (short !== null) return short;
    const left = new Map<string, number>();
    const leftOf = (sku: string): number => left.get(sku) ?? this.level(sku).available + (credit.get(sku) ?? 0) - (plain.find((l) => l.sku === sku)?.qty ?? 0);
    const allocations: Allocation[] = [];
    for (const [index, line] of given.entries()) {
      const taken = 'anyOf' in line ? allocateLine(line, leftOf) : [{ sku: line.sku, qty: line.qty }];
      if (taken === null) {
        const anyOf = (line as AnyOfLine).anyOf;
        const available = anyOf.reduce((sum, sku) => sum + leftOf(sku), 0);
        return { ok: false, code: 'INSUFFICIENT_STOCK', sku: anyOf[0] ?? '', requested: line.qty, available, line: index, anyOf: [...anyOf] };
      }
      if ('anyOf' in line) for (const t of taken) left.set(t.sku, leftOf(t.sku) - t.qty);
      allocations.push({ line: index, taken });
    }
    const lines = mergeLines(allocations.flatMap((a) => a.taken));
    return this.#buyerLimitOf(lines, buyer, credit) ?? { lines, allocations };
  }

  /** The first line (in SKU order) that would take the buyer past the SKU's buyerMax. */
  #buyerLimitOf(lines: Line[], buyer: string | undefined, credit: ReadonlyMap<string, number>): Rejection | null {
    if (buyer === undefined) return null;
    for (const line of lines) {
      const limit = this.policy(line.sku).buyerMax;
      if (limit === null) continue;
      const taken = this.buyerTaken(line.sku, buyer) - (credit.get(line.sku) ?? 0);
      if (taken + line.qty > limit) return { ok: false, code: 'BUYER_LIMIT', sku: line.sku, buyer, limit, taken };
    }
    return null;
  }

  /** What a buyer holds plus has bought of a SKU, as stored: the fold of the SKU's entries that carry the buyer. */
  buyerTaken(sku: string, buyer: string): number {
    let taken = 0;
    for (const w of this.#written) for (const e of w.entries) if (e.sku === sku && e.buyer === buyer) taken += e.reservedDelta - e.onHandDelta;
    return taken;
  }

  /** What `ledger.buyerTotals` must read at time `now`: due holds of the buyer count as expired. */
  buyerTakenAt(sku: string, buyer: string, now: number): number {
    const due = this.holds().filter((h) => h.sku === sku && h.buyer === buyer && now >= h.expiresAt);
    return this.buyerTaken(sku, buyer) - due.reduce((sum, h) => sum + h.qty, 0);
  }

  /**
   * Adjust: one count, or a stocktake of several (a SKU twice is INVALID_INPUT), in SKU order;
   * the shorthand and one line are one payload. Due holds of every SKU expire, then the first
   * count in SKU order that fails (stale version, past the limit, below reserved) refuses all.
   * One entry per count, even a zero delta.
   */
  adjust(input: AdjustInput, at: number): Result {
    const counts = ('lines' in input ? input.lines : [input])
      .map((c) => ({ sku: c.sku, onHand: c.onHand, expectedVersion: c.expectedVersion }))
      .sort((a, b) => byText(a.sku, b.sku));
    if (new Set(counts.map((c) => c.sku)).size !== counts.length) return { thrown: 'INVALID_INPUT' };
    const payload = canonical(['adjust', counts.map((c) => [c.sku, c.onHand, c.expectedVersion ?? null]), input.meta ?? null]);
    return this.#run(input.requestId, 'adjust', payload, null, input.meta, at, () => {
      this.#expireDue(counts.map((c) => c.sku), at);
      for (const { sku, onHand, expectedVersion } of counts) {
        const level = this.level(sku);
        if (expectedVersion !== undefined && expectedVersion !== level.version) return { ok: false, code: 'VERSION_CONFLICT', sku, expectedVersion, level };
        if (onHand > LIMITS.quantityMax) return { ok: false, code: 'QUANTITY_LIMIT', sku, requested: onHand, onHand: level.onHand, limit: LIMITS.quantityMax };
        if (onHand - level.reserved + this.policy(sku).backorderMax < 0) return { ok: false, code: 'BELOW_RESERVED', sku, requested: onHand, level };
      }
      return counts.map(({ sku, onHand }) => ({ sku, onHandDelta: onHand - this.level(sku).onHand, reservedDelta: 0 }));
    });
  }

  reverse(input: ReverseInput, at: number): Result {
    if (input.of === input.requestId) return { thrown: 'INVALID_INPUT' };
    const asked = input.lines === undefined ? null : mergeLines(input.lines);
    if (asked !== null && asked.some((line) => line.qty > LIMITS.quantityMax)) return { thrown: 'INVALID_INPUT' };
    const payload = canonical(['reverse', input.of, asked === null ? null : asked.map((l) => [l.sku, l.qty]), input.meta ?? null]);
    return this.#run(input.requestId, 'reverse', payload, input.of, input.meta, at, () => {
      const original = this.#request(input.of);
      if (original === undefined) return { ok: false, code: 'REQUEST_NOT_FOUND', requestId: input.of };
      const taken = this.#taken(input.of);
      if (taken === null) return { ok: false, code: 'NOT_REVERSIBLE', requestId: input.of, kind: original.kind };
      const remaining = (sku: string): number => (taken.find((l) => l.sku === sku)?.qty ?? 0) - this.#givenBack(input.of, sku);
      let lines: Line[];
      if (asked === null) {
        lines = taken.map((l) => ({ sku: l.sku, qty: remaining(l.sku) })).filter((line) => line.qty > 0);
        const first = taken[0];
        if (lines.length === 0 && first !== undefined) {
          return { ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: first.sku, requested: first.qty, remaining: 0 };
        }
      } else {
        lines = asked;
      }
      // Only now does the reverse know its SKUs: their due holds expire, then the checks.
      this.#expireDue(lines.map((l) => l.sku), at);
      for (const line of lines) {
        const left = remaining(line.sku);
        if (line.qty > left) return { ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: line.sku, requested: line.qty, remaining: left };
        const onHand = this.level(line.sku).onHand;
        if (onHand + line.qty > LIMITS.quantityMax) {
          return { ok: false, code: 'QUANTITY_LIMIT', sku: line.sku, requested: line.qty, onHand, limit: LIMITS.quantityMax };
        }
      }
      const buyer = original.kind === 'deduct' ? original.entries[0]?.buyer : original.reservation?.buyer;
      return lines.map((line) => ({ sku: line.sku, onHandDelta: line.qty, reservedDelta: 0, buyer }));
    });
  }

  reserve(input: ReserveInput, at: number): Result {
    if (tooLarge(input.lines)) return { thrown: 'INVALID_INPUT' };
    const { buyer } = input;
    const payload = canonical(['reserve', payloadLines(input.lines), input.ttlMs, input.meta ?? null, buyer ?? null]);
    let lines: Line[] = [];
    return this.#run(input.requestId, 'reserve', payload, null, input.meta, at, () => {
      const taken = this.#take(input.lines, buyer, at);
      if (!('lines' in taken)) return taken;
      lines = taken.lines;
      const deltas = lines.map((line) => ({ sku: line.sku, onHandDelta: 0, reservedDelta: line.qty, buyer }));
      return taken.allocations === null ? deltas : { deltas, allocations: taken.allocations };
    }, () => {
      const reservation: Reservation = {
        id: input.requestId, state: 'held', lines, expiresAt: at + input.ttlMs, createdAt: at, committed: null,
      };
      if (input.meta !== undefined) reservation.meta = copyJson(input.meta);
      if (buyer !== undefined) reservation.buyer = buyer;
      return reservation;
    });
  }

  /**
   * Amend: the reservation's lines replaced. Unknown -> RESERVATION_NOT_FOUND; a limited SKU
   * named while the reservation has no buyer -> INVALID_INPUT before anything; then like a
   * release up to the rejections (expired, committed, released); then the new lines are taken
   * like a reserve's, with what the reservation holds counted as free (stock and buyer limits).
   * One amend entry per SKU whose held quantity changes, carrying the reservation's id.
   */
  amend(input: AmendInput, at: number): Result {
    if (tooLarge(input.lines)) return { thrown: 'INVALID_INPUT' };
    const { reservationId } = input;
    const payload = canonical(['amend', reservationId, payloadLines(input.lines), input.meta ?? null]);
    let amended: Reservation | null = null;
    return this.#run(input.requestId, 'amend', payload, reservationId, input.meta, at, () => {
      const found = this.#reserved(reservationId);
      if (found === null) return { ok: false, code: 'RESERVATION_NOT_FOUND', reservationId };
      const named = input.lines.flatMap((l) => ('anyOf' in l ? l.anyOf : [l.sku]));
      if (found.buyer === undefined && named.some((sku) => this.policy(sku).buyerMax !== null)) return { thrown: 'INVALID_INPUT' };
      const opened = this.#opening(reservationId, at);
      if ('ok' in opened) return opened;
      const { held, settled } = opened;
      if (settled?.kind === 'commit') return { ok: false, code: 'RESERVATION_COMMITTED', reservationId };
      if (settled?.kind === 'release') return { ok: false, code: 'RESERVATION_RELEASED', reservationId };
      const credit = new Map(held.lines.map((l) => [l.sku, l.qty]));
      const taken = this.#take(input.lines, held.buyer, at, credit);
      if (!('lines' in taken)) return taken;
      amended = { ...held, lines: taken.lines };
      const skus = [...new Set([...held.lines, ...taken.lines].map((l) => l.sku))].sort(byText);
      const qtyIn = (lines: Line[], sku: string): number => lines.find((l) => l.sku === sku)?.qty ?? 0;
      const deltas = skus
        .map((sku) => ({ sku, onHandDelta: 0, reservedDelta: qtyIn(taken.lines, sku) - qtyIn(held.lines, sku), buyer: held.buyer, reservationId }))
        .filter((d) => d.reservedDelta !== 0);
      return taken.allocations === null ? deltas : { deltas, allocations: taken.allocations };
    }, () => amended);
  }

  /**
   * setPolicy: fields left out keep their value, null resets one to its default; at least one
   * field, each an integer from 0 to the quantity limit. A policy whose `backorderMax` leaves
   * less to sell than is reserved is BELOW_RESERVED; else one zero-delta entry carries the
   * whole new policy.
   */
  setPolicy(input: SetPolicyInput, at: number): Result {
    const fields = ['backorderMax', 'lowStockAt', 'buyerMax'] as const;
    const given = fields.filter((f) => input[f] !== undefined);
    const bad = (v: unknown): boolean => v !== null && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > LIMITS.quantityMax);
    if (given.length === 0 || given.some((f) => bad(input[f]))) return { thrown: 'INVALID_INPUT' };
    const asked = (f: (typeof fields)[number]): number | null | 'keep' => (input[f] === undefined ? 'keep' : (input[f] ?? DEFAULT_POLICY[f]));
    const payload = canonical(['policy', input.sku, asked('backorderMax'), asked('lowStockAt'), asked('buyerMax'), input.meta ?? null]);
    return this.#run(input.requestId, 'policy', payload, null, input.meta, at, () => {
      this.#expireDue([input.sku], at);
      const level = this.level(input.sku);
      const policy: StockPolicy = { ...this.policy(input.sku) };
      for (const f of given) Object.assign(policy, { [f]: input[f] ?? DEFAULT_POLICY[f] });
      if (level.onHand - level.reserved + policy.backorderMax < 0) {
        return { ok: false, code: 'BELOW_RESERVED', sku: input.sku, requested: policy.backorderMax, level };
      }
      return [{ sku: input.sku, onHandDelta: 0, reservedDelta: 0, policy }];
    });
  }

  /** A SKU's policy: the one its last policy entry carries, else the default. */
  policy(sku: string): StockPolicy {
    let policy = DEFAULT_POLICY;
    for (const written of this.#written) for (const e of written.entries) if (e.sku === sku && e.policy !== undefined) policy = e.policy;
    return { ...policy };
  }

  /**
   * Revoke: closes an id never applied with a tombstone (no entry, no level, no expiry
   * written). The id's other uses are refused by {@link #run}.
   */
  revoke(input: RevokeInput, at: number): Result {
    const payload = canonical(['revoke', input.meta ?? null]);
    return this.#run(input.requestId, 'revoke', payload, null, input.meta, at, () => []);
  }

  /**
   * Commit: unknown -> RESERVATION_NOT_FOUND. Committed already: the same lines (normalized, all
   * held when omitted) replay, other lines are a conflict (and write nothing). Otherwise the due
   * holds of its SKUs expire first; then an expired reservation is rejected (all its holds
   * expire), a released one too, and a held one sells the asked lines and releases the rest.
   */
  commit(input: CommitInput, at: number): Result {
    const asked = input.lines === undefined ? null : mergeLines(input.lines);
    if (asked !== null && asked.some((line) => line.qty > LIMITS.quantityMax)) return { thrown: 'INVALID_INPUT' };
    const reservationId = input.reservationId;
    const held = this.#reserved(reservationId);
    if (held === null) return { ok: false, code: 'RESERVATION_NOT_FOUND', reservationId };
    const sold = asked ?? held.lines;
    const settled = this.#settled(reservationId);
    if (settled?.kind === 'commit' && !sameLines(settled.sold ?? [], sold)) return { thrown: 'IDEMPOTENCY_CONFLICT' };
    const expired = this.#settling(held, at);
    if (expired !== null) return expired;
    if (settled?.kind === 'release') return { ok: false, code: 'RESERVATION_RELEASED', reservationId };
    if (settled !== null) return { ok: true, replayed: true, entries: settled.entries.map(copyEntry), levels: copyLevels(settled.levels) };
    for (const line of sold) {
      const holding = held.lines.find((l) => l.sku === line.sku)?.qty ?? 0;
      if (line.qty > holding) return { ok: false, code: 'EXCEEDS_RESERVATION', reservationId, sku: line.sku, requested: line.qty, held: holding };
    }
    const changes = held.lines.map((line): Change => ({
      requestId: reservationId, kind: 'commit', sku: line.sku, meta: held.meta, buyer: held.buyer,
      onHandDelta: 0 - (sold.find((l) => l.sku === line.sku)?.qty ?? 0), reservedDelta: -line.qty,
    }));
    return this.#settle(reservationId, 'commit', sold, changes, at);
  }

  /** Release: like a commit, but a committed reservation is rejected and a released one replays. */
  release(input: ReleaseInput, at: number): Result {
    const reservationId = input.reservationId;
    const opened = this.#opening(reservationId, at);
    if ('ok' in opened) return opened;
    const { held, settled } = opened;
    if (settled?.kind === 'commit') return { ok: false, code: 'RESERVATION_COMMITTED', reservationId };
    if (settled !== null) return { ok: true, replayed: true, entries: settled.entries.map(copyEntry), levels: copyLevels(settled.levels) };
    const changes = held.lines.map((line): Change => ({
      requestId: reservationId, kind: 'release', sku: line.sku, meta: held.meta, buyer: held.buyer, onHandDelta: 0, reservedDelta: -line.qty,
    }));
    return this.#settle(reservationId, 'release', null, changes, at);
  }

  /**
   * Extend: like a release up to the rejections (expired, committed, released); a held one
   * gets `at + ttlMs` as its expiry, and the answer has no entries, the stored levels of its
   * SKUs, and the reservation as read now.
   */
  extend(input: ExtendInput, at: number): Result {
    const reservationId = input.reservationId;
    const opened = this.#opening(reservationId, at);
    if ('ok' in opened) return opened;
    const { held, settled } = opened;
    if (settled?.kind === 'commit') return { ok: false, code: 'RESERVATION_COMMITTED', reservationId };
    if (settled?.kind === 'release') return { ok: false, code: 'RESERVATION_RELEASED', reservationId };
    this.#written.push({ type: 'extend', reservationId, expiresAt: at + input.ttlMs, at, entries: [] });
    const reservation = this.reservation(reservationId, at) as Reservation;
    return { ok: true, replayed: false, entries: [], levels: held.lines.map((l) => this.level(l.sku)), reservation } as ReserveApplied;
  }

  /** Expires up to `limit` due holds anywhere, soonest first (then by reservation id and SKU, in stored order). */
  sweep(input: SweepInput, at: number): SweepResult {
    const limit = input.limit ?? LIMITS.sweepHoldsMax;
    const due = this.holds().filter((h) => at >= h.expiresAt).sort((a, b) =>
      a.expiresAt - b.expiresAt || byStoredText(a.reservationId, b.reservationId) || byStoredText(a.sku, b.sku));
    const entries = this.#expire(due.slice(0, limit), at);
    return { expired: entries.length, more: due.length > limit, entries: entries.map(copyEntry) };
  }

  /** Every entry so far, in order. */
  entries(): FeedEntry[] {
    return this.#written.flatMap((w) => w.entries.map(copyEntry));
  }

  /** The level of a SKU as stored: the fold of its entries (expiries not yet written still hold). */
  level(sku: string): Level {
    let onHand = 0;
    let reserved = 0;
    let version = 0;
    for (const written of this.#written) {
      for (const entry of written.entries) {
        if (entry.sku !== sku) continue;
        onHand += entry.onHandDelta;
        reserved += entry.reservedDelta;
        version += 1;
      }
    }
    return levelWith(sku, { onHand, reserved, version }, this.policy(sku));
  }

  /** The level a read at time `now` reports: every due hold counts as expired (one version each). */
  levelAt(sku: string, now: number): Level {
    const stored = this.level(sku);
    const due = this.holds().filter((h) => h.sku === sku && now >= h.expiresAt);
    const reserved = stored.reserved - due.reduce((sum, h) => sum + h.qty, 0);
    return levelWith(sku, { onHand: stored.onHand, reserved, version: stored.version + due.length }, this.policy(sku));
  }

  /** What `ledger.reservation(id)` must return at time `now`. */
  reservation(id: string, now: number): Reservation | null {
    const held = this.#reserved(id);
    if (held === null) return null;
    const settled = this.#settled(id);
    const out: Reservation = {
      ...held, lines: held.lines.map((l) => ({ ...l })),
      state: settled === null ? (this.#expired(held, now) ? 'expired' : 'held') : settled.kind === 'commit' ? 'committed' : 'released',
      committed: settled?.kind === 'commit' ? held.lines.map((l) => ({ sku: l.sku, qty: settled.sold?.find((s) => s.sku === l.sku)?.qty ?? 0 })) : null,
    };
    if (held.meta !== undefined) out.meta = copyJson(held.meta);
    return out;
  }

  /**
   * Holds still in storage: per reservation and SKU, the sum of the `reservedDelta`s of the
   * entries of that reservation (its reserve, amends, commit or release, expiries), where it is
   * above 0. Due or not.
   */
  holds(): Hold[] {
    const holds: Hold[] = [];
    for (const written of this.#written) {
      if (written.type !== 'request' || written.kind !== 'reserve' || written.reservation === null) continue;
      const { id, meta, buyer } = written.reservation;
      const expiresAt = this.#expiresAt(written.reservation);
      const held = new Map<string, number>();
      for (const w of this.#written) {
        for (const e of w.entries) if ((e.reservationId ?? e.requestId) === id) held.set(e.sku, (held.get(e.sku) ?? 0) + e.reservedDelta);
      }
      for (const [sku, qty] of [...held].sort(([a], [b]) => byText(a, b))) if (qty > 0) holds.push({ reservationId: id, sku, qty, expiresAt, meta, buyer });
    }
    return holds;
  }

  /** Every SKU with an entry, sorted. */
  skus(): string[] {
    return [...new Set(this.#written.flatMap((w) => w.entries.map((e) => e.sku)))].sort();
  }

  /** What `ledger.request(id)` must return. */
  request(requestId: string): RequestRecord | null {
    const op = this.#request(requestId);
    if (op === undefined) return null;
    const record: RequestRecord & { reservation?: Reservation } = {
      ok: true, replayed: true, entries: op.entries.map(copyEntry), levels: copyLevels(op.levels),
      requestId: op.requestId, kind: op.kind, at: op.at,
    };
    if (op.allocations !== null) record.allocations = copyJson(op.allocations);
    if (op.reservation !== null) record.reservation = copyJson(op.reservation);
    return record;
  }

  /** Units of `sku` a reverse of `of` may still give back (0 unless `of` is an applied deduct or a committed reservation). */
  reversible(of: string, sku: string): number {
    const taken = this.#taken(of);
    if (taken === null) return 0;
    return (taken.find((l) => l.sku === sku)?.qty ?? 0) - this.#givenBack(of, sku);
  }

  /** Ids of every applied request (revoked ones included), in order. */
  requestIds(): string[] {
    return this.#written.flatMap((w) => (w.type === 'request' ? [w.requestId] : []));
  }

  /** The kind of an applied request (`'revoke'` for a revoked id), or null. */
  kindOf(requestId: string): OperationKind | null {
    return this.#request(requestId)?.kind ?? null;
  }

  /** Text that is equal for two models exactly when what they wrote is. */
  key(): string {
    return JSON.stringify(this.#written.map((w) => [
      w.type, w.type === 'request' ? [w.requestId, w.payload] : w.type === 'settle' ? [w.reservationId, w.kind, w.sold]
        : w.type === 'extend' ? [w.reservationId, w.expiresAt] : null, w.at,
      w.entries.map((e) => [e.requestId, e.kind, e.sku, e.onHandDelta, e.reservedDelta, e.policy ?? null, e.buyer ?? null]),
    ]));
  }

  #request(requestId: string): Extract<Written, { type: 'request' }> | undefined {
    for (const w of this.#written) if (w.type === 'request' && w.requestId === requestId) return w;
    return undefined;
  }

  /** The reservation as made by its reserve (state 'held'), with its expiry as last extended and its lines as last amended, or null. */
  #reserved(id: string): Reservation | null {
    const record = this.#request(id);
    const made = record?.kind === 'reserve' ? record.reservation : null;
    if (made === null) return null;
    let lines = made.lines;
    for (const w of this.#written) if (w.type === 'request' && w.kind === 'amend' && w.of === id && w.reservation !== null) lines = w.reservation.lines;
    return { ...made, lines, expiresAt: this.#expiresAt(made) };
  }

  /** A reservation's expiry: its reserve's, or the last extend's. */
  #expiresAt(made: Reservation): number {
    let expiresAt = made.expiresAt;
    for (const w of this.#written) if (w.type === 'extend' && w.reservationId === made.id) expiresAt = w.expiresAt;
    return expiresAt;
  }

  #settled(id: string): Extract<Written, { type: 'settle' }> | null {
    for (const w of this.#written) if (w.type === 'settle' && w.reservationId === id) return w;
    return null;
  }

  /** Expired: a hold of it has expired in storage, or it is due at `now`. (Not asked of settled reservations.) */
  #expired(reservation: Reservation, now: number): boolean {
    return now >= reservation.expiresAt || this.#written.some((w) => w.entries.some((e) => e.kind === 'expire' && e.requestId === reservation.id));
  }

  /**
   * The start of a commit or release: the due holds of the reservation's SKUs expire; an
   * unsettled reservation that is expired then loses all its remaining holds and is rejected.
   */
  #settling(reservation: Reservation, at: number): Rejection | null {
    this.#expireDue(reservation.lines.map((l) => l.sku), at);
    if (this.#settled(reservation.id) !== null || !this.#expired(reservation, at)) return null;
    this.#expire(this.holds().filter((h) => h.reservationId === reservation.id), at);
    return { ok: false, code: 'RESERVATION_EXPIRED', reservationId: reservation.id, expiresAt: reservation.expiresAt };
  }

  #settle(reservationId: string, kind: 'commit' | 'release', sold: Line[] | null, changes: Change[], at: number): OperationResult {
    const entries = this.#entriesOf(changes, at);
    const levels = this.#levelsAfter(entries);
    this.#written.push({ type: 'settle', reservationId, kind, sold, at, entries, levels });
    return { ok: true, replayed: false, entries: entries.map(copyEntry), levels: copyLevels(levels) };
  }

  /**
   * The start of a release or an extend: an unknown id is rejected; else the due holds expire
   * (an unsettled expired reservation is rejected), and the reservation and its settlement, if
   * any, come back.
   */
  #opening(reservationId: string, at: number): Rejection | { held: Reservation; settled: Extract<Written, { type: 'settle' }> | null } {
    const held = this.#reserved(reservationId);
    if (held === null) return { ok: false, code: 'RESERVATION_NOT_FOUND', reservationId };
    const settled = this.#settled(reservationId);
    const expired = this.#settling(held, at);
    return expired ?? { held, settled };
  }

  /** The first line (in SKU order) asking for more than is available, as a rejection. */
  #shortOf(lines: Line[], credit: ReadonlyMap<string, number>): Rejection | null {
    for (const line of lines) {
      const available = this.level(line.sku).available + (credit.get(line.sku) ?? 0);
      if (available < line.qty) return { ok: false, code: 'INSUFFICIENT_STOCK', sku: line.sku, requested: line.qty, available };
    }
    return null;
  }

  /**
   * Writes the expiry of the due holds of these SKUs, SKU by SKU in the order given, each SKU's
   * holds soonest first (then by reservation id, in stored order), at most
   * `LIMITS.expiriesPerSkuMax` per SKU.
   */
  #expireDue(skus: string[], at: number): void {
    const holds = this.holds();
    const due = skus.flatMap((sku) => holds
      .filter((h) => h.sku === sku && at >= h.expiresAt)
      .sort((a, b) => a.expiresAt - b.expiresAt || byStoredText(a.reservationId, b.reservationId))
      .slice(0, LIMITS.expiriesPerSkuMax));
    this.#expire(due, at);
  }

  /** Writes one expire entry per hold, in the order given. */
  #expire(holds: Hold[], at: number): FeedEntry[] {
    if (holds.length === 0) return [];
    const entries = this.#entriesOf(holds.map((h): Change => ({
      requestId: h.reservationId, kind: 'expire', sku: h.sku, onHandDelta: 0, reservedDelta: -h.qty, meta: h.meta, buyer: h.buyer,
    })), at);
    this.#written.push({ type: 'expiry', at, entries });
    return entries;
  }

  /** Entries for changes on top of what is written: numbered on, each after the ones before it. */
  #entriesOf(changes: Change[], at: number): FeedEntry[] {
    let seq = this.#written.reduce((n, w) => n + w.entries.length, 0);
    const running = new Map<string, { onHand: number; reserved: number }>();
    return changes.map((change) => {
      const before = running.get(change.sku) ?? this.level(change.sku);
      const after = { onHand: before.onHand + change.onHandDelta, reserved: before.reserved + change.reservedDelta };
      running.set(change.sku, after);
      seq += 1;
      const entry: FeedEntry = {
        seq, requestId: change.requestId, kind: change.kind, sku: change.sku, onHandDelta: change.onHandDelta,
        reservedDelta: change.reservedDelta, onHandAfter: after.onHand, reservedAfter: after.reserved, at,
      };
      if (change.meta !== undefined) entry.meta = copyJson(change.meta);
      if (change.policy !== undefined) entry.policy = { ...change.policy };
      if (change.buyer !== undefined) entry.buyer = change.buyer;
      if (change.reservationId !== undefined) entry.reservationId = change.reservationId;
      return entry;
    });
  }

  /** The levels new entries (not yet written) lead to, one per SKU they touch, sorted by SKU. */
  #levelsAfter(entries: FeedEntry[]): Level[] {
    return [...new Set(entries.map((e) => e.sku))].sort(byText).map((sku) => {
      const own = entries.filter((e) => e.sku === sku);
      const last = own[own.length - 1] as FeedEntry;
      const policy = own.reduce((p, e) => e.policy ?? p, this.policy(sku));
      return levelWith(sku, { onHand: last.onHandAfter, reserved: last.reservedAfter, version: this.level(sku).version + own.length }, policy);
    });
  }

  /** What a reverse of `of` may give back in all, in SKU order: a deduct's lines, or what a commit sold; null if not reversible. */
  #taken(of: string): Line[] | null {
    const original = this.#request(of);
    if (original === undefined) return null;
    if (original.kind === 'deduct') return original.entries.map((e) => ({ sku: e.sku, qty: -e.onHandDelta }));
    const settled = this.#settled(of);
    if (original.kind !== 'reserve' || settled?.kind !== 'commit') return null;
    return (settled.sold ?? []).filter((l) => l.qty > 0).map((l) => ({ ...l }));
  }

  #givenBack(of: string, sku: string): number {
    let given = 0;
    for (const w of this.#written) {
      if (w.type !== 'request' || w.kind !== 'reverse' || w.of !== of) continue;
      for (const entry of w.entries) if (entry.sku === sku) given += entry.onHandDelta;
    }
    return given;
  }

  /**
   * The idempotency rule, then the operation. A known id is answered from its record alone,
   * before anything else (so nothing is written, not even due expiries): a revoked id refuses
   * every other kind (REQUEST_REVOKED), an id applied by another kind refuses a revoke
   * (REQUEST_APPLIED); otherwise the same payload is a replay of the first answer and another
   * payload a conflict. An unknown id is evaluated, and only an applied result is remembered
   * (the expiries the evaluation wrote stay, applied or not).
   */
  #run(
    requestId: string, kind: OperationKind, payload: string, of: string | null, meta: JsonObject | undefined, at: number,
    evaluate: () => Delta[] | { deltas: Delta[]; allocations: Allocation[] } | Result,
    reservation: () => Reservation | null = () => null,
  ): Result {
    const known = this.#request(requestId);
    if (known !== undefined) return this.#answerKnown(known, kind, payload);
    const result = evaluate();
    const allocated = 'deltas' in result ? result : null;
    const decided = allocated?.deltas ?? result;
    if (!Array.isArray(decided)) return decided as Result;
    // A revoke is the record alone: no entry.
    const entries = kind === 'revoke' ? [] : this.#entriesOf(decided.map((d) => ({ ...d, requestId, kind, meta })), at);
    const record: Written = {
      type: 'request', requestId, kind, payload, of, at, entries, levels: this.#levelsAfter(entries), reservation: reservation(),
      allocations: allocated?.allocations ?? null,
    };
    this.#written.push(record);
    return this.#outcomeOf(record);
  }

  /** What a known id answers a request of `kind` with `payload`. */
  #answerKnown(known: Extract<Written, { type: 'request' }>, kind: OperationKind, payload: string): Result {
    const { requestId } = known;
    if (known.kind === 'revoke' && kind !== 'revoke') return { ok: false, code: 'REQUEST_REVOKED', requestId };
    if (kind === 'revoke' && known.kind !== 'revoke') return { ok: false, code: 'REQUEST_APPLIED', requestId, kind: known.kind };
    if (known.payload !== payload) return { thrown: 'IDEMPOTENCY_CONFLICT' };
    return { ...this.#outcomeOf(known), replayed: true };
  }

  #outcomeOf(op: Extract<Written, { type: 'request' }>): Applied {
    const outcome: Applied = { ok: true, replayed: false, entries: op.entries.map(copyEntry), levels: copyLevels(op.levels) };
    if (op.allocations !== null) outcome.allocations = copyJson(op.allocations);
    if (op.reservation === null) return outcome;
    const reserved: ReserveApplied = { ...outcome, reservation: copyJson(op.reservation) };
    return reserved;
  }
}

/** A level as reads report it: available counts the backorder allowance; a policy shows when it is not the default. */
function levelWith(sku: string, c: { onHand: number; reserved: number; version: number }, policy: StockPolicy): Level {
  const level: Level = { sku, onHand: c.onHand, reserved: c.reserved, available: c.onHand - c.reserved + policy.backorderMax, version: c.version };
  if (policy.backorderMax !== 0 || policy.lowStockAt !== null || policy.buyerMax !== null) level.policy = { ...policy };
  return level;
}

/** JavaScript's default string order (by UTF-16 code units): the order of lines and levels. */
function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The order of stored holds when they fall due together: by code point, that is by UTF-8 bytes
 * (the order SQLite, Redis and PostgreSQL `COLLATE "C"` keep text in). It differs from
 * {@link byText} only where a character above U+FFFF meets one from U+E000 to U+FFFF.
 */
function byStoredText(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A line's quantity, or the sum of one SKU's one-SKU lines, past the quantity limit. */
function tooLarge(given: readonly OrderLine[]): boolean {
  const plain = mergeLines(given.filter((l): l is Line => !('anyOf' in l)));
  return given.some((l) => l.qty > LIMITS.quantityMax) || plain.some((l) => l.qty > LIMITS.quantityMax);
}

/** A change one operation decides, before it becomes an entry. */
type Delta = { sku: string; onHandDelta: number; reservedDelta: number; policy?: StockPolicy; buyer?: string | undefined; reservationId?: string };

/**
 * One anyOf line's allocation from what each SKU has left: alternatives in priority order (as
 * listed, or most left first, ties as listed); the whole line from the first that has it, or
 * with split from each in turn until filled. Null when it cannot be filled.
 */
function allocateLine(line: AnyOfLine, leftOf: (sku: string) => number): Line[] | null {
  const ranked = line.anyOf.map((sku, i) => ({ sku, i, left: leftOf(sku) }));
  if (line.prefer === 'mostAvailable') ranked.sort((a, b) => b.left - a.left || a.i - b.i);
  if (line.split !== true) {
    const one = ranked.find((r) => r.left >= line.qty);
    return one === undefined ? null : [{ sku: one.sku, qty: line.qty }];
  }
  const taken: Line[] = [];
  let need = line.qty;
  for (const r of ranked) {
    if (need === 0) break;
    const qty = Math.min(need, r.left);
    if (qty > 0) taken.push({ sku: r.sku, qty });
    need -= qty;
  }
  return need === 0 ? taken : null;
}

/**
 * Lines as the payload sees them: one-SKU lines merged when that is all there is; with an
 * anyOf line, every line as given (the order decides the allocation), defaults filled in.
 */
function payloadLines(given: readonly OrderLine[]): JsonValue[] {
  if (given.every((l) => !('anyOf' in l))) return mergeLines(given as Line[]).map((l) => [l.sku, l.qty]);
  return ['anyOf', given.map((l) => ('anyOf' in l ? [l.anyOf, l.qty, l.split ?? false, l.prefer ?? 'order'] : [l.sku, l.qty]))];
}

/** Same SKU on several lines adds up; then sorted by SKU (JavaScript string order). */
function mergeLines(lines: readonly Line[]): Line[] {
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.qty);
  return [...totals.keys()].sort().map((sku) => ({ sku, qty: totals.get(sku) ?? 0 }));
}

function sameLines(a: readonly Line[], b: readonly Line[]): boolean {
  return canonical(a) === canonical(b);
}

/** JSON with object keys sorted, so `{ a, b }` and `{ b, a }` give one text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    return `{${Object.keys(object).sort().map((key) => `${JSON.stringify(key)}:${canonical(object[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function copyJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function copyEntry(entry: FeedEntry): FeedEntry {
  return entry.policy === undefined ? { ...entry } : { ...entry, policy: { ...entry.policy } };
}

function copyLevels(levels: Level[]): Level[] {
  return levels.map((l) => (l.policy === undefined ? { ...l } : { ...l, policy: { ...l.policy } }));
}
