import { byCodeUnits } from './order.js';
import type { Applied, Counters, Entry, EntryKind, FeedEntry, JsonObject, Level, Line, OperationKind, Rejection, Reservation, ReservationState, ReserveApplied, StockPolicy } from './types.js';

/**
 * Fields every command carries. Commands reach a store already validated and normalized:
 * a store never sees bad input and never re-validates it.
 */
export interface CommandBase {
  requestId: string;
  /**
   * Canonical fingerprint of the normalized payload (kind, lines, quantities, meta). Two
   * commands under one request id are the same request exactly when fingerprints are equal.
   */
  fingerprint: string;
  /** The ledger clock's time for this attempt, in ms. */
  at: number;
  meta: JsonObject | null;
}

export interface RestockCommand extends CommandBase {
  kind: 'restock';
  /** Duplicates merged, sorted by SKU (JavaScript string order); 1 or more. */
  lines: Line[];
}

/** An `anyOf` line as a store receives it: alternatives distinct, `split` and `prefer` filled in. */
export interface Alternatives {
  anyOf: string[];
  qty: number;
  split: boolean;
  prefer: 'order' | 'mostAvailable';
}

/** Lines of a deduct or reserve as given: one SKU, or alternatives. */
export type GivenLine = Line | Alternatives;

export interface DeductCommand extends CommandBase {
  kind: 'deduct';
  /**
   * The one-SKU lines, duplicates merged, sorted by SKU (JavaScript string order); 1 or more
   * unless `given` has `anyOf` lines.
   */
  lines: Line[];
  /** Null unless a line is an `anyOf` line: then every line as given, in order (allocations follow it). */
  given: GivenLine[] | null;
  buyer: string | null;
}

/** One SKU's count as a store receives it: `expectedVersion` null when not given. */
export interface Count {
  sku: string;
  onHand: number;
  expectedVersion: number | null;
}

export interface AdjustCommand extends CommandBase {
  kind: 'adjust';
  /** Each SKU once, sorted by SKU (JavaScript string order); 1 or more. */
  lines: Count[];
}

export interface ReverseCommand extends CommandBase {
  kind: 'reverse';
  of: string;
  /** Duplicates merged, sorted by SKU; null means everything the original took. */
  lines: Line[] | null;
}

export interface ReserveCommand extends CommandBase {
  kind: 'reserve';
  /** The one-SKU lines, duplicates merged, sorted by SKU; 1 or more unless `given` has `anyOf` lines. */
  lines: Line[];
  /** Null unless a line is an `anyOf` line: then every line as given, in order. */
  given: GivenLine[] | null;
  ttlMs: number;
  /** `at + ttlMs`. */
  expiresAt: number;
  buyer: string | null;
}

/** Replaces a held reservation's lines, under the amend's own request id. */
export interface AmendCommand extends CommandBase {
  kind: 'amend';
  reservationId: string;
  /** The one-SKU lines, duplicates merged, sorted by SKU; 1 or more unless `given` has `anyOf` lines. */
  lines: Line[];
  /** Null unless a line is an `anyOf` line: then every line as given, in order. */
  given: GivenLine[] | null;
}

/** Changes a SKU's policy: the fields in `set` take their new value (defaults for those set to null). */
export interface SetPolicyCommand extends CommandBase {
  kind: 'policy';
  sku: string;
  set: Partial<StockPolicy>;
}

/** Closes a request id that was never applied: a tombstone, no entry. */
export interface RevokeCommand extends CommandBase {
  kind: 'revoke';
}

/** Commit and release carry no request id: they are idempotent by the reservation's state. */
export interface CommitCommand {
  kind: 'commit';
  reservationId: string;
  /** Duplicates merged, sorted by SKU; null means all that is held. */
  lines: Line[] | null;
  at: number;
}

export interface ReleaseCommand {
  kind: 'release';
  reservationId: string;
  at: number;
}

/**
 * Moves a held reservation's expiry to `expiresAt` (`at + ttlMs`): a heartbeat. No request id:
 * running it again only moves the expiry again.
 */
export interface ExtendCommand {
  kind: 'extend';
  reservationId: string;
  ttlMs: number;
  expiresAt: number;
  at: number;
}

/** Expire up to `limit` due holds anywhere in the ledger. */
export interface SweepCommand {
  kind: 'sweep';
  limit: number;
  at: number;
}

/** A normalized operation that carries its own request id and fingerprint. */
export type RequestCommand = RestockCommand | DeductCommand | AdjustCommand | ReverseCommand | ReserveCommand | RevokeCommand | SetPolicyCommand | AmendCommand;

/**
 * Every SKU a deduct, reserve or amend may name (its lines' and all their alternatives), distinct,
 * sorted: what a store locks or reads before the step decides (an amend also touches the SKUs
 * its reservation holds, known once it is read).
 *
 * @example
 * ```ts
 * for (const sku of namedSkus(command)) lock(sku);
 * ```
 */
