/** A JSON value as accepted in `meta`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object, the shape of `meta`. */
export type JsonObject = { [key: string]: JsonValue };

/** The stock of one SKU. An unknown SKU has all zeros. */
export interface Level {
  sku: string;
  /** Units physically there. */
  onHand: number;
  /** Units held for someone. */
  reserved: number;
  /** `onHand - reserved + backorderMax`: what a deduct or reserve may take. */
  available: number;
  /** Number of entries this SKU has; grows by one on every change. */
  version: number;
  /** The SKU's policy (see `setPolicy`); present only when some field differs from its default. */
  policy?: StockPolicy;
}

/**
 * Rules of one SKU that the ledger checks inside the atomic step of every operation.
 *
 * @example
 * ```ts
 * const preorder: StockPolicy = { backorderMax: 50, lowStockAt: null };
 * ```
 */
export interface StockPolicy {
  /**
   * Units that may be sold or held beyond what is on hand (a backorder or preorder allowance),
   * so `available = onHand - reserved + backorderMax` and `onHand` may go negative. Default 0.
   */
  backorderMax: number;
  /** The level at or below which a SKU counts as low on stock (for alerts); null: none. Default null. */
  lowStockAt: number | null;
  /**
   * Units one `buyer` may hold plus have bought of the SKU (deducted and held, less what was
   * reversed, released or expired); a deduct or reserve of the SKU must then name its buyer.
   * null: no limit. Default null.
   */
  buyerMax: number | null;
}

/**
 * Kinds of operation that carry their own request id. A `revoke` closes an id that was never
 * applied: it records the id, and no entry.
 */
export type OperationKind = 'restock' | 'deduct' | 'adjust' | 'reverse' | 'reserve' | 'revoke' | 'policy' | 'amend';

/**
 * Kinds of entry: one per operation kind that changes stock, plus the moves of a reservation,
 * which carry the reservation's id as their `requestId` (an `amend` carries its own request id,
 * and the reservation's in `reservationId`).
 */
export type EntryKind = Exclude<OperationKind, 'revoke'> | 'commit' | 'release' | 'expire';

/** One immutable record of a change to one SKU. */
export interface Entry {
  /**
   * Position in the ledger's feed, from 1, growing by one per entry: a cursor for readers.
   * `null` only in the result of an operation that ran inside the app's own transaction (a SQL
   * store that numbers entries after commit): such entries get their seq once the app commits,
   * and `entries()`, `request()` and a replay show it.
   */
  seq: number | null;
  requestId: string;
  kind: EntryKind;
  sku: string;
  onHandDelta: number;
  reservedDelta: number;
  onHandAfter: number;
  reservedAfter: number;
  /** Time of the operation, in ms, from the ledger's clock. */
  at: number;
  meta?: JsonObject;
  /** On entries of kind `policy` only: the SKU's whole policy after the change (defaults included). */
  policy?: StockPolicy;
  /**
   * The buyer the units were taken for or given back by: on the entries of a deduct or reserve
   * that named one, and on the commit, release, expire, amend and reverse entries that follow from it.
   */
  buyer?: string;
  /** On entries of kind `amend` only: the reservation whose hold of the SKU changed by `reservedDelta`. */
  reservationId?: string;
}

/** One SKU and a quantity. */
export interface Line {
  sku: string;
  qty: number;
}

/**
 * A deduct or reserve line served by alternatives: one product at several locations
 * (`TSHIRT-M@berlin`, `TSHIRT-M@paris`), or substitutes. The SKUs are tried in priority order
 * inside the atomic step.
 *
 * @example
 * ```ts
 * await ledger.deduct({ requestId: 'o-1', lines: [{ anyOf: ['TSHIRT-M@berlin', 'TSHIRT-M@paris'], qty: 3, split: true }] });
 * ```
 */
