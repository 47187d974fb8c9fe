import { InvalidInputError, InvariantViolationError } from './errors.js';
import { LIMITS } from './limits.js';
import { byCodeUnits } from './order.js';
import { namedSkus } from './store.js';
import type {
  AdjustCommand, Alternatives, AmendCommand, CommitCommand, Command, Count, DeductCommand, GivenLine, ExtendCommand, ReleaseCommand, RequestCommand, ReserveCommand, RestockCommand, ReverseCommand, SetPolicyCommand, StoreOutcome,
  StoredRequest, StoredReservation, SweepCommand,
} from './store.js';
import type {
  Allocation, Applied, Counters, Entry, EntryKind, FeedEntry, JsonObject, Level, Line, OperationKind, Rejection, Reservation, ReservationState, StockPolicy,
} from './types.js';

/** One hold: a reservation's units of one SKU. */
export interface HoldRef {
  reservationId: string;
  sku: string;
}

/**
 * What a JavaScript store lets {@link decide} read, synchronously, inside its atomic step.
 * Unknown SKUs read as zeros.
 */
export interface StateView {
  counters(sku: string): Counters;
  request(requestId: string): StoredRequest | null;
  /** Units of `sku` already given back by reversals of request `of`. */
  reversed(of: string, sku: string): number;
  reservation(reservationId: string): StoredReservation | null;
  /** Reservations still holding `sku` with `expiresAt <= now`, soonest first, at most `limit`. */
  dueHolds(sku: string, now: number, limit: number): string[];
  /** Holds with `expiresAt <= now` anywhere, soonest first, at most `limit`. */
  dueAnywhere(now: number, limit: number): HoldRef[];
  /** What `buyer` holds plus has bought of `sku`, as stored (0 when nothing). */
  buyerTaken(sku: string, buyer: string): number;
}

/** One SKU's change within a step, with the counters it leads to. */
export interface Change {
  sku: string;
  onHandDelta: number;
  reservedDelta: number;
  after: Counters;
}

/** Entries of one request id and kind, one per SKU, in SKU order. */
export interface Step {
  requestId: string;
  kind: EntryKind;
  meta: JsonObject | null;
  /** The buyer the step takes for or gives back by (its entries carry it), or null. */
  buyer: string | null;
  /** An amend's step: the reservation whose holds change (its entries carry it); else null. */
  reservationId: string | null;
  changes: Change[];
}

/** Everything an operation writes; the store numbers the entries and persists it in one step. */
export interface Write {
  at: number;
  /** Due expiries first, then the command's own steps. */
  steps: Step[];
  /** Steps from this index on are the command's own: their entries make the outcome. */
  ownFrom: number;
  /** Levels the outcome reports, sorted by SKU. */
  levels: Level[];
  /** The request record to insert (its outcome is the materialized one). */
  request: { requestId: string; kind: OperationKind; fingerprint: string } | null;
  /** Increments of the reversed tally of a request. */
  reversal: { of: string; lines: Line[] } | null;
  /** A reservation created by this write. */
  reservation: StoredReservation | null;
  /** Holds that end here (expired, committed or released). */
  holdsEnded: HoldRef[];
  /** Reservations whose stored state becomes `expired` (if still `held`). */
  expired: string[];
  /** A commit or release: the reservation's new state; its outcome is the materialized one. */
  settled: { reservationId: string; state: 'committed' | 'released'; committed: Line[] | null } | null;
  /**
   * An extend: the reservation with its new `expiresAt`, which its record and every hold it
   * still has take (a reserve's replay still shows the expiry it was made with).
   */
  extended: StoredReservation | null;
  /** Set for a sweep. */
  sweep: { more: boolean } | null;
  /**
   * The buyer totals this write changes, as they stand after it (`taken`, absolute), one per
   * (SKU, buyer) pair, in the order first changed. Each step with a buyer moves its buyer's
   * total of each SKU by `reservedDelta - onHandDelta`.
   */
  buyerTotals: Array<{ sku: string; buyer: string; taken: number }>;
  /** A deduct, reserve or amend with an `anyOf` line: which SKUs served each line (its outcome shows them). */
  allocations: Allocation[] | null;
  /**
   * An amend: the reservation with its new `lines` and `holds` (SKUs it holds now). Its step's
   * changes say which holds change: a new SKU gets a hold (at the reservation's `expiresAt`),
   * a kept one its new quantity; a dropped SKU's hold is in `holdsEnded`.
   */
  amended: StoredReservation | null;
}

/** What to do: return an outcome without writing, write (and return the write's outcome), or both. */
export type Decision = { outcome: StoreOutcome; write: Write | null } | { outcome: null; write: Write };

/** Counters of a SKU never seen. */
export function zeroCounters(): Counters {
  return { onHand: 0, reserved: 0, version: 0 };
}

/**
 * The level a read reports at some time: the stored counters with the holds due by then
 * counted as expired (`due`: their units and their number, one expire entry each).
 */
export function levelAsOf(sku: string, c: Counters, due: { qty: number; count: number }): Level {
  return levelOf(sku, { ...c, reserved: c.reserved - due.qty, version: c.version + due.count });
}

/** A level from counters: the one place that computes `available` (and shows a policy that is not the default). */
export function levelOf(sku: string, c: Counters): Level {
  const level: Level = { sku, onHand: c.onHand, reserved: c.reserved, available: availableOf(c), version: c.version };
  if (c.policy !== undefined) level.policy = { ...c.policy };
  return level;
}

