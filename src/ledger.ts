import { IdempotencyConflictError, InvalidInputError, InvariantViolationError, RejectedError, StoreUnavailableError, isStockLedgerError, type StockLedgerError } from './errors.js';
import { LIMITS } from './limits.js';
import { traced } from './tracing.js';
import { resolvePolicy, retryAfter, retryHooks, type RetryPolicy } from './retry.js';
import type { Command, StockStore, StoreOutcome, StoredHold, SweepOutcome, VerifyChunk } from './store.js';
import { levelOf, policyOf, publicReservation, zeroCounters } from './decide.js';
import type {
  AdjustInput, AdjustResult, AmendInput, AmendResult, Applied, BuyerTotal, BuyerTotalsQuery, CommitInput, CommitResult, DeductInput, DeductResult, Drift, EntriesPage, EntriesQuery, ExtendInput, ExtendResult,
  Hold, HoldsPage, HoldsQuery,
  CompactInput, CompactReport, Level, LevelsPage, LevelsQuery, OperationResult, StockEvent, StockEventsOptions, ReleaseInput, ReleaseResult, RequestRecord, Reservation, ReserveApplied, ReserveInput, ReserveResult,
  RestockInput, RestockResult, ReverseInput, ReverseResult, RevokeInput, RevokeResult, SetPolicyInput, SetPolicyResult, SweepInput, SweepResult, VerifyReport,
} from './types.js';
import {
  checkRequestId, checkSku, checkSkus, holdsCursor, toBuyerTotalsQuery, retimed, toAdjust, toAmend, toCommit, toDeduct, toEntriesQuery, toExtend, toHoldsQuery, toRelease, toReserve, toRestock, toReverse,
  toRevoke, toSetPolicy, toSweep, toCompact, toLevelsQuery, windowOf,
} from './validate.js';
import { followStockEvents, readFeed } from './events.js';
import { verifyItem } from './verify.js';

/** Per-call options of the write operations. */
export interface CallOptions {
  /**
   * The app's open transaction to run the operation in (stores whose `capabilities` say
   * `joinTransaction`; on SQLite, the store's own `database` while the app's `BEGIN` is open).
   * The operation then commits or rolls back with the app's transaction, runs inside a
   * savepoint so a rejection leaves the transaction usable, and is never retried by the
   * ledger. Without it, an operation never runs inside a transaction it did not open.
   */
  transaction?: unknown;
}

/** Options of {@link StockLedger}. */
export interface StockLedgerOptions {
  /** Where the stock lives: `MemoryStore`, `SqliteStore`, or any {@link StockStore}. */
  store: StockStore;
  /** Current time in ms; injectable so tests can move time. Default `Date.now`. */
  clock?: () => number;
  /**
   * Retry of `STORE_UNAVAILABLE` with the same request id (safe: every operation is
   * idempotent). Partial policies fill in from `DEFAULT_RETRY_POLICY`; `false` disables.
   */
  retry?: Partial<RetryPolicy> | false;
  /**
   * How long request records, finished reservations and entries are kept: `compact()` removes
   * what is older than `windowMs`. A retry of a request older than the window is a new request.
   */
  retention?: { windowMs: number };
}

/**
 * One ledger of stock: every change is an idempotent operation under a caller-chosen request
 * id, applied atomically by the store, and recorded as immutable entries.
 *
 * Business outcomes are returned (`{ ok: true, ... }` or `{ ok: false, code, ... }`); bad input,
 * idempotency conflicts and store failures are thrown as `StockLedgerError`s. A rejected
 * operation records nothing, so retrying its request id evaluates it again.
 *
 * @example
 * ```ts
 * const ledger = new StockLedger({ store: new MemoryStore() });
 * await ledger.restock({ requestId: 'po-1', sku: 'TSHIRT-M', qty: 10 });
 * const r = await ledger.deduct({ requestId: 'order-1', sku: 'TSHIRT-M', qty: 2 });
 * if (!r.ok) console.log(r.code); // 'INSUFFICIENT_STOCK' when sold out
 * ```
 */