export interface AnyOfLine {
  /** The alternatives, distinct, 1 to `LIMITS.alternativesPerLineMax`, in priority order. */
  anyOf: string[];
  qty: number;
  /** `true`: taken from the alternatives in priority order until filled. Default `false`: the first one that has the whole line serves it. */
  split?: boolean;
  /** The priority: `'order'` (as listed, the default) or `'mostAvailable'` (most available first, ties as listed). */
  prefer?: 'order' | 'mostAvailable';
}

/** A line of a deduct or reserve: one SKU, or alternatives. */
export type OrderLine = Line | AnyOfLine;

/** Which SKUs served one line of a deduct or reserve that had an `anyOf` line. */
export interface Allocation {
  /** The line's index in the request's `lines`, as given. */
  line: number;
  /** What each SKU gave, in the order taken; quantities sum to the line's `qty`. */
  taken: Line[];
}

/** Outcome of an applied operation (or of a replay of one). */
export interface Applied {
  ok: true;
  /** True when this request id had already been applied: nothing changed this time. */
  replayed: boolean;
  entries: Entry[];
  /** The levels right after the operation, one per SKU it touched, sorted by SKU. */
  levels: Level[];
  /**
   * Set when the request had an `anyOf` line: one allocation per line, in the order given
   * (a one-SKU line is served by its SKU). A replay returns the same allocations.
   */
  allocations?: Allocation[];
}

/** A deduct (or reserve) line asked for more than is available. */
export interface InsufficientStock {
  ok: false;
  code: 'INSUFFICIENT_STOCK';
  /** The SKU that is short; for an `anyOf` line, its first alternative. */
  sku: string;
  requested: number;
  /** What the SKU had left; for an `anyOf` line, the sum over its alternatives after earlier lines. */
  available: number;
  /** For an `anyOf` line: its index in `lines`, as given. */
  line?: number;
  /** For an `anyOf` line: its alternatives. */
  anyOf?: string[];
}

/** A deduct or reserve would take a buyer past the SKU's `buyerMax`. */
export interface BuyerLimit {
  ok: false;
  code: 'BUYER_LIMIT';
  sku: string;
  buyer: string;
  /** The SKU's `buyerMax`. */
  limit: number;
  /** What the buyer holds plus has bought of the SKU already. */
  taken: number;
}

/** `adjust` with an `expectedVersion` that is not the current one. */
export interface VersionConflict {
  ok: false;
  code: 'VERSION_CONFLICT';
  sku: string;
  expectedVersion: number;
  level: Level;
}

/**
 * `adjust` to an on-hand, or `setPolicy` to a `backorderMax`, that would leave `available`
 * negative (more reserved than could be sold): release holds first. `requested` is the on-hand
 * (adjust) or the `backorderMax` (setPolicy) asked for.
 */
export interface BelowReserved {
  ok: false;
  code: 'BELOW_RESERVED';
  sku: string;
  requested: number;
  level: Level;
}

/** The change would take a SKU's on-hand past {@link LIMITS.quantityMax}. */
export interface QuantityLimit {
  ok: false;
  code: 'QUANTITY_LIMIT';
  sku: string;
  requested: number;
  onHand: number;
  limit: number;
}

/** `reverse` names a request id that was never applied. */
export interface RequestNotFound {
  ok: false;
  code: 'REQUEST_NOT_FOUND';
  requestId: string;
}

/** `reverse` names a request that is not a deduct or a committed reservation. */
export interface NotReversible {
  ok: false;
  code: 'NOT_REVERSIBLE';
  requestId: string;
  kind: OperationKind;
}

/** The reversals of one request would give back more than it took of a SKU. */
export interface ReversalExceedsOriginal {
  ok: false;
  code: 'REVERSAL_EXCEEDS_ORIGINAL';
  sku: string;
  requested: number;
  /** Units of that SKU still reversible. */
  remaining: number;
}

/** `commit` or `release` of a reservation id that was never reserved. */
export interface ReservationNotFound {
  ok: false;
  code: 'RESERVATION_NOT_FOUND';
  reservationId: string;
}