/** What a deduct or reserve may take: `onHand - reserved + backorderMax`. */
export function availableOf(c: Counters): number {
  return c.onHand - c.reserved + (c.policy?.backorderMax ?? 0);
}

/** The default policy: no backorder, no low-stock threshold. */
export const DEFAULT_POLICY: Readonly<StockPolicy> = Object.freeze({ backorderMax: 0, lowStockAt: null, buyerMax: null });

/** A SKU's whole policy, defaults filled in. */
export function policyOf(c: Counters): StockPolicy {
  return c.policy === undefined ? { ...DEFAULT_POLICY } : { ...c.policy };
}

/** Whether a policy is the default one (stores keep none then, and levels show none). */
export function isDefaultPolicy(p: StockPolicy): boolean {
  return p.backorderMax === DEFAULT_POLICY.backorderMax && p.lowStockAt === DEFAULT_POLICY.lowStockAt && p.buyerMax === DEFAULT_POLICY.buyerMax;
}

/** Counters with `policy` set, or removed when it is the default. */
export function withPolicy(c: Counters, p: StockPolicy): Counters {
  const { policy: _old, ...rest } = c;
  return isDefaultPolicy(p) ? rest : { ...rest, policy: { backorderMax: p.backorderMax, lowStockAt: p.lowStockAt, buyerMax: p.buyerMax } };
}

/**
 * A reservation's state at time `now`: a held one is expired from `expiresAt` on.
 *
 * @example
 * ```ts
 * reservationState(stored, Date.now()) === 'expired';
 * ```
 */
export function reservationState(reservation: Pick<Reservation, 'state' | 'expiresAt'>, now: number): ReservationState {
  return reservation.state === 'held' && now >= reservation.expiresAt ? 'expired' : reservation.state;
}

/** The public view of a stored reservation at time `now`. */
export function publicReservation(stored: StoredReservation, now: number): Reservation {
  const out: Reservation = {
    id: stored.id, state: reservationState(stored, now), lines: stored.lines.map((l) => ({ ...l })),
    expiresAt: stored.expiresAt, createdAt: stored.createdAt, committed: stored.committed?.map((l) => ({ ...l })) ?? null,
  };
  if (stored.meta !== undefined) out.meta = stored.meta;
  if (stored.buyer !== undefined) out.buyer = stored.buyer;
  return out;
}

/** Counters after a delta (and a new policy, for a policy step), checked against the invariants. */
function next(sku: string, before: Counters, d: Delta): Counters {
  const onHand = before.onHand + d.onHandDelta;
  const reserved = before.reserved + d.reservedDelta;
  const base = { onHand, reserved, version: before.version + 1 };
  const after = d.policy !== undefined ? withPolicy(base, d.policy) : carried(base, before.policy);
  if (reserved < 0 || availableOf(after) < 0 || onHand > LIMITS.quantityMax) {
    throw new InvariantViolationError(`SKU ${JSON.stringify(sku)} would reach onHand ${onHand}, reserved ${reserved}, available ${availableOf(after)}`);
  }
  return after;
}

/**
 * Counters after a step that sets no policy: they share the policy before (policies are never
 * changed in place), so the hot path copies nothing.
 */
function carried(c: { onHand: number; reserved: number; version: number }, policy: StockPolicy | undefined): Counters {
  // Stryker disable next-line ConditionalExpression: a `policy: undefined` key reads as no policy everywhere; leaving it out only keeps counters small
  return policy === undefined ? c : { ...c, policy };
}

type Delta = { sku: string; onHandDelta: number; reservedDelta: number; policy?: StockPolicy };

/** Shared empty list for the write's rarely used lists; frozen, so a missed copy-on-write throws. */
const NONE: never[] = Object.freeze([]) as unknown as never[];

/** The state as the operation sees it: the view plus what the operation has decided so far. */
class Draft {
  readonly at: number;
  readonly view: StateView;
  // Created on first use: most operations touch one SKU and end no hold.
  #counters: Map<string, Counters> | null = null;
  #firstSku: string | null = null;
  #first: Counters | null = null;
  /** Holds ended here: reservation id -> its SKUs. Nested, so no two (id, SKU) pairs can share a key. */
  #ended: Map<string, Set<string>> | null = null;
  /** Buyer totals decided here: SKU -> buyer -> index in `write.buyerTotals`. Nested, like `#ended`. */
  #buyers: Map<string, Map<string, number>> | null = null;
  readonly write: Write;

  constructor(view: StateView, at: number) {
    this.view = view;
    this.at = at;
    this.write = {
      // Stryker disable next-line ArrayDeclaration: levels is set by finish() before anyone reads it
      at, steps: [], ownFrom: 0, levels: [], request: null, reversal: null, reservation: null, holdsEnded: NONE, expired: NONE,
      settled: null, extended: null, sweep: null, buyerTotals: NONE, allocations: null, amended: null,
    };
  }

  /** What a buyer holds plus has bought of a SKU, with what this operation decided so far. */
  buyerTaken(sku: string, buyer: string): number {
    const i = this.#buyers?.get(sku)?.get(buyer);
    return i === undefined ? this.view.buyerTaken(sku, buyer) : (this.write.buyerTotals[i] as { taken: number }).taken;
  }