export class StockLedger {
  readonly store: StockStore;
  readonly #clock: () => number;
  readonly #retry: RetryPolicy | null;
  readonly #hooks = retryHooks();
  readonly #windowMs: number | null;
  #closed = false;

  constructor(options: StockLedgerOptions) {
    if (typeof options?.store?.execute !== 'function') throw new InvalidInputError('store', 'must be a StockStore');
    this.store = options.store;
    this.#clock = options.clock ?? Date.now;
    this.#retry = options.retry === false ? null : resolvePolicy(options.retry);
    this.#windowMs = options.retention === undefined ? null : windowOf(options.retention?.windowMs, 'retention.windowMs');
  }

  /**
   * Adds units: `onHand += qty`, for one SKU or every line of a purchase order, all or none
   * (lines naming one SKU twice are merged). Rejected with `QUANTITY_LIMIT`, naming the first
   * line in SKU order that would pass {@link LIMITS.quantityMax}.
   *
   * @example
   * ```ts
   * await ledger.restock({ requestId: 'po-17', sku: 'A', qty: 50, meta: { supplier: 'acme' } });
   * await ledger.restock({ requestId: 'po-18', lines: [{ sku: 'A', qty: 50 }, { sku: 'B', qty: 5 }] });
   * ```
   */
  restock(input: RestockInput, options?: CallOptions): Promise<RestockResult> {
    return this.#operate(toRestock, input, options) as Promise<RestockResult>;
  }

  /**
   * Takes units from one or more SKUs, all or none. Lines naming one SKU twice are merged.
   * Rejected with `INSUFFICIENT_STOCK` (naming the SKU, requested and available) when any line's
   * available stock is short; the rejection records nothing.
   *
   * @example
   * ```ts
   * await ledger.deduct({ requestId: 'order-9', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }] });
   * await ledger.deduct({ requestId: 'order-10', sku: 'A', qty: 1 });
   * ```
   */
  deduct(input: DeductInput, options?: CallOptions): Promise<DeductResult> {
    return this.#operate(toDeduct, input, options) as Promise<DeductResult>;
  }

  /**
   * Sets on-hand absolutely (a stocktake) for one SKU or every line, all or none; each entry
   * records the delta, even a zero one. With `expectedVersion`, a line applies only if the SKU's
   * version is still that one (else `VERSION_CONFLICT`); past `LIMITS.quantityMax` it is
   * `QUANTITY_LIMIT`; below what is reserved, `BELOW_RESERVED`. The first line in SKU order that
   * fails is the rejection. A SKU twice in `lines` is `INVALID_INPUT` (counts are not added).
   *
   * @example
   * ```ts
   * const { version } = await ledger.stock('A');
   * await ledger.adjust({ requestId: 'count-3', sku: 'A', onHand: 42, expectedVersion: version });
   * await ledger.adjust({ requestId: 'count-4', lines: [{ sku: 'A', onHand: 40 }, { sku: 'B', onHand: 0 }] });
   * ```
   */
  adjust(input: AdjustInput, options?: CallOptions): Promise<AdjustResult> {
    return this.#operate(toAdjust, input, options) as Promise<AdjustResult>;
  }

  /**
   * Gives back units an earlier deduct took: the given lines, or all that is left to give back.
   * The reversals of one request never give back more than it took.
   *
   * @example
   * ```ts
   * await ledger.reverse({ requestId: 'refund-9', of: 'order-9', lines: [{ sku: 'B', qty: 1 }] });
   * ```
   */
  reverse(input: ReverseInput, options?: CallOptions): Promise<ReverseResult> {
    return this.#operate(toReverse, input, options) as Promise<ReverseResult>;
  }