/** `commit` or `release` of a reservation whose hold has expired (`now >= expiresAt`). */
export interface ReservationExpired {
  ok: false;
  code: 'RESERVATION_EXPIRED';
  reservationId: string;
  expiresAt: number;
}

/** `commit` of a reservation that was released. */
export interface ReservationReleased {
  ok: false;
  code: 'RESERVATION_RELEASED';
  reservationId: string;
}

/** `release` of a reservation that was committed. */
export interface ReservationCommitted {
  ok: false;
  code: 'RESERVATION_COMMITTED';
  reservationId: string;
}

/** A partial commit asks for more of a SKU than the reservation holds. */
export interface ExceedsReservation {
  ok: false;
  code: 'EXCEEDS_RESERVATION';
  reservationId: string;
  sku: string;
  requested: number;
  held: number;
}

/** The request id was revoked: it can never be applied. */
export interface RequestRevoked {
  ok: false;
  code: 'REQUEST_REVOKED';
  requestId: string;
}

/** `revoke` of a request id that was already applied (give its units back with `reverse`). */
export interface RequestApplied {
  ok: false;
  code: 'REQUEST_APPLIED';
  requestId: string;
  kind: OperationKind;
}

/** Every business rejection. A rejected operation records nothing. */
export type Rejection =
  | InsufficientStock
  | BuyerLimit
  | VersionConflict
  | BelowReserved
  | QuantityLimit
  | RequestNotFound
  | NotReversible
  | ReversalExceedsOriginal
  | ReservationNotFound
  | ReservationExpired
  | ReservationReleased
  | ReservationCommitted
  | ExceedsReservation
  | RequestRevoked
  | RequestApplied;

export type RestockResult = Applied | QuantityLimit | RequestRevoked;
export type DeductResult = Applied | InsufficientStock | BuyerLimit | RequestRevoked;
export type AdjustResult = Applied | VersionConflict | BelowReserved | QuantityLimit | RequestRevoked;
export type ReverseResult = Applied | RequestNotFound | NotReversible | ReversalExceedsOriginal | QuantityLimit | RequestRevoked;
export type ReserveResult = ReserveApplied | InsufficientStock | BuyerLimit | RequestRevoked;
/** One entry of kind `policy` (zero deltas, the new policy on it); `levels` shows the policy. */
export type SetPolicyResult = Applied | BelowReserved | RequestRevoked;
/** A revoke records the id and no entry: `entries` and `levels` are empty. */
export type RevokeResult = Applied | RequestApplied;
export type CommitResult = Applied | ReservationNotFound | ReservationExpired | ReservationReleased | ExceedsReservation;
export type ReleaseResult = Applied | ReservationNotFound | ReservationExpired | ReservationCommitted;
/** An extend writes no entry: `entries` is empty, `levels` are the reservation's SKUs, `reservation` has the new expiry. */
/** Result of `amend`: the reservation with its new lines, or why not. */
export type AmendResult =
  | ReserveApplied | ReservationNotFound | ReservationExpired | ReservationReleased | ReservationCommitted | InsufficientStock | BuyerLimit | RequestRevoked;
export type ExtendResult = ReserveApplied | ReservationNotFound | ReservationExpired | ReservationReleased | ReservationCommitted;
export type OperationResult = Applied | Rejection;

/** Where a reservation stands. It moves one way: `held -> committed | released | expired`. */
export type ReservationState = 'held' | 'committed' | 'released' | 'expired';

/** A two-phase hold on stock. Its id is the `requestId` of the `reserve` that made it. */
export interface Reservation {
  id: string;
  /** As of the time it was read: a held reservation past `expiresAt` reads as `expired`. */
  state: ReservationState;
  /** What it holds (or held), merged and sorted by SKU. */
  lines: Line[];
  /** From this instant on the hold is void: `now >= expiresAt` means expired. */
  expiresAt: number;
  createdAt: number;
  /** What a commit sold, sorted by SKU (the rest was released); null unless committed. */
  committed: Line[] | null;
  meta?: JsonObject;
  /** The buyer its reserve named. */
  buyer?: string;
}