  #moveBuyer(sku: string, buyer: string, delta: number): void {
    const taken = this.buyerTaken(sku, buyer) + delta;
    // Stryker disable next-line ConditionalExpression,StringLiteral: a guard on the core's own arithmetic; a total goes below 0 only through a bug
    if (taken < 0) throw new InvariantViolationError(`buyer ${JSON.stringify(buyer)} would hold ${taken} of SKU ${JSON.stringify(sku)}`);
    this.#buyers ??= new Map();
    let bySku = this.#buyers.get(sku);
    if (bySku === undefined) this.#buyers.set(sku, (bySku = new Map()));
    const i = bySku.get(buyer);
    if (i !== undefined) {
      (this.write.buyerTotals[i] as { taken: number }).taken = taken;
      return;
    }
    if (this.write.buyerTotals === NONE) this.write.buyerTotals = [];
    bySku.set(buyer, this.write.buyerTotals.length);
    this.write.buyerTotals.push({ sku, buyer, taken });
  }

  counters(sku: string): Counters {
    // Stryker disable next-line ConditionalExpression: #first is set together with #firstSku
    if (sku === this.#firstSku && this.#first !== null) return this.#first;
    const known = this.#counters?.get(sku);
    if (known !== undefined) return known;
    // Read once per operation: in SQL stores every read is a statement.
    const read = this.view.counters(sku);
    this.#remember(sku, read);
    return read;
  }

  step(requestId: string, kind: EntryKind, meta: JsonObject | null, deltas: Delta[], buyer: string | null = null, reservationId: string | null = null): void {
    const changes: Change[] = [];
    for (const d of deltas) {
      const after = next(d.sku, this.counters(d.sku), d);
      this.#remember(d.sku, after);
      changes.push({ sku: d.sku, onHandDelta: d.onHandDelta, reservedDelta: d.reservedDelta, after });
      if (buyer !== null) this.#moveBuyer(d.sku, buyer, d.reservedDelta - d.onHandDelta);
    }
    this.write.steps.push({ requestId, kind, meta, buyer, reservationId, changes });
  }

  /** Counters read or decided so far; most operations touch one SKU, so the first needs no Map. */
  #remember(sku: string, after: Counters): void {
    // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator: only which cache holds the counters; every branch stores the same ones
    if (this.#firstSku === null || this.#firstSku === sku) {
      this.#firstSku = sku;
      this.#first = after;
    } else {
      (this.#counters ??= new Map()).set(sku, after);
    }
  }

  /** Ends a hold (expiry, commit or release); false when it had already ended. */
  endHold(reservationId: string, sku: string): boolean {
    this.#ended ??= new Map();
    let skus = this.#ended.get(reservationId);
    if (skus === undefined) this.#ended.set(reservationId, (skus = new Set()));
    if (skus.has(sku)) return false;
    skus.add(sku);
    if (this.write.holdsEnded === NONE) this.write.holdsEnded = [];
    this.write.holdsEnded.push({ reservationId, sku });
    return true;
  }

  expireHold(reservation: StoredReservation, sku: string): void {
    if (!reservation.holds.includes(sku) || !this.endHold(reservation.id, sku)) return;
    // Stryker disable next-line OptionalChaining: a hold's SKU is always one of its reservation's lines
    const qty = reservation.lines.find((l) => l.sku === sku)?.qty ?? 0;
    this.step(reservation.id, 'expire', reservation.meta ?? null, [{ sku, onHandDelta: 0, reservedDelta: -qty }], reservation.buyer ?? null);
    if (this.write.expired === NONE) this.write.expired = [];
    if (!this.write.expired.includes(reservation.id)) this.write.expired.push(reservation.id);
  }

  /** Expires the due holds of these SKUs, a bounded number per SKU. */
  expireDue(skus: Iterable<string>): void {
    for (const sku of skus) {
      // Stored `reserved` is the sum of the SKU's stored holds: none reserved, none to expire.
      // Stryker disable next-line ConditionalExpression: a shortcut; with nothing reserved there is no hold to find
      if (this.counters(sku).reserved === 0) continue;
      for (const id of this.view.dueHolds(sku, this.at, LIMITS.expiriesPerSkuMax)) {
        const reservation = this.view.reservation(id);
        if (reservation !== null) this.expireHold(reservation, sku);
      }
    }
  }

  /** From here on, steps are the command's own. */
  own(): void {
    this.write.ownFrom = this.write.steps.length;
  }

  /** The decision: `rejection` (still writing any expiry), or the write with levels of `skus`. */
  // Stryker disable next-line ArrayDeclaration: every caller that writes passes its SKUs
  finish(rejection: Rejection | null, skus: string[] = []): Decision {
    if (rejection !== null) {
      if (this.write.steps.length === 0) return { outcome: rejection, write: null };
      // Only the due expiries are written: a rejected operation records nothing of its own.
      this.write.request = null;
      this.write.ownFrom = this.write.steps.length;
      return { outcome: rejection, write: this.write };
    }
    const sorted = isSorted(skus) ? skus : [...skus].sort(byCodeUnits);
    this.write.levels = sorted.map((sku) => levelOf(sku, this.counters(sku)));
    return { outcome: null, write: this.write };
  }
}