export function namedSkus(command: DeductCommand | ReserveCommand | AmendCommand): string[] {
  if (command.given === null) return command.lines.map((l) => l.sku);
  const skus = new Set<string>();
  for (const line of command.given) for (const sku of 'sku' in line ? [line.sku] : line.anyOf) skus.add(sku);
  return [...skus].sort(byCodeUnits);
}

/** A normalized operation, as a store receives it. */
export type Command = RequestCommand | CommitCommand | ReleaseCommand | ExtendCommand | SweepCommand;

/** The request id is already recorded with another fingerprint. The ledger throws for it. */
export interface ConflictOutcome {
  ok: false;
  code: 'IDEMPOTENCY_CONFLICT';
  requestId: string;
  storedKind: OperationKind;
}

/** What a sweep applied. */
export interface SweepOutcome {
  ok: true;
  replayed: false;
  entries: Entry[];
  levels: Level[];
  expired: number;
  more: boolean;
}

/** What `StockStore.execute` returns. */
export type StoreOutcome = Applied | ReserveApplied | Rejection | ConflictOutcome | SweepOutcome;

/**
 * A reservation as stored. `state` is the stored state: a `held` one past `expiresAt` is
 * expired all the same; `expired` is stored once any of its holds was expired, so a clock
 * moved back cannot revive it.
 */
export interface StoredReservation extends Reservation {
  /** SKUs still held: not yet expired, committed or released. */
  holds: string[];
  /** The commit's or release's outcome, for replays. */
  outcome: Applied | null;
}

/** A stored request: its id, kind, time and original outcome (with `replayed: false`). */
export interface StoredRequest {
  requestId: string;
  kind: OperationKind;
  fingerprint: string;
  at: number;
  outcome: Applied;
}

/** A live hold of one SKU as stored, next to what its reservation record says of it. */
export interface HoldCheck {
  reservationId: string;
  /** Units the hold (the store's hold index) keeps reserved. */
  qty: number;
  expiresAt: number;
  /** The reservation record, or null when there is none. */
  record: {
    state: ReservationState;
    expiresAt: number;
    /** Units of this SKU in the record's lines; null when its lines do not name the SKU. */
    lineQty: number | null;
    /** Whether the record's list of live holds names this SKU. */
    listed: boolean;
  } | null;
}

/**
 * One SKU, read atomically: its stored counters, its live holds, and what its entries fold to.
 * The core compares them ({@link verifyItem} in `stock-ledger/store`).
 */
export interface VerifyItem {
  sku: string;
  stored: Counters;
  folded: Counters;
  /** The SKU's live holds as stored (not yet committed, released or expired). */
  holds: HoldCheck[];
  /**
   * Per reservation, the units of this SKU its entries still hold: the `reservedDelta`s of its
   * reserve, commit, release and expire entries on this SKU summed; only non-zero sums.
   */
  foldedHolds: Array<{ reservationId: string; qty: number }>;
  /**
   * Entries of this SKU that share a request id and kind with another (each request applies at
   * most once, so there is at most one per request id, kind and SKU): one item per pair that
   * appears more than once, with how often; empty when sound.
   */
  repeated: Array<{ requestId: string; kind: EntryKind; count: number }>;
  /** Per buyer of this SKU: the total the store keeps, and the fold of the SKU's entries carrying that buyer; only pairs where either is not 0. */
  buyers: Array<{ buyer: string; stored: number; folded: number }>;
}

/** One atomic chunk of a verification walk. */
export interface VerifyChunk {
  items: VerifyItem[];
  /** Opaque cursor for the next chunk; null when the walk is complete. */
  cursor: string | null;
}

/** Where a page of holds starts: after this hold (in expiry, then reservation id, order). */
export interface HoldCursor {
  expiresAt: number;
  reservationId: string;
}

/** A live hold as a store lists it. */
export interface StoredHold {
  reservationId: string;
  qty: number;
  expiresAt: number;
  meta?: JsonObject;
  buyer?: string;
}

/**
 * One atomic step of compaction, with cutoff `before` (ms). A store walks its entries in `seq`
 * order from the compacted part on, at most `limit` of them, and stops at the first entry that
 * must stay. An entry may go when `at < before` and its reservation (`reservationId`, else the
 * `requestId` of a reserve, commit, release or expire entry), if still recorded, is settled (not
 * held, no live hold). Each entry that goes is folded into its SKU's checkpoint (counters,
 * per-reservation holds, per-buyer totals: what `verifyChunk` adds to the fold of the entries
 * kept) and deleted; with it goes the request record of its `requestId` when that is a request
 * of its own (restock, deduct, adjust, reverse, policy, amend: with its reversal tally), and for
 * a commit, release or expire entry of a settled reservation, the reservation record, the
 * reserve's request record and its reversal tally. Separately, at most `limit` closed ids
 * (revoke records) with `at < before` go. All in one atomic step.
 */
export interface CompactQuery {
  before: number;
  limit: number;
  now: number;
}

/** What one compaction step removed. */
export interface CompactStep {
  requests: number;
  reservations: number;
  entries: number;
  /** The highest `seq` removed so far (this step or earlier): the feed starts after it. */
  compactedThrough: number;
  /** True when a limit cut the step short: call again. */
  more: boolean;
}