/** Outcome of an applied `reserve`: the usual fields plus the reservation it made. */
export interface ReserveApplied extends Applied {
  reservation: Reservation;
}

/** Outcome of `sweepExpired`. */
export interface SweepResult {
  /** Holds (one per reservation and SKU) expired by this call. */
  expired: number;
  /** True when due holds remain past this call's limit: call again. */
  more: boolean;
  entries: Entry[];
}

interface InputBase {
  /** Caller-chosen id, unique per ledger across every kind: the idempotency key. */
  requestId: string;
  /** Small JSON object saying who and why (order id, user, reason); part of the payload. */
  meta?: JsonObject;
}

/**
 * Adds units: one SKU (`sku` and `qty`), or a purchase order (`lines`, merged and checked like a
 * deduct's), all or none. Give exactly one form.
 *
 * @example
 * ```ts
 * await ledger.restock({ requestId: 'po-17', lines: [{ sku: 'A', qty: 50 }, { sku: 'B', qty: 20 }] });
 * ```
 */
export type RestockInput = (InputBase & { sku: string; qty: number }) | (InputBase & { lines: Line[] });

/** Who takes the units: required on SKUs whose policy has a `buyerMax`. */
interface BuyerField {
  /** A customer id (1 to `LIMITS.requestIdBytesMax` bytes); part of the payload. */
  buyer?: string;
}

export type DeductInput = (InputBase & BuyerField & { lines: OrderLine[] }) | (InputBase & BuyerField & { sku: string; qty: number });

/** One SKU's count in an adjust: its on-hand, set absolutely. */
export interface CountLine {
  sku: string;
  /** The counted on-hand, set absolutely. */
  onHand: number;
  /** When given, the line applies only if the SKU's version is still this one. */
  expectedVersion?: number;
}

/**
 * Sets on-hand absolutely: one SKU, or a stocktake (`lines`, each SKU once), all or none.
 * Give exactly one form.
 *
 * @example
 * ```ts
 * await ledger.adjust({ requestId: 'count-3', lines: [{ sku: 'A', onHand: 42, expectedVersion: 7 }, { sku: 'B', onHand: 0 }] });
 * ```
 */
export type AdjustInput = (InputBase & CountLine) | (InputBase & { lines: CountLine[] });

export interface ReverseInput extends InputBase {
  /** Request id of the deduct, or id of the committed reservation, to give back. */
  of: string;
  /** Lines to give back; all that the original took when omitted. */
  lines?: Line[];
}

export interface ReserveInput extends InputBase, BuyerField {
  /** What to hold, all or none; the same SKU twice is merged; `anyOf` lines are allocated after the others, in order. */
  lines: OrderLine[];
  /** How long the hold lasts, in ms, from the ledger clock's now. */
  ttlMs: number;
}

export interface CommitInput {
  reservationId: string;
  /** What to sell, at most what is held per SKU; the rest is released. All when omitted. */
  lines?: Line[];
}

/**
 * Changes a SKU's policy. A field left out keeps its value; `null` sets it back to its default.
 * At least one field must be given.
 */
export interface SetPolicyInput extends InputBase {
  sku: string;
  /** 0 to `LIMITS.quantityMax`; null: 0. */
  backorderMax?: number | null;
  /** 0 to `LIMITS.quantityMax`; null: none. */
  lowStockAt?: number | null;
  /** 0 to `LIMITS.quantityMax`; null: no limit. */
  buyerMax?: number | null;
}

/** Closes `requestId` (never applied) for good; `meta` says why. */
export interface RevokeInput {
  requestId: string;
  meta?: JsonObject;
}