// Stryker disable all: a shortcut that skips sorting a sorted list; a wrong answer only sorts again (a sweep's unsorted levels test the other way)
function isSorted(skus: string[]): boolean {
  for (let i = 1; i < skus.length; i += 1) if (byCodeUnits(skus[i - 1] as string, skus[i] as string) >= 0) return false;
  return true;
}
// Stryker restore all


/**
 * The pure decision of one command against the current state: a replay, a conflict, a
 * rejection, or what to write. Due holds of the SKUs the command touches expire first.
 * Memory and SQLite stores call it inside their atomic step.
 *
 * @example
 * ```ts
 * const decision = decide(command, view);
 * const written = decision.write && persist(materialize(decision.write, lastSeq + 1));
 * return decision.outcome ?? written.outcome;
 * ```
 */
export function decide(command: Command, view: StateView): Decision {
  const draft = new Draft(view, command.at);
  switch (command.kind) {
    case 'commit':
      return commit(command, draft);
    case 'release':
      return release(command, draft);
    case 'extend':
      return extend(command, draft);
    case 'sweep':
      return sweep(command, draft);
    default:
      return requested(command, draft);
  }
}

/**
 * What a request id already recorded means for a command under it: a replay, a conflict, or
 * one of the two refusals around a revoked id; null when the id is free.
 */
export function recordedOutcome(command: RequestCommand, stored: StoredRequest | null): StoreOutcome | null {
  if (stored === null) return null;
  const { requestId } = command;
  if (stored.kind === 'revoke' && command.kind !== 'revoke') return { ok: false, code: 'REQUEST_REVOKED', requestId };
  if (command.kind === 'revoke' && stored.kind !== 'revoke') return { ok: false, code: 'REQUEST_APPLIED', requestId, kind: stored.kind };
  if (stored.fingerprint === command.fingerprint) return { ...stored.outcome, replayed: true };
  return { ok: false, code: 'IDEMPOTENCY_CONFLICT', requestId, storedKind: stored.kind };
}

function requested(command: RequestCommand, draft: Draft): Decision {
  const recorded = recordedOutcome(command, draft.view.request(command.requestId));
  if (recorded !== null) return { outcome: recorded, write: null };
  draft.write.request = { requestId: command.requestId, kind: command.kind, fingerprint: command.fingerprint };
  switch (command.kind) {
    case 'revoke':
      // A tombstone: the request record alone, no entry, no level.
      return draft.finish(null, []);
    case 'restock':
      return restock(command, draft);
    case 'deduct':
      return deduct(command, draft);
    case 'adjust':
      return adjust(command, draft);
    case 'reverse':
      return reverse(command, draft);
    case 'reserve':
      return reserve(command, draft);
    case 'policy':
      return setPolicy(command, draft);
    case 'amend':
      return amend(command, draft);
  }
}

function overLimit(sku: string, requested: number, c: Counters): Rejection | null {
  if (c.onHand + requested <= LIMITS.quantityMax) return null;
  return { ok: false, code: 'QUANTITY_LIMIT', sku, requested, onHand: c.onHand, limit: LIMITS.quantityMax };
}

/** Due holds of all its SKUs expire first; the first line (SKU order) past the quantity limit refuses all. */
function restock(command: RestockCommand, draft: Draft): Decision {
  const skus = command.lines.map((l) => l.sku);
  draft.expireDue(skus);
  for (const { sku, qty } of command.lines) {
    const limit = overLimit(sku, qty, draft.counters(sku));
    if (limit !== null) return draft.finish(limit);
  }
  draft.own();
  draft.step(command.requestId, 'restock', command.meta, command.lines.map(({ sku, qty }) => ({ sku, onHandDelta: qty, reservedDelta: 0 })));
  return draft.finish(null, skus);
}

/** What each SKU may take beyond `available`: an amend's reservation holds it already. Null: nothing. */
type Credit = Map<string, number> | null;

function shortOf(lines: Line[], draft: Draft, credit: Credit): Rejection | null {
  for (const { sku, qty } of lines) {
    const available = availableOf(draft.counters(sku)) + (credit?.get(sku) ?? 0);
    if (available < qty) return { ok: false, code: 'INSUFFICIENT_STOCK', sku, requested: qty, available };
  }
  return null;
}

/**
 * A deduct or reserve on a SKU whose policy has a `buyerMax` must name its buyer: otherwise
 * the rule could not hold. Only the store knows the policy, so this is the one INVALID_INPUT
 * found inside the step; it is thrown before anything is decided, so nothing is written.
 * Every SKU the request names counts, alternatives included.
 */
function requireBuyer(skus: string[], buyer: string | null, draft: Draft): void {
  if (buyer !== null) return;
  for (const sku of skus) {
    if ((draft.counters(sku).policy?.buyerMax ?? null) !== null) {
      throw new InvalidInputError('buyer', `is required: SKU ${JSON.stringify(sku)} has a buyerMax (a limit per buyer)`);
    }
  }
}

/** The first line (in SKU order) that would take the buyer past the SKU's `buyerMax`. */
function buyerLimitOf(lines: Line[], buyer: string | null, draft: Draft, credit: Credit): Rejection | null {
  // Stryker disable next-line ConditionalExpression: a shortcut; without a buyer, requireBuyer already refused every limited SKU
  if (buyer === null) return null;
  for (const { sku, qty } of lines) {
    const limit = draft.counters(sku).policy?.buyerMax ?? null;
    if (limit === null) continue;
    const taken = draft.buyerTaken(sku, buyer) - (credit?.get(sku) ?? 0);
    if (taken + qty > limit) return { ok: false, code: 'BUYER_LIMIT', sku, buyer, limit, taken };
  }
  return null;
}