  /**
   * Holds units of one or more SKUs for `ttlMs`, all or none: `reserved` grows, `available`
   * drops, `onHand` stays. The reservation's id is the request id. A hold past its `expiresAt`
   * never blocks anyone, swept or not.
   *
   * @example
   * ```ts
   * const r = await ledger.reserve({ requestId: 'cart-7', lines: [{ sku: 'A', qty: 2 }], ttlMs: 15 * 60_000 });
   * if (r.ok) console.log(r.reservation.expiresAt);
   * ```
   */
  reserve(input: ReserveInput, options?: CallOptions): Promise<ReserveResult> {
    return this.#operate(toReserve, input, options) as Promise<ReserveResult>;
  }

  /**
   * Turns a held reservation into a sale: `onHand` and `reserved` drop by what is sold. With
   * `lines`, sells those (at most what is held per SKU) and releases the rest. Committing again
   * with the same lines is a replay; with other lines, an `IDEMPOTENCY_CONFLICT`. A hold is
   * expired from `expiresAt` on: a commit at or after that instant is `RESERVATION_EXPIRED`.
   *
   * @example
   * ```ts
   * await ledger.commit({ reservationId: 'cart-7' });
   * ```
   */
  commit(input: CommitInput, options?: CallOptions): Promise<CommitResult> {
    return this.#operate(toCommit, input, options) as Promise<CommitResult>;
  }

  /**
   * Gives a held reservation back: `reserved` drops. Releasing again is a replay.
   *
   * @example
   * ```ts
   * await ledger.release({ reservationId: 'cart-7' });
   * ```
   */
  release(input: ReleaseInput, options?: CallOptions): Promise<ReleaseResult> {
    return this.#operate(toRelease, input, options) as Promise<ReleaseResult>;
  }

  /**
   * Replaces the lines of a held reservation in one step (a cart that changes at checkout):
   * add, remove or change lines, `anyOf` lines included. The new lines are checked against
   * what is available plus what this reservation already holds, all or none, with the
   * reservation's buyer and its limits; its expiry stays. It runs under its own request id, so a
   * retry is a replay and the same id with other lines is an `IdempotencyConflictError`. One
   * `amend` entry per SKU whose held quantity changes (`reservedDelta` = new - old, the
   * reservation's id in `reservationId`); the result carries the reservation as amended. An
   * expired, committed or released reservation cannot be amended (`RESERVATION_EXPIRED`,
   * `RESERVATION_COMMITTED`, `RESERVATION_RELEASED`).
   *
   * @example
   * ```ts
   * await ledger.amend({ requestId: 'cart-7-v2', reservationId: 'cart-7', lines: [{ sku: 'A', qty: 3 }, { sku: 'B', qty: 1 }] });
   * ```
   */
  amend(input: AmendInput, options?: CallOptions): Promise<AmendResult> {
    return this.#operate(toAmend, input, options) as Promise<AmendResult>;
  }

  /** {@link amend}, throwing a `RejectedError` instead of returning a rejection. */
  async amendOrThrow(input: AmendInput, options?: CallOptions): Promise<ReserveApplied> {
    return orThrow(await this.amend(input, options)) as ReserveApplied;
  }

  /**
   * Moves a held reservation's expiry to now + `ttlMs` (a heartbeat while the buyer is still at
   * checkout; at most `LIMITS.ttlMsMax`, and it may also shorten it). No entry is written and no
   * level changes; the result carries the reservation with its new `expiresAt`. Running it again
   * only moves the expiry again, so it needs no request id. An expired, committed or released
   * reservation cannot be extended (`RESERVATION_EXPIRED`, `RESERVATION_COMMITTED`,
   * `RESERVATION_RELEASED`): a renewed cart reserves anew, under its own request id.
   *
   * @example
   * ```ts
   * await ledger.extend({ reservationId: 'cart-7', ttlMs: 10 * 60_000 });
   * ```
   */
  extend(input: ExtendInput, options?: CallOptions): Promise<ExtendResult> {
    return this.#operate(toExtend, input, options) as Promise<ExtendResult>;
  }

  /** {@link extend}, throwing a `RejectedError` instead of returning a rejection. */
  async extendOrThrow(input: ExtendInput, options?: CallOptions): Promise<ReserveApplied> {
    return orThrow(await this.extend(input, options)) as ReserveApplied;
  }