export interface ReleaseInput {
  reservationId: string;
}

export interface AmendInput extends InputBase {
  /** The held reservation whose lines change. */
  reservationId: string;
  /** Its new lines, replacing the old ones, all or none; the same SKU twice is merged; `anyOf` lines are allocated after the others. */
  lines: OrderLine[];
}

export interface ExtendInput {
  reservationId: string;
  /** The new expiry is the ledger clock's now plus this, in ms (1 to `LIMITS.ttlMsMax`). */
  ttlMs: number;
}

export interface SweepInput {
  /** Most holds to expire in this call (default and maximum: `LIMITS.sweepHoldsMax`). */
  limit?: number;
}

export interface EntriesQuery {
  /**
   * Return entries with `seq` greater than this. Omitted: from the oldest entry kept. A cursor
   * below the compacted part of the feed throws `FeedCompactedError` (`FEED_COMPACTED`).
   */
  after?: number;
  /** Only this SKU's entries. */
  sku?: string;
  /** Page size, 1 to 1000, default 100. */
  limit?: number;
}

/** An entry as the feed returns it: always numbered. */
export interface FeedEntry extends Entry {
  seq: number;
}

export interface HoldsQuery {
  sku: string;
  /** The `next` of the previous page; the first page when omitted. */
  after?: string;
  /** Page size, 1 to 1000, default 100. */
  limit?: number;
}

/** One live hold of a SKU: units a held reservation keeps from `available` until `expiresAt`. */
export interface Hold {
  reservationId: string;
  sku: string;
  qty: number;
  expiresAt: number;
  /** The reservation's meta (who, which cart), when it has one. */
  meta?: JsonObject;
  /** The buyer its reserve named, when it named one. */
  buyer?: string;
}

export interface BuyerTotalsQuery {
  buyer: string;
  /** Distinct SKUs, at most `LIMITS.skusPerReadMax`. */
  skus: string[];
}

/** What one buyer holds plus has bought of one SKU, as of now (due holds count as expired). */
export interface BuyerTotal {
  sku: string;
  buyer: string;
  taken: number;
}

export interface HoldsPage {
  /** Soonest expiry first, then by reservation id. */
  holds: Hold[];
  /** Opaque cursor: pass it as `after` for the next page; null when this page is the last. */
  next: string | null;
}

export interface EntriesPage {
  entries: FeedEntry[];
  /** The `seq` to pass as `after` for the next page; null when this page is empty. */
  next: number | null;
}

export interface CompactInput {
  /**
   * Keep what is younger than this many ms; remove older request records, finished
   * reservations and entries. Default: the ledger's `retention.windowMs`.
   */
  windowMs?: number;
  /** Instead of `windowMs`: remove what is older than this time (ms, the ledger clock's scale). */
  before?: number;
}

/** What one `compact()` removed, in bounded atomic steps. */
export interface CompactReport {
  /** The cutoff: what is older than this time (ms) was removable. */
  before: number;
  /** Request records removed (closed ids included). */
  requests: number;
  /** Reservation records removed (finished ones only). */
  reservations: number;
  /** Entries removed (folded into their SKU's checkpoint first). */
  entries: number;
  /** Entries with `seq` up to this are gone from the feed; 0 when nothing was ever compacted. */
  compactedThrough: number;
  /** Atomic steps taken. */
  steps: number;
}

export interface LevelsQuery {
  /** The `next` of the previous page; the first page when omitted. */
  after?: string;
  /** SKUs looked at per page, 1 to 1000, default 100 (with a filter, a page may hold fewer). */
  limit?: number;
  /** Only SKUs whose `available` is at most this (a low-stock report). */
  availableAtMost?: number;
}

/** A page of levels, in the store's SKU order. */
export interface LevelsPage {
  levels: Level[];
  /** Opaque cursor: pass it as `after` for the next page; null when this page is the last. */
  next: string | null;
}