/** What a deduct or reserve takes: per-SKU lines (merged, sorted) and, with `anyOf` lines, the allocations. */
interface Taking {
  lines: Line[];
  allocations: Allocation[] | null;
}

/**
 * What a deduct, reserve or amend takes, or what stops it (after due expiries). One-SKU lines
 * only: the buyer's limit first, then the stock. With `anyOf` lines the allocation decides
 * which SKUs are taken, so the stock comes first, then the buyer's limit on what was allocated.
 * An amend's `credit` is what its reservation holds: stock and limits count it as free.
 */
function takingOf(take: { lines: Line[]; given: GivenLine[] | null; buyer: string | null }, draft: Draft, credit: Credit = null): Taking | Rejection {
  const { lines, given, buyer } = take;
  if (given === null) return buyerLimitOf(lines, buyer, draft, credit) ?? shortOf(lines, draft, credit) ?? { lines, allocations: null };
  const allocated = shortOf(lines, draft, credit) ?? allocate(lines, given, draft, credit);
  if ('ok' in allocated) return allocated;
  return buyerLimitOf(allocated.lines, buyer, draft, credit) ?? allocated;
}

/**
 * Allocates `anyOf` lines in the order given, after the one-SKU lines (which have no choice),
 * each seeing what earlier lines took. A line that cannot be filled is `INSUFFICIENT_STOCK`
 * naming it, with the total its alternatives had left.
 */
function allocate(plain: Line[], given: GivenLine[], draft: Draft, credit: Credit): Taking | Rejection {
  const used = new Map(plain.map((l) => [l.sku, l.qty]));
  const left = (sku: string): number => availableOf(draft.counters(sku)) + (credit?.get(sku) ?? 0) - (used.get(sku) ?? 0);
  const allocations: Allocation[] = [];
  for (let line = 0; line < given.length; line += 1) {
    const g = given[line] as GivenLine;
    if ('sku' in g) {
      allocations.push({ line, taken: [{ sku: g.sku, qty: g.qty }] });
      continue;
    }
    const taken = pick(g, left);
    if (taken === null) {
      const available = g.anyOf.reduce((sum, sku) => sum + left(sku), 0);
      return { ok: false, code: 'INSUFFICIENT_STOCK', sku: g.anyOf[0] as string, requested: g.qty, available, line, anyOf: [...g.anyOf] };
    }
    for (const t of taken) used.set(t.sku, (used.get(t.sku) ?? 0) + t.qty);
    allocations.push({ line, taken });
  }
  const lines = [...used].sort(([a], [b]) => byCodeUnits(a, b)).map(([sku, qty]) => ({ sku, qty }));
  return { lines, allocations };
}

/**
 * What one `anyOf` line takes, given what each SKU has left: from the first alternative (in
 * priority order) that has the whole line, or with `split` from each in turn until filled.
 */
function pick(g: Alternatives, left: (sku: string) => number): Line[] | null {
  const order = g.prefer === 'order' ? g.anyOf : [...g.anyOf].sort((a, b) => left(b) - left(a));
  if (!g.split) {
    const sku = order.find((s) => left(s) >= g.qty);
    return sku === undefined ? null : [{ sku, qty: g.qty }];
  }
  const taken: Line[] = [];
  let rest = g.qty;
  for (const sku of order) {
    const qty = Math.min(left(sku), rest);
    if (qty === 0) continue;
    taken.push({ sku, qty });
    rest -= qty;
    if (rest === 0) return taken;
  }
  return null;
}

function deduct(command: DeductCommand, draft: Draft): Decision {
  const skus = namedSkus(command);
  requireBuyer(skus, command.buyer, draft);
  draft.expireDue(skus);
  const taking = takingOf(command, draft);
  if ('ok' in taking) return draft.finish(taking);
  draft.own();
  draft.step(command.requestId, 'deduct', command.meta, taking.lines.map(({ sku, qty }) => ({ sku, onHandDelta: -qty, reservedDelta: 0 })), command.buyer);
  draft.write.allocations = taking.allocations;
  return draft.finish(null, taking.lines.map((l) => l.sku));
}

/**
 * A stocktake: due holds of all its SKUs expire first; the first line (SKU order) that fails
 * refuses all. One entry per line, even a zero delta: the count happened.
 */
function adjust(command: AdjustCommand, draft: Draft): Decision {
  const skus = command.lines.map((l) => l.sku);
  draft.expireDue(skus);
  for (const line of command.lines) {
    const refused = countRefused(line, draft.counters(line.sku));
    if (refused !== null) return draft.finish(refused);
  }
  const deltas = command.lines.map(({ sku, onHand }) => ({ sku, onHandDelta: onHand - draft.counters(sku).onHand, reservedDelta: 0 }));
  draft.own();
  draft.step(command.requestId, 'adjust', command.meta, deltas);
  return draft.finish(null, skus);
}