/** A page of a store's SKUs with their levels as of `now`. */
export interface LevelsQueryOfStore {
  /** The last SKU of the previous page, or null for the first. */
  after: string | null;
  /** SKUs looked at (every SKU with a level), before the filter. */
  limit: number;
  /** Keep only levels with `available <= availableAtMost` (as of `now`); null keeps all. */
  availableAtMost: number | null;
  now: number;
}

export interface StoredLevelsPage {
  levels: Level[];
  /** The last SKU looked at when `limit` SKUs were looked at (there may be more); else null. */
  next: string | null;
}

/** Capabilities a store declares (differences between stores are flags, not `instanceof`). */
export interface StoreCapabilities {
  /** It can run an operation inside a transaction the app opened and will commit itself. */
  joinTransaction: boolean;
}

/** What one call hands a store besides the command. */
export interface ExecuteOptions {
  /** The app's open transaction to run inside (as the store documents it). */
  transaction?: unknown;
}

/**
 * The seam every store plugs into. The core validates input, computes fingerprints, reads the
 * clock and retries; a store does the rest, and must:
 *
 * - run each `execute` as **one atomic step**, linearizable per ledger: look up the request id,
 *   check every line, then write the entries, the levels and the request record, or nothing;
 * - treat a request id already recorded with the same fingerprint as a replay: return the stored
 *   outcome with `replayed: true` and change nothing; with another fingerprint, return a
 *   {@link ConflictOutcome} and change nothing;
 * - record nothing for a rejection (no request record, no entry);
 * - assign entry `seq` from 1, growing by one per entry, in SKU order within an operation (a
 *   store may number after commit, and report `null` for entries of a joined transaction);
 * - throw `StoreUnavailableError` when the outcome is unknown or the engine is unreachable
 *   (the core retries with the same command), and nothing else for operating errors.
 *
 * Stores that run JavaScript inside their atomic step can reuse `decide()` from the core.
 * `stock-ledger/testing` proves a store against this contract.
 *
 * @example
 * ```ts
 * import { StockLedger } from 'stock-ledger';
 * class MyStore implements StockStore { ... }
 * const ledger = new StockLedger({ store: new MyStore() });
 * ```
 */
export interface StockStore {
  /** What the ledger may ask of this store beyond the contract; absent means none of it. */
  readonly capabilities?: StoreCapabilities;
  /**
   * Applies one command atomically and idempotently; with `options.transaction` (only if
   * `capabilities.joinTransaction`), inside that open transaction of the app's, protected by a
   * savepoint, never beginning, committing or rolling it back.
   */
  execute(command: Command, options?: ExecuteOptions): Promise<StoreOutcome>;
  /**
   * Levels of these SKUs (distinct, validated), in the same order, as of time `now`: holds due
   * at `now` count as expired (their reserved units freed, one version each), whether or not
   * their expiry has been written yet.
   */
  stocks(skus: readonly string[], now: number): Promise<Level[]>;
  /** Entries with `seq > after`, optionally of one SKU, ascending, at most `limit`. */
  entries(query: { after: number; sku: string | null; limit: number }): Promise<FeedEntry[]>;
  /** The stored request, or null. */
  request(requestId: string): Promise<StoredRequest | null>;
  /** The stored reservation, or null (the core derives `expired` from `expiresAt`). */
  reservation(reservationId: string): Promise<StoredReservation | null>;
  /**
   * Live holds of `sku` at time `now` (`expiresAt > now`), ordered by expiry then reservation id
   * (code points), after `after`, at most `limit`. Optional: a store without it cannot answer
   * `ledger.holds()`.
   */
  holds?(query: { sku: string; after: HoldCursor | null; limit: number; now: number }): Promise<StoredHold[]>;
  /**
   * What `buyer` holds plus has bought of each SKU (distinct, validated), in the same order, as
   * of time `now`: holds of that buyer due by then count as expired. Optional: a store without
   * it cannot answer `ledger.buyerTotals()`.
   */
  buyerTotals?(query: { buyer: string; skus: readonly string[]; now: number }): Promise<number[]>;
  /**
   * One chunk of at most `limit` SKUs (every SKU with a level or an entry), each compared
   * atomically; pass the returned cursor back for the next chunk, null for the first.
   */
  verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk>;
  /**
   * One atomic compaction step (see {@link CompactQuery}). Optional: a store without it cannot
   * `compact()`. A store with it implements `compactedThrough` too, and `verifyChunk` adds each
   * SKU's checkpoint to what its kept entries fold to (a SKU with only a checkpoint is still walked).
   */
  compact?(query: CompactQuery): Promise<CompactStep>;
  /** The highest `seq` compaction removed (0 when none): `entries()` below it would have a gap. */
  compactedThrough?(): Promise<number>;
  /**
   * SKUs after `after` in the store's order (an order of its own: the ledger passes back the
   * `next` it got), with their levels as of `now` (due holds count as expired). Optional.
   */
  levels?(query: LevelsQueryOfStore): Promise<StoredLevelsPage>;
  /** Releases what the store opened; never what it was handed. Idempotent. */
  close(): Promise<void>;
}