  /**
   * Closes a request id that was never applied, so that a late duplicate of it (a queue
   * redelivery of a cancelled order) can never apply: it records a tombstone under the id, and
   * every later operation with that id is refused with `REQUEST_REVOKED`. Revoking again is a
   * replay. An id already applied is refused with `REQUEST_APPLIED`: give its units back with
   * {@link reverse} instead. No entry is written and no level changes.
   *
   * @example
   * ```ts
   * const r = await ledger.deduct({ requestId: 'order-5', sku: 'A', qty: 1 });
   * if (!r.ok) await ledger.revoke({ requestId: 'order-5', meta: { reason: 'sold out, cancelled' } });
   * ```
   */
  revoke(input: RevokeInput, options?: CallOptions): Promise<RevokeResult> {
    return this.#operate(toRevoke, input, options) as Promise<RevokeResult>;
  }

  /**
   * Expires due holds anywhere in the ledger, at most `limit` (default and cap
   * `LIMITS.sweepHoldsMax`) per call; `more` says whether to call again. Reads never count a
   * due hold, and every operation expires the due holds of its SKUs first, up to
   * `LIMITS.expiriesPerSkuMax` per SKU: due holds beyond that on one SKU still block until a
   * later call or a sweep clears them. Sweeping also keeps stored levels and entries current.
   *
   * @example
   * ```ts
   * while ((await ledger.sweepExpired()).more);
   * ```
   */
  async sweepExpired(input: SweepInput = {}): Promise<SweepResult> {
    const outcome = await this.#operate(toSweep, input);
    if (!outcome.ok || !('expired' in outcome)) throw new InvariantViolationError('a sweep returned no sweep outcome');
    return { expired: outcome.expired, more: outcome.more, entries: outcome.entries };
  }

  /**
   * A reservation as of now (a held one past `expiresAt` reads as `expired`), or null.
   *
   * @example
   * ```ts
   * const r = await ledger.reservation('cart-7');
   * if (r?.state === 'held') showCountdown(r.expiresAt);
   * ```
   */
  async reservation(reservationId: string): Promise<Reservation | null> {
    const id = checkRequestId(reservationId, 'reservationId');
    const now = this.#now(); // read before the store, as stocks() does: the state is as of the call
    const stored = await this.#read(() => this.store.reservation(id));
    return stored === null ? null : publicReservation(stored, now);
  }

  /** {@link reserve}, throwing a `RejectedError` instead of returning a rejection. */
  async reserveOrThrow(input: ReserveInput, options?: CallOptions): Promise<ReserveApplied> {
    return orThrow(await this.reserve(input, options)) as ReserveApplied;
  }