/** Why one count cannot apply to a SKU with counters `before`: a stale version, past the quantity limit, below what is reserved. */
function countRefused({ sku, onHand, expectedVersion }: Count, before: Counters): Rejection | null {
  if (expectedVersion !== null && expectedVersion !== before.version) {
    return { ok: false, code: 'VERSION_CONFLICT', sku, expectedVersion, level: levelOf(sku, before) };
  }
  if (onHand > LIMITS.quantityMax) return { ok: false, code: 'QUANTITY_LIMIT', sku, requested: onHand, onHand: before.onHand, limit: LIMITS.quantityMax };
  if (availableOf({ ...before, onHand }) < 0) return { ok: false, code: 'BELOW_RESERVED', sku, requested: onHand, level: levelOf(sku, before) };
  return null;
}

/**
 * A SKU's policy changes: one entry of kind `policy`, zero deltas, the new policy on it. A
 * lower `backorderMax` that would leave more reserved than could be sold is `BELOW_RESERVED`.
 */
function setPolicy(command: SetPolicyCommand, draft: Draft): Decision {
  const { sku } = command;
  draft.expireDue([sku]);
  const before = draft.counters(sku);
  const policy = { ...policyOf(before), ...command.set };
  if (availableOf(withPolicy(before, policy)) < 0) {
    return draft.finish({ ok: false, code: 'BELOW_RESERVED', sku, requested: policy.backorderMax, level: levelOf(sku, before) });
  }
  draft.own();
  draft.step(command.requestId, 'policy', command.meta, [{ sku, onHandDelta: 0, reservedDelta: 0, policy }]);
  return draft.finish(null, [sku]);
}

function reserve(command: ReserveCommand, draft: Draft): Decision {
  const { buyer } = command;
  const named = namedSkus(command);
  requireBuyer(named, buyer, draft);
  draft.expireDue(named);
  const taking = takingOf(command, draft);
  if ('ok' in taking) return draft.finish(taking);
  const { lines } = taking;
  const skus = lines.map((l) => l.sku);
  draft.own();
  draft.step(command.requestId, 'reserve', command.meta, lines.map(({ sku, qty }) => ({ sku, onHandDelta: 0, reservedDelta: qty })), buyer);
  const reservation: StoredReservation = {
    id: command.requestId, state: 'held', lines, expiresAt: command.expiresAt, createdAt: command.at,
    committed: null, holds: skus, outcome: null,
  };
  if (command.meta !== null) reservation.meta = command.meta;
  if (buyer !== null) reservation.buyer = buyer;
  draft.write.reservation = reservation;
  draft.write.allocations = taking.allocations;
  return draft.finish(null, skus);
}

/**
 * The buyer an original took for: its deduct's or its reserve's entries carry it (a reverse
 * reaches this only for a deduct or a committed reserve, whose entries are never empty).
 */
function buyerOf(original: StoredRequest): string | null {
  return (original.outcome.entries[0] as Entry).buyer ?? null;
}

/** Units of each SKU the original took: a deduct's lines, or what a commit sold. */
function takenBy(original: StoredRequest, draft: Draft): Map<string, number> | Rejection {
  const notReversible: Rejection = { ok: false, code: 'NOT_REVERSIBLE', requestId: original.requestId, kind: original.kind };
  const taken = new Map<string, number>();
  if (original.kind === 'deduct') {
    for (const entry of original.outcome.entries) taken.set(entry.sku, (taken.get(entry.sku) ?? 0) - entry.onHandDelta);
    return taken;
  }
  // Stryker disable next-line ConditionalExpression: only a reserve has a reservation to be committed; the check below refuses the rest too
  if (original.kind !== 'reserve') return notReversible;
  const reservation = draft.view.reservation(original.requestId);
  // Stryker disable next-line ConditionalExpression,LogicalOperator,OptionalChaining: a stored reservation has `committed` exactly when it is committed
  if (reservation?.state !== 'committed' || reservation.committed === null) return notReversible;
  for (const line of reservation.committed) if (line.qty > 0) taken.set(line.sku, line.qty);
  return taken;
}

function reverse(command: ReverseCommand, draft: Draft): Decision {
  const original = draft.view.request(command.of);
  if (original === null) return draft.finish({ ok: false, code: 'REQUEST_NOT_FOUND', requestId: command.of });
  const taken = takenBy(original, draft);
  if (!(taken instanceof Map)) return draft.finish(taken);
  const remaining = (sku: string): number => (taken.get(sku) ?? 0) - draft.view.reversed(command.of, sku);
  // Stryker disable next-line MethodExpression: the keys are put in SKU order already (entries and committed lines are)
  const lines = command.lines ?? [...taken.keys()].sort(byCodeUnits).map((sku) => ({ sku, qty: remaining(sku) })).filter((l) => l.qty > 0);
  if (lines.length === 0) {
    // Stryker disable next-line StringLiteral,ArrayDeclaration: never used: what an original took is never empty
    const [sku = '', qty = 0] = [...taken][0] ?? [];
    return draft.finish({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku, requested: qty, remaining: 0 });
  }
  const skus = lines.map((l) => l.sku);
  draft.expireDue(skus);
  for (const { sku, qty } of lines) {
    if (qty > remaining(sku)) return draft.finish({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku, requested: qty, remaining: remaining(sku) });
    const limit = overLimit(sku, qty, draft.counters(sku));
    if (limit !== null) return draft.finish(limit);
  }
  draft.own();
  draft.step(command.requestId, 'reverse', command.meta, lines.map(({ sku, qty }) => ({ sku, onHandDelta: qty, reservedDelta: 0 })), buyerOf(original));
  draft.write.reversal = { of: command.of, lines };
  return draft.finish(null, skus);
}