/**
 * An edge of a SKU's `available`, derived from one entry of the feed:
 * - `depleted`: it reached 0 (from above);
 * - `belowThreshold`: it fell to or below the SKU's `lowStockAt` (or the follower's default), from above;
 * - `replenished`: it rose above the threshold again (above 0 when the SKU has none).
 */
export type StockEventType = 'depleted' | 'belowThreshold' | 'replenished';

export interface StockEvent {
  type: StockEventType;
  sku: string;
  /** `available` before and after the entry. */
  availableBefore: number;
  available: number;
  /** The threshold that was crossed: `lowStockAt` (or the default) for `belowThreshold`; for `replenished`, that, or 0 without one; 0 for `depleted`. */
  threshold: number;
  /** The entry that caused it. */
  entry: FeedEntry;
  /** Store this; pass it as `after` to go on after this event, with no duplicate and no gap. */
  cursor: string;
}

export interface StockEventsOptions {
  /** The `cursor` of the last event handled (or an entries `seq`); from the oldest entry kept when omitted. */
  after?: string | number;
  /** Threshold for SKUs whose policy has no `lowStockAt`; none by default. */
  lowStockAt?: number;
  /** Keep polling the feed when caught up (default true); false ends the iteration there. */
  follow?: boolean;
  /** Wait between polls when caught up, in ms (default 500). */
  pollMs?: number;
  /** Ends the iteration (between polls or pages). */
  signal?: AbortSignal;
  /** Entries read per page (default 500, at most 1000). */
  pageSize?: number;
}

/** What `request(id)` returns: the stored outcome of an applied request. */
export interface RequestRecord extends Applied {
  requestId: string;
  kind: OperationKind;
  at: number;
  replayed: true;
}

/** The counters of a SKU as stored, or as folded from its entries. */
export interface Counters {
  onHand: number;
  reserved: number;
  version: number;
  /** Present only when some field differs from its default (see {@link StockPolicy}). */
  policy?: StockPolicy;
}

/**
 * The invariants `verify()` checks, per SKU:
 * - `fold`: folding the SKU's entries gives its stored counters (onHand, reserved, version);
 * - `reservedNonNegative`: `reserved >= 0`;
 * - `reservedWithinOnHand`: `reserved <= onHand + backorderMax`;
 * - `available`: the level reads `available = onHand - reserved + backorderMax`, never negative;
 * - `holdsSum`: the live holds of the SKU sum to its `reserved`;
 * - `holdEntries`: each reservation holds what its entries say it still holds (its reserve
 *   entry, less its commit, release and expire entries), and nothing else;
 * - `holdRecord`: each live hold belongs to a reservation that is held (or expired, not yet
 *   swept), whose lines name the SKU with that quantity and whose record lists the hold;
 * - `appliedOnce`: at most one entry per request id, kind and SKU (a request applies once);
 * - `buyerTotals`: each buyer's stored total of the SKU equals the fold of the SKU's entries
 *   that carry that buyer (`reservedDelta - onHandDelta` summed).
 */
export type Invariant =
  | 'fold' | 'reservedNonNegative' | 'reservedWithinOnHand' | 'available' | 'holdsSum' | 'holdEntries' | 'holdRecord' | 'appliedOnce'
  | 'buyerTotals';

/** One broken invariant of one SKU, with both sides of the comparison. */
export interface Drift {
  sku: string;
  invariant: Invariant;
  /** What the invariant requires, from the other side of the comparison. */
  expected: JsonValue;
  /** What the store holds. */
  actual: JsonValue;
  /** The same, in one line for people. */
  message: string;
  /** The SKU's stored counters and the counters its entries fold to, for context. */
  stored: Counters;
  folded: Counters;
}

export interface VerifyReport {
  /** True when no invariant is broken anywhere. */
  ok: boolean;
  skusChecked: number;
  /** One item per broken invariant per SKU. */
  drift: Drift[];
}