  /** {@link commit}, throwing a `RejectedError` instead of returning a rejection. */
  async commitOrThrow(input: CommitInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.commit(input, options));
  }

  /** {@link release}, throwing a `RejectedError` instead of returning a rejection. */
  async releaseOrThrow(input: ReleaseInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.release(input, options));
  }

  /**
   * Sets a SKU's policy, checked by every later operation inside its atomic step:
   * `backorderMax` (units that may be sold beyond on-hand, so `available = onHand - reserved +
   * backorderMax` and on-hand may go negative; a restock fills the backorder first) and
   * `lowStockAt` (the low-stock threshold). A field left out keeps its value; `null` resets it.
   * An operation like any other: idempotent under its request id, one entry of kind `policy`
   * (zero deltas, the whole new policy on it), the version grows by one. Lowering
   * `backorderMax` below what is already promised (available would go negative) is
   * `BELOW_RESERVED`.
   *
   * @example
   * ```ts
   * await ledger.setPolicy({ requestId: 'preorder-open-1', sku: 'CONSOLE', backorderMax: 500, lowStockAt: 20 });
   * ```
   */
  setPolicy(input: SetPolicyInput, options?: CallOptions): Promise<SetPolicyResult> {
    return this.#operate(toSetPolicy, input, options) as Promise<SetPolicyResult>;
  }

  /** {@link setPolicy}, throwing a `RejectedError` instead of returning a rejection. */
  async setPolicyOrThrow(input: SetPolicyInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.setPolicy(input, options));
  }

  /** {@link revoke}, throwing a `RejectedError` instead of returning a rejection. */
  async revokeOrThrow(input: RevokeInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.revoke(input, options));
  }

  /** {@link restock}, throwing a `RejectedError` instead of returning a rejection. */
  async restockOrThrow(input: RestockInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.restock(input, options));
  }

  /**
   * {@link deduct}, throwing a `RejectedError` instead of returning a rejection.
   *
   * @example
   * ```ts
   * const { levels } = await ledger.deductOrThrow({ requestId: 'order-11', sku: 'A', qty: 1 });
   * ```
   */
  async deductOrThrow(input: DeductInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.deduct(input, options));
  }

  /** {@link adjust}, throwing a `RejectedError` instead of returning a rejection. */
  async adjustOrThrow(input: AdjustInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.adjust(input, options));
  }

  /** {@link reverse}, throwing a `RejectedError` instead of returning a rejection. */
  async reverseOrThrow(input: ReverseInput, options?: CallOptions): Promise<Applied> {
    return orThrow(await this.reverse(input, options));
  }

  /**
   * The level of one SKU; an unknown SKU has all zeros.
   *
   * @example
   * ```ts
   * const { available } = await ledger.stock('A');
   * ```
   */
  async stock(sku: string): Promise<Level> {
    const checked = checkSku(sku);
    const [level] = await this.#read(() => this.store.stocks([checked], this.#now()));
    return level ?? levelOf(checked, zeroCounters());
  }

  /**
   * Levels of several SKUs, in the order given (a SKU named twice appears twice).
   *
   * @example
   * ```ts
   * const [a, b] = await ledger.stocks(['A', 'B']);
   * ```
   */
  async stocks(skus: string[]): Promise<Level[]> {
    const checked = checkSkus(skus);
    const distinct = [...new Set(checked)];
    const levels = await this.#read(() => this.store.stocks(distinct, this.#now()));
    const bySku = new Map(levels.map((level) => [level.sku, level]));
    return checked.map((sku) => ({ ...(bySku.get(sku) ?? levelOf(sku, zeroCounters())) }));
  }

  /**
   * A page of entries in `seq` order, after a cursor, optionally for one SKU. Store `next` and
   * pass it as `after` to read on; `next` is null when the page is empty.
   *
   * @example
   * ```ts
   * let after = 0;
   * const page = await ledger.entries({ after, limit: 500 });
   * if (page.next !== null) after = page.next;
   * ```
   */
  async entries(query: EntriesQuery = {}): Promise<EntriesPage> {
    const checked = toEntriesQuery(query);
    const entries = await this.#read(() => readFeed(this.store, checked));
    const last = entries[entries.length - 1];
    return { entries, next: last === undefined ? null : last.seq };
  }

  /**
   * Levels of every SKU a page at a time, in the store's SKU order, optionally only those with
   * `available <= availableAtMost`: the low-stock report. With a filter a page may be short or
   * empty while `next` still says there is more.
   *
   * @example
   * ```ts
   * let page = await ledger.levels({ availableAtMost: 5 });
   * for (;;) { report(page.levels); if (page.next === null) break; page = await ledger.levels({ availableAtMost: 5, after: page.next }); }
   * ```
   */
  async levels(query: LevelsQuery = {}): Promise<LevelsPage> {
    const checked = toLevelsQuery(query);
    const read = this.store.levels;
    if (read === undefined) throw new InvalidInputError('store', 'this store cannot list levels');
    const now = this.#now();
    return this.#read(() => read.call(this.store, { ...checked, now }));
  }

  /**
   * Stock events (`depleted`, `belowThreshold`, `replenished`) derived from the entries feed:
   * edge-triggered, in feed order, exactly once per crossing for a follower that stores each
   * event's `cursor` and passes it back as `after` when it starts again.
   *
   * @example
   * ```ts
   * for await (const event of ledger.stockEvents({ after: await loadCursor(), signal })) {
   *   if (event.type === 'replenished') await emailWaitlist(event.sku);
   *   await saveCursor(event.cursor);
   * }
   * ```
   */
  stockEvents(options: StockEventsOptions = {}): AsyncIterable<StockEvent> {
    return followStockEvents(options, {
      page: (after, limit) => this.entries(after === null ? { limit } : { after, limit }),
      skuPage: async (sku, after, limit) => (await this.entries({ sku, after, limit })).entries,
      record: (id) => this.request(id),
      policies: async (skus) => (await this.stocks(skus)).map(policyOf),
    });
  }

  /**
   * Removes what is older than the window (`windowMs`, or the ledger's `retention.windowMs`; or
   * older than the time `before`, in ms):
   * request records, closed ids, finished reservations and entries, in bounded atomic steps
   * while writes go on, after sweeping due holds. Each SKU keeps a checkpoint of what its
   * removed entries folded to, so `verify()` stays exact; a feed cursor below
   * `compactedThrough` then throws `FeedCompactedError`. A held reservation keeps its entries,
   * and those after them, until it ends.
   *
   * @example
   * ```ts
   * const report = await ledger.compact({ windowMs: 7 * 24 * 3600_000 });
   * console.log(`removed ${report.entries} entries, feed starts after ${report.compactedThrough}`);
   * ```
   */
  async compact(input?: CompactInput): Promise<CompactReport> {
    const { before } = toCompact(input, this.#windowMs, () => this.#now());
    const step = this.store.compact;
    if (step === undefined) throw new InvalidInputError('store', 'this store cannot compact');
    while ((await this.sweepExpired()).more);
    const now = this.#now();
    const report: CompactReport = { before, requests: 0, reservations: 0, entries: 0, compactedThrough: 0, steps: 0 };
    for (let i = 0; i < LIMITS.compactStepsMax; i += 1) {
      const done = await this.#read(() => step.call(this.store, { before, limit: LIMITS.compactStepItemsMax, now }));
      report.requests += done.requests;
      report.reservations += done.reservations;
      report.entries += done.entries;
      report.compactedThrough = done.compactedThrough;
      report.steps += 1;
      if (!done.more) return report;
    }
    throw new InvariantViolationError(`compact: the store still had more after ${LIMITS.compactStepsMax} steps`);
  }

  /**
   * Who holds what of a SKU, as of now: its live holds (a held reservation's units, until its
   * `expiresAt`), soonest expiry first, a page at a time. The answer to "why is available 0
   * when 10 are on hand". Due holds are not listed (reads count them as expired).
   *
   * @example
   * ```ts
   * const page = await ledger.holds({ sku: 'TSHIRT-M', limit: 50 });
   * for (const h of page.holds) console.log(h.reservationId, h.qty, new Date(h.expiresAt));
   * if (page.next !== null) await ledger.holds({ sku: 'TSHIRT-M', after: page.next });
   * ```
   */
  async holds(query: HoldsQuery): Promise<HoldsPage> {
    const checked = toHoldsQuery(query);
    const list = this.store.holds;
    if (list === undefined) throw new InvalidInputError('store', 'this store cannot list holds');
    const now = this.#now();
    const found = await this.#read(() => list.call(this.store, { ...checked, now }));
    const holds = found.map((h) => {
      const hold: Hold = { reservationId: h.reservationId, sku: checked.sku, qty: h.qty, expiresAt: h.expiresAt };
      if (h.meta !== undefined) hold.meta = h.meta;
      if (h.buyer !== undefined) hold.buyer = h.buyer;
      return hold;
    });
    // A short page is the last; a full one has a last hold to go on from.
    return { holds, next: found.length < checked.limit ? null : holdsCursor(found[found.length - 1] as StoredHold) };
  }

  /**
   * What one buyer holds plus has bought of each SKU, as of now (the count a SKU's `buyerMax`
   * limits: deducted and held, less what was reversed, released or expired; due holds count as
   * expired), in the order given.
   *
   * @example
   * ```ts
   * const [mine] = await ledger.buyerTotals({ buyer: 'customer-42', skus: ['SNEAKER-42'] });
   * console.log(`you have ${mine.taken} of 2`);
   * ```
   */
  async buyerTotals(query: BuyerTotalsQuery): Promise<BuyerTotal[]> {
    const { buyer, skus } = toBuyerTotalsQuery(query);
    const read = this.store.buyerTotals;
    if (read === undefined) throw new InvalidInputError('store', 'this store cannot read buyer totals');
    const distinct = [...new Set(skus)];
    const now = this.#now();
    const taken = await this.#read(() => read.call(this.store, { buyer, skus: distinct, now }));
    const bySku = new Map(distinct.map((sku, i) => [sku, taken[i] ?? 0]));
    return skus.map((sku) => ({ sku, buyer, taken: bySku.get(sku) ?? 0 }));
  }

  /**
   * The stored outcome of an applied request, or null (rejected requests record nothing).
   *
   * @example
   * ```ts
   * const record = await ledger.request('order-9');
   * if (record) console.log(record.kind, record.entries);
   * ```
   */
  async request(requestId: string): Promise<RequestRecord | null> {
    const id = checkRequestId(requestId);
    const stored = await this.#read(() => this.store.request(id));
    if (stored === null) return null;
    return { ...stored.outcome, replayed: true, requestId: stored.requestId, kind: stored.kind, at: stored.at };
  }

  /**
   * Checks every invariant of every SKU (see `Invariant`): its entries fold to its stored
   * level, `0 <= reserved <= onHand`, its live holds sum to `reserved` and agree with the
   * entries and records of their reservations. In bounded atomic chunks, while writes go on.
   * `ok` is false with one drift item per broken invariant per SKU, each with both sides.
   *
   * @example
   * ```ts
   * const report = await ledger.verify();
   * if (!report.ok) alert(report.drift);
   * ```
   */
  async verify(): Promise<VerifyReport> {
    const drift: Drift[] = [];
    let skusChecked = 0;
    let cursor: string | null = null;
    for (let chunk = 0; chunk < LIMITS.verifyChunksMax; chunk += 1) {
      const at: string | null = cursor;
      const page: VerifyChunk = await this.#read(() => this.store.verifyChunk({ cursor: at, limit: LIMITS.verifyChunkSkus }));
      skusChecked += page.items.length;
      for (const item of page.items) {
        drift.push(...verifyItem(item));
      }
      cursor = page.cursor;
      if (cursor === null) return { ok: drift.length === 0, skusChecked, drift };
    }
    // A walk that never ends is a store's bug: never a report that says all is well.
    throw new InvariantViolationError(`verify: the store still had SKUs after ${LIMITS.verifyChunksMax} chunks (its cursor never ends)`);
  }

  /**
   * Closes the store (which closes only what it opened itself).
   *
   * @example
   * ```ts
   * await ledger.close();
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.store.close();
  }

  /**
   * Validates and runs one command. Not async itself, so the hot path has one async layer:
   * input errors still reject the returned promise rather than throw.
   */
  #operate(build: (input: unknown, at: number) => Command, input: unknown, options?: CallOptions): Promise<OperationResult | SweepOutcome> {
    try {
      if (this.#closed) throw closed();
      const transaction = this.#joined(options);
      const command = build(input, this.#now());
      return traced(command, this.store, transaction !== undefined, (attempt) =>
        (transaction === undefined ? this.#execute(command, attempt) : this.#executeJoined(command, transaction, attempt)));
    } catch (error) {
      // Validation throws InvalidInputError; anything else came from the caller's input (a
      // throwing getter, a Proxy) or clock: still a typed error, with the original as cause.
      return Promise.reject(isStockLedgerError(error) ? error : new InvalidInputError('input', `could not be read: ${String(error)}`, { cause: error }));
    }
  }

  /** The app's transaction the call hands in, checked against what the store can do. */
  #joined(options: CallOptions | undefined): unknown {
    if (options === undefined) return undefined;
    const b = options as unknown;
    if (typeof b !== 'object' || b === null) throw new InvalidInputError('options', 'must be an object');
    const { transaction } = options;
    if (transaction === undefined) return undefined;
    if (this.store.capabilities?.joinTransaction !== true) {
      throw new InvalidInputError('options.transaction', 'this store cannot join an app\'s transaction');
    }
    // An object (a pg client, a better-sqlite3 database) or a function (a postgres.js scope).
    if ((typeof transaction !== 'object' && typeof transaction !== 'function') || transaction === null) {
      throw new InvalidInputError('options.transaction', 'must be the app\'s open transaction');
    }
    return transaction;
  }

  /**
   * Inside the app's transaction: once, never retried (a retry inside a transaction the app
   * may already have lost would be a guess; the app retries its whole transaction).
   */
  async #executeJoined(command: Command, transaction: unknown, attempt: () => void): Promise<OperationResult | SweepOutcome> {
    let outcome: StoreOutcome;
    attempt();
    try {
      outcome = await this.store.execute(command, { transaction });
    } catch (error) {
      throw typed(error);
    }
    return toResult(outcome);
  }

  async #execute(command: Command, attempt: () => void): Promise<OperationResult | SweepOutcome> {
    const startedMs = this.#hooks.now();
    let outcome: StoreOutcome;
    attempt();
    try {
      outcome = await this.store.execute(command);
    } catch (error) {
      outcome = await this.#recover(error, () => {
        attempt();
        return this.store.execute(retimed(command, this.#now()));
      }, startedMs);
    }
    return toResult(outcome);
  }

  /** The clock's time as whole ms; a clock that returns garbage is a bug worth failing on. */
  #now(): number {
    const ms = this.#clock();
    if (typeof ms !== 'number' || !(ms >= 0) || !Number.isSafeInteger(Math.floor(ms))) {
      throw new InvalidInputError('clock', 'must return a number of ms from 0 to 2^53');
    }
    return Math.floor(ms);
  }

  async #read<T>(read: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closed();
    const startedMs = this.#hooks.now();
    try {
      return await read();
    } catch (error) {
      return this.#recover(error, read, startedMs);
    }
  }

  /**
   * After a failed first attempt (started at `startedMs`): retry `again` while the policy
   * allows, else rethrow. A store must map its failures to StockLedgerErrors; anything else
   * escaping it is a bug in the store, reported as INVARIANT_VIOLATION and never retried.
   */
  #recover<T>(error: unknown, again: () => Promise<T>, startedMs: number): Promise<T> {
    const failure = typed(error);
    if (this.#retry === null) return Promise.reject(failure);
    const typedAgain = (): Promise<T> => again().catch((next: unknown) => Promise.reject(typed(next)));
    return retryAfter({ error: failure, fn: typedAgain, policy: this.#retry, hooks: this.#hooks, startedMs });
  }
}

function typed(error: unknown): StockLedgerError {
  if (isStockLedgerError(error)) return error;
  return new InvariantViolationError(`the store failed with an untyped error: ${String(error)}`, { cause: error });
}

/** A closed ledger will not come back: fail at once instead of retrying. */
function closed(): StoreUnavailableError {
  return new StoreUnavailableError('the ledger is closed');
}

/** Turns a store's conflict outcome into the thrown error; passes results through. */
function toResult(outcome: StoreOutcome): OperationResult | SweepOutcome {
  // Stryker disable next-line ConditionalExpression: a shortcut; an applied outcome has no code, so the test below passes it through too
  if (outcome.ok) return outcome;
  if (outcome.code === 'IDEMPOTENCY_CONFLICT') throw new IdempotencyConflictError(outcome.requestId, outcome.storedKind);
  return outcome;
}

function orThrow(result: OperationResult | SweepOutcome): Applied {
  if (result.ok) return result;
  throw new RejectedError(result);
}