/**
 * A held reservation's lines replaced: checked like a reserve (with the reservation's buyer)
 * against what is available plus what it holds; one `amend` entry per SKU whose hold changes.
 * A missing buyer on a limited SKU is refused before anything, as for a reserve.
 */
function amend(command: AmendCommand, draft: Draft): Decision {
  const stored = draft.view.reservation(command.reservationId);
  const buyer = stored?.buyer ?? null;
  const named = namedSkus(command);
  if (stored !== null) requireBuyer(named, buyer, draft);
  const found = settling(command.reservationId, draft);
  if (!('holds' in found)) return draft.finish(found);
  if (found.state === 'committed') return draft.finish({ ok: false, code: 'RESERVATION_COMMITTED', reservationId: found.id });
  if (found.state === 'released') return draft.finish({ ok: false, code: 'RESERVATION_RELEASED', reservationId: found.id });
  draft.expireDue(named);
  const held = new Map(found.lines.map((l) => [l.sku, l.qty]));
  const taking = takingOf({ lines: command.lines, given: command.given, buyer }, draft, held);
  if ('ok' in taking) return draft.finish(taking);
  const after = new Map(taking.lines.map((l) => [l.sku, l.qty]));
  const skus = [...new Set([...held.keys(), ...after.keys()])].sort(byCodeUnits);
  const deltas = skus.map((sku) => ({ sku, onHandDelta: 0, reservedDelta: (after.get(sku) ?? 0) - (held.get(sku) ?? 0) })).filter((d) => d.reservedDelta !== 0);
  draft.own();
  draft.step(command.requestId, 'amend', command.meta, deltas, buyer, found.id);
  for (const sku of found.holds) if (!after.has(sku)) draft.endHold(found.id, sku);
  draft.write.amended = { ...found, lines: taking.lines, holds: taking.lines.map((l) => l.sku) };
  draft.write.allocations = taking.allocations;
  // Levels of the SKUs it touched: those whose hold changed (an unchanged line is not touched).
  return draft.finish(null, deltas.map((d) => d.sku));
}

/** Due holds of the reservation's SKUs expire first; then its state decides. */
function settling(reservationId: string, draft: Draft): StoredReservation | Rejection {
  const found = draft.view.reservation(reservationId);
  if (found === null) return { ok: false, code: 'RESERVATION_NOT_FOUND', reservationId };
  draft.expireDue(found.lines.map((l) => l.sku));
  if (reservationState(found, draft.at) === 'expired') {
    for (const sku of found.holds) draft.expireHold(found, sku);
    return { ok: false, code: 'RESERVATION_EXPIRED', reservationId, expiresAt: found.expiresAt };
  }
  return found;
}

/**
 * What a commit with `sold` sells of every reserved SKU (0 for those it does not name), in the
 * reservation's order: the normal form two commits are compared in. Null when `sold` names a
 * SKU the reservation does not hold.
 */
function saleOf(reservation: StoredReservation, sold: Line[]): Line[] | null {
  const bySku = new Map(sold.map((l) => [l.sku, l.qty]));
  // Stryker disable next-line ConditionalExpression: validated lines are merged, so bySku never loses one
  if (bySku.size !== sold.length || sold.some((l) => !reservation.lines.some((r) => r.sku === l.sku))) return null;
  return reservation.lines.map(({ sku }) => ({ sku, qty: bySku.get(sku) ?? 0 }));
}

function sameLines(a: Line[], b: Line[]): boolean {
  // Stryker disable next-line ConditionalExpression,OptionalChaining: both sides are sales in the reservation's order and length (saleOf)
  return a.length === b.length && a.every((line, i) => line.sku === b[i]?.sku && line.qty === b[i]?.qty);
}

function commit(command: CommitCommand, draft: Draft): Decision {
  const found = settling(command.reservationId, draft);
  if (!('holds' in found)) return draft.finish(found);
  const sold = command.lines ?? found.lines;
  if (found.state === 'released') return draft.finish({ ok: false, code: 'RESERVATION_RELEASED', reservationId: found.id });
  if (found.state === 'committed') {
    const sale = saleOf(found, sold);
    // Stryker disable next-line ConditionalExpression,LogicalOperator: a committed record always has its sale and outcome
    if (found.committed !== null && found.outcome !== null && sale !== null && sameLines(found.committed, sale)) {
      return { outcome: { ...found.outcome, replayed: true }, write: draft.write.steps.length > 0 ? draft.write : null };
    }
    return { outcome: { ok: false, code: 'IDEMPOTENCY_CONFLICT', requestId: found.id, storedKind: 'reserve' }, write: null };
  }
  const held = new Map(found.lines.map((l) => [l.sku, l.qty]));
  for (const { sku, qty } of sold) {
    const holding = held.get(sku) ?? 0;
    if (qty > holding) return draft.finish({ ok: false, code: 'EXCEEDS_RESERVATION', reservationId: found.id, sku, requested: qty, held: holding });
  }
  const committed = saleOf(found, sold) ?? found.lines;
  draft.own();
  for (const sku of found.holds) draft.endHold(found.id, sku);
  draft.step(found.id, 'commit', found.meta ?? null, found.lines.map(({ sku, qty }, i) => ({
    // Stryker disable next-line OptionalChaining: committed has one line per reservation line (saleOf)
    sku, onHandDelta: 0 - (committed[i]?.qty ?? 0), reservedDelta: -qty, // 0 - x: never -0
  })), found.buyer ?? null);
  draft.write.settled = { reservationId: found.id, state: 'committed', committed };
  return draft.finish(null, found.lines.map((l) => l.sku));
}

function release(command: ReleaseCommand, draft: Draft): Decision {
  const found = settling(command.reservationId, draft);
  if (!('holds' in found)) return draft.finish(found);
  if (found.state === 'committed') return draft.finish({ ok: false, code: 'RESERVATION_COMMITTED', reservationId: found.id });
  if (found.state === 'released') {
    if (found.outcome === null) throw new InvariantViolationError(`released reservation ${JSON.stringify(found.id)} has no outcome`);
    return { outcome: { ...found.outcome, replayed: true }, write: draft.write.steps.length > 0 ? draft.write : null };
  }
  draft.own();
  for (const sku of found.holds) draft.endHold(found.id, sku);
  draft.step(found.id, 'release', found.meta ?? null, found.lines.map(({ sku, qty }) => ({ sku, onHandDelta: 0, reservedDelta: -qty })), found.buyer ?? null);
  draft.write.settled = { reservationId: found.id, state: 'released', committed: null };
  return draft.finish(null, found.lines.map((l) => l.sku));
}

/**
 * Moves a held reservation's expiry; its holds move with it. It writes no entry (no stock
 * moves), and bumps no version. Due holds of its SKUs (its own included) expire first.
 */
function extend(command: ExtendCommand, draft: Draft): Decision {
  const found = settling(command.reservationId, draft);
  if (!('holds' in found)) return draft.finish(found);
  if (found.state === 'committed') return draft.finish({ ok: false, code: 'RESERVATION_COMMITTED', reservationId: found.id });
  if (found.state === 'released') return draft.finish({ ok: false, code: 'RESERVATION_RELEASED', reservationId: found.id });
  draft.own();
  draft.write.extended = { ...found, expiresAt: command.expiresAt };
  return draft.finish(null, found.lines.map((l) => l.sku));
}

function sweep(command: SweepCommand, draft: Draft): Decision {
  const due = draft.view.dueAnywhere(command.at, command.limit + 1);
  for (const hold of due.slice(0, command.limit)) {
    const reservation = draft.view.reservation(hold.reservationId);
    if (reservation !== null) draft.expireHold(reservation, hold.sku);
  }
  draft.write.sweep = { more: due.length > command.limit };
  const skus = [...new Set(draft.write.steps.flatMap((s) => s.changes.map((c) => c.sku)))];
  return draft.finish(null, skus);
}

/** What a materialized write gives the store to persist and the caller to see. */
export interface Materialized {
  outcome: StoreOutcome;
  /** Every entry, numbered, in order. */
  entries: FeedEntry[];
}

/**
 * Numbers a write's entries from `firstSeq` and builds its outcome. The store then persists
 * the entries, each change's counters (`write.steps`), and the records the write names, with
 * the outcome where needed.
 *
 * @example
 * ```ts
 * const { outcome, entries } = materialize(write, lastSeq + 1);
 * ```
 */
export function materialize(write: Write, firstSeq: number): Materialized {
  const entries: FeedEntry[] = [];
  let ownStart = 0;
  for (let i = 0; i < write.steps.length; i += 1) {
    const step = write.steps[i] as Step;
    // Stryker disable next-line ConditionalExpression: an operation's own part is one step, the last
    if (i === write.ownFrom) ownStart = entries.length;
    for (const change of step.changes) {
      const entry: FeedEntry = {
        seq: firstSeq + entries.length, requestId: step.requestId, kind: step.kind, sku: change.sku,
        onHandDelta: change.onHandDelta, reservedDelta: change.reservedDelta,
        onHandAfter: change.after.onHand, reservedAfter: change.after.reserved, at: write.at,
      };
      if (step.meta !== null) entry.meta = step.meta;
      if (step.kind === 'policy') entry.policy = policyOf(change.after);
      if (step.buyer !== null) entry.buyer = step.buyer;
      if (step.reservationId !== null) entry.reservationId = step.reservationId;
      entries.push(entry);
    }
  }
  // Stryker disable next-line ConditionalExpression,EqualityOperator: only rejections and state replays have no own step, and their outcome is not this one
  if (write.ownFrom >= write.steps.length) ownStart = entries.length;
  // Stryker disable next-line ConditionalExpression: slice(0) is the same entries, copied
  const own = ownStart === 0 ? entries : entries.slice(ownStart);
  const applied: Applied = { ok: true, replayed: false, entries: own, levels: write.levels };
  if (write.allocations !== null) applied.allocations = write.allocations;
  if (write.sweep !== null) {
    const expired = write.holdsEnded.length;
    return { outcome: { ...applied, entries, replayed: false, expired, more: write.sweep.more }, entries };
  }
  const made = write.reservation ?? write.extended ?? write.amended;
  const outcome = made === null ? applied : { ...applied, reservation: publicReservation(made, write.at) };
  return { outcome, entries };
}
