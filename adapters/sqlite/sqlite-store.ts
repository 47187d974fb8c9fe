import { createRequire } from 'node:module';
import { InvalidInputError, InvariantViolationError, StoreUnavailableError, isStockLedgerError } from '../../src/index.js';
import { byCodeUnits, compareCodePoints, decide, inAppTransaction, levelAsOf, materialize, policyOf, withCheckpoint, withPolicy, zeroCounters } from '../../src/store-kit.js';
import type {
  Applied, Counters, Entry, EntryKind, FeedEntry, JsonObject, Level, Line, OperationKind, ReservationState, StockPolicy, StockStore,
} from '../../src/index.js';
import type {
  Command, CompactQuery, CompactStep, ExecuteOptions, HoldCheck, HoldCursor, LevelsQueryOfStore, StateView, StoredHold, StoredLevelsPage, StoreCapabilities, StoreOutcome,
  StoredRequest, StoredReservation, VerifyChunk, VerifyItem, Write,
} from '../../src/store-kit.js';
import { BatchQueue, batchWriter, checkGroupCommit, type GroupCommitOptions, type Pending } from './sqlite-batch.js';
import type { SqliteDatabase, SqliteDatabaseConstructor, SqliteStatement } from './sqlite-database.js';
import { SqliteRetention } from './sqlite-retention.js';
import { migrate, tablesOf, type SqliteTables } from './sqlite-schema.js';
import { WriterThread } from './sqlite-thread.js';

/** How hard each commit is pushed to disk. */
export type SqliteDurability = 'full' | 'normal';

interface CommonOptions {
  /**
   * `'full'` (default): `synchronous=FULL`, a commit survives power loss. `'normal'`:
   * `synchronous=NORMAL`, faster; in WAL mode the last commits may be lost on power loss
   * (never on a process crash), and the file is never corrupted.
   */
  durability?: SqliteDurability;
  /** How long to wait for another connection's lock before `STORE_UNAVAILABLE`. Default 5000. */
  busyTimeoutMs?: number;
  /**
   * Group commit, on by default: operations issued while a batch is pending share one
   * transaction (one fsync), each in its own savepoint, each with its own outcome; every
   * promise resolves only after its batch is committed. More throughput under concurrency; a
   * lone caller waits one event-loop turn. `false`: one transaction per operation, written
   * at once. See {@link GroupCommitOptions} for the bounds.
   */
  groupCommit?: boolean | GroupCommitOptions;
  /**
   * The prefix of the store's table names (letters, digits, `_`): `stock_ledger_` by default,
   * so the tables are `stock_ledger_levels`, `stock_ledger_entries`... and never collide with
   * an app's own (`stock_levels`, say). Two ledgers can share one file under two prefixes.
   */
  tablePrefix?: string;
  /**
   * Off by default. `true` (needs `path` and group commit): operations are written by a worker
   * thread with its own connection to the file, so the app's event loop keeps running while a
   * batch commits and fsyncs; operations that arrive meanwhile gather into the next batch. A
   * promise still resolves only after its batch's COMMIT returned at the configured
   * `durability`. Reads, compaction and joined transactions (`{ transaction: store.database }`)
   * stay on the main thread's connection, as without it.
   */
  writerThread?: boolean;
}

/** Options of {@link SqliteStore}: a file to open, or a database the app owns. */
export type SqliteStoreOptions =
  | (CommonOptions & { path: string; database?: never })
  | (CommonOptions & {
      /**
       * An open better-sqlite3 database the app owns: never closed by the store. An operation
       * runs inside the app's own transaction on it only when the call says so
       * (`ledger.deduct(input, { transaction: database })` while the app's `BEGIN` is open).
       * Any other operation waits until no transaction of the app's is open on the connection
       * (at most `busyTimeoutMs`, then `STORE_UNAVAILABLE`, nothing written), so an app's
       * rollback can never undo an operation it did not ask to join.
       */
      database: SqliteDatabase;
      path?: never;
    });

interface Statements {
  level: SqliteStatement;
  request: SqliteStatement;
  reversed: SqliteStatement;
  insertEntry: SqliteStatement;
  upsertLevel: SqliteStatement;
  insertRequest: SqliteStatement;
  upsertReversal: SqliteStatement;
  entries: SqliteStatement;
  entriesOfSku: SqliteStatement;
  chunkSkus: SqliteStatement;
  foldRange: SqliteStatement;
  foldFrom: SqliteStatement;
  holdsRange: SqliteStatement;
  holdsFrom: SqliteStatement;
  foldedHoldsRange: SqliteStatement;
  foldedHoldsFrom: SqliteStatement;
  repeatedRange: SqliteStatement;
  repeatedFrom: SqliteStatement;
  reservation: SqliteStatement;
  holdsOf: SqliteStatement;
  dueHolds: SqliteStatement;
  dueAnywhere: SqliteStatement;
  dueTotals: SqliteStatement;
  insertReservation: SqliteStatement;
  insertHold: SqliteStatement;
  deleteHold: SqliteStatement;
  expireReservation: SqliteStatement;
  settleReservation: SqliteStatement;
  extendReservation: SqliteStatement;
  extendHolds: SqliteStatement;
  amendReservation: SqliteStatement;
  upsertHold: SqliteStatement;
  liveHolds: SqliteStatement;
  buyerTaken: SqliteStatement;
  upsertBuyerTotal: SqliteStatement;
  deleteBuyerTotal: SqliteStatement;
  dueOfBuyer: SqliteStatement;
  buyersFoldedRange: SqliteStatement;
  buyersFoldedFrom: SqliteStatement;
  buyersStoredRange: SqliteStatement;
  buyersStoredFrom: SqliteStatement;
  levelsPage: SqliteStatement;
}

interface ReservationRow {
  id: string; state: ReservationState; lines: string; expires_at: number; created_at: number; committed: string | null;
  meta: string | null; outcome: string | null; buyer: string | null;
}

interface EntryRow {
  seq: number; request_id: string; kind: EntryKind; sku: string; on_hand_delta: number; reserved_delta: number;
  on_hand_after: number; reserved_after: number; at: number; meta: string | null; policy: string | null; buyer: string | null;
  reservation_id: string | null;
}

interface LevelRow {
  sku: string; on_hand: number; reserved: number; version: number; backorder_max: number; low_stock_at: number | null; buyer_max: number | null;
}

/** Per SKU and buyer (nested, so no two pairs share a key): the stored total and the fold of the entries. */
type BuyerChecks = Map<string, Map<string, { stored: number; folded: number }>>;

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * The door the writer thread runs batches through (set by {@link SqliteStore}'s static block):
 * per command, its outcome or the error it failed with, after COMMIT returned.
 */
export let batchRunnerOf: (store: SqliteStore) => BatchRun;

/** Writes a batch of commands synchronously: per command, its outcome or the error it failed with. */
type BatchRun = (commands: readonly Command[]) => Array<{ ok: true; value: StoreOutcome } | { ok: false; error: unknown }>;

/**
 * Batches out to the writer thread at once: one commits while the next ones wait there, and
 * the thread writes every batch that waited in one transaction (one fsync).
 */
const WRITER_THREAD_BATCHES_OUT = 4;

/** How often an operation looks again whether the app's transaction on the shared connection has ended. */
const APP_TRANSACTION_POLL_MS = 2;

/**
 * A ledger in one SQLite file (better-sqlite3 12). Operations run in `BEGIN IMMEDIATE`
 * transactions (with group commit, several operations to a transaction, each with its own
 * outcome), so several processes can share the file safely. WAL mode; `synchronous` set
 * explicitly on every connection.
 *
 * @example
 * ```ts
 * import { StockLedger } from 'stock-ledger';
 * import { SqliteStore } from 'stock-ledger/sqlite';
 * const ledger = new StockLedger({ store: new SqliteStore({ path: 'stock.db' }) });
 * ```
 */
export class SqliteStore implements StockStore {
  /** It joins the app's transaction on its connection when a call hands it in. */
  readonly capabilities: StoreCapabilities = Object.freeze({ joinTransaction: true });
  readonly #db: SqliteDatabase;
  readonly #busyTimeoutMs: number;
  readonly #owned: boolean;
  readonly #sql: Statements;
  readonly #view: StateView;
  readonly #execute: (command: Command) => StoreOutcome;
  readonly #inSavepoint: (command: Command) => StoreOutcome;
  /** The group-commit queue; null when every operation is its own transaction. */
  readonly #batches: BatchQueue<Command, StoreOutcome> | null;
  readonly #verifyChunk: (cursor: string | null, limit: number) => VerifyChunk;
  /** Runs reads of several statements in one snapshot, even while other processes write. */
  readonly #snapshot: (read: () => unknown) => unknown;
  readonly #retention: SqliteRetention;
  /** One compaction step: its own `BEGIN IMMEDIATE` transaction, between batches of operations. */
  readonly #compact: (query: CompactQuery) => CompactStep;
  /** The thread that writes the batches (`writerThread: true`); null when they are written here. */
  readonly #writer: WriterThread | null;

  static {
    // The writer thread runs batches on a store of its own, through this door only.
    batchRunnerOf = (store) => store.#batchRunner();
  }

  constructor(options: SqliteStoreOptions) {
    const busyTimeoutMs = checkBusyTimeout(options.busyTimeoutMs);
    const durability = checkDurability(options.durability);
    const groupCommit = checkGroupCommit(options.groupCommit);
    const writerThread = checkWriterThread(options.writerThread, options.path, groupCommit !== null);
    const tables = tablesOf(options.tablePrefix);
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#owned = options.database === undefined;
    this.#db = options.database ?? openFile(options.path, busyTimeoutMs);
    try {
      configure(this.#db, { busyTimeoutMs, durability, owned: this.#owned });
      migrate(this.#db, tables);
      this.#sql = prepare(this.#db, tables);
      this.#retention = new SqliteRetention(this.#db, tables);
    } catch (error) {
      if (this.#owned) this.#db.close();
      throw openFailure(error);
    }
    this.#view = {
      counters: (sku) => this.#counters(sku),
      request: (id) => this.#request(id),
      reversed: (of, sku) => (this.#sql.reversed.get(of, sku) as { qty: number } | undefined)?.qty ?? 0,
      reservation: (id) => this.#reservation(id),
      dueHolds: (sku, now, limit) => (this.#sql.dueHolds.all(sku, now, limit) as Array<{ reservation_id: string }>).map((r) => r.reservation_id),
      dueAnywhere: (now, limit) =>
        (this.#sql.dueAnywhere.all(now, limit) as Array<{ reservation_id: string; sku: string }>).map((r) => ({ reservationId: r.reservation_id, sku: r.sku })),
      buyerTaken: (sku, buyer) => this.#buyerTaken(sku, buyer),
    };
    this.#execute = this.#db.transaction((command: Command) => this.#decideAndWrite(command)).immediate;
    this.#inSavepoint = this.#db.transaction((command: Command) => this.#decideAndWrite(command));
    this.#writer = writerThread
      ? new WriterThread({ path: options.path as string, durability, busyTimeoutMs, tablePrefix: options.tablePrefix, batchOperationsMax: groupCommit?.batchOperationsMax ?? 1 })
      : null;
    // An app's transaction open on this connection holds the batches back even with the writer
    // thread (whose connection it would otherwise block, or not): the same behaviour either way.
    const gate = {
      closed: () => this.#db.inTransaction,
      waitMsMax: busyTimeoutMs,
      timedOut: () => appTransactionOpen(busyTimeoutMs),
    };
    const writer = this.#writer;
    this.#batches = groupCommit === null
      ? null
      : writer === null
        ? new BatchQueue(groupCommit, batchWriter(this.#db, (command: Command) => this.#decideAndWrite(command), unavailable), gate)
        : new BatchQueue(groupCommit, (batch: readonly Pending<Command, StoreOutcome>[]) => writer.write(batch), gate, WRITER_THREAD_BATCHES_OUT);
    this.#verifyChunk = this.#db.transaction((cursor: string | null, limit: number) => this.#chunk(cursor, limit)).deferred;
    this.#snapshot = this.#db.transaction((read: () => unknown) => read()).deferred;
    const oldest = (after: number, limit: number): Entry[] => (this.#sql.entries.all(after, limit) as EntryRow[]).map(entryOf);
    this.#compact = this.#db.transaction((query: CompactQuery) => this.#retention.step(query, oldest)).immediate;
  }

  /** The database in use (the one handed in, or the one opened). */
  get database(): SqliteDatabase {
    return this.#db;
  }

  async execute(command: Command, options?: ExecuteOptions): Promise<StoreOutcome> {
    if (options?.transaction !== undefined) return this.#executeJoined(command, options.transaction);
    if (this.#batches !== null) return this.#batches.push(command);
    await this.#outsideAppTransaction();
    // Same turn as the check: nothing can open a transaction in between.
    return this.#guard(() => this.#execute(command));
  }

  /** Inside the app's open transaction, as a savepoint: a rejection or a throw leaves it usable. */
  #executeJoined(command: Command, transaction: unknown): StoreOutcome {
    if (transaction !== this.#db) {
      throw new InvalidInputError('options.transaction', "must be this store's database, with the app's transaction open on it");
    }
    if (!this.#db.inTransaction) throw new InvalidInputError('options.transaction', 'no transaction is open on the database: BEGIN first');
    // better-sqlite3 runs a transaction function called inside an open transaction as
    // SAVEPOINT ... RELEASE (ROLLBACK TO on a throw): it never begins or ends the app's.
    try {
      return this.#guard(() => this.#inSavepoint(command));
    } catch (error) {
      // Busy inside the app's transaction (a deferred one that cannot take the write lock, or
      // whose snapshot went stale) is only cured by rolling back and running the whole again.
      throw inAppTransaction(error);
    }
  }

  /**
   * Waits until no transaction of the app's is open on the connection (a store-owned
   * transaction never outlives one synchronous call), at most the busy timeout.
   */
  async #outsideAppTransaction(): Promise<void> {
    const deadline = Date.now() + this.#busyTimeoutMs;
    while (this.#db.open && this.#db.inTransaction) {
      if (Date.now() >= deadline) throw appTransactionOpen(this.#busyTimeoutMs);
      await new Promise((resolve) => setTimeout(resolve, APP_TRANSACTION_POLL_MS));
    }
  }

  async stocks(skus: readonly string[], now: number): Promise<Level[]> {
    return this.#guard(() => this.#snapshot(() => this.#stocks(skus, now)) as Level[]);
  }

  async entries(query: { after: number; sku: string | null; limit: number }): Promise<FeedEntry[]> {
    return this.#guard(() => {
      const rows = query.sku === null
        ? this.#sql.entries.all(query.after, query.limit)
        : this.#sql.entriesOfSku.all(query.sku, query.after, query.limit);
      return (rows as EntryRow[]).map(entryOf);
    });
  }

  async request(requestId: string): Promise<StoredRequest | null> {
    return this.#guard(() => this.#request(requestId));
  }

  async holds(query: { sku: string; after: HoldCursor | null; limit: number; now: number }): Promise<StoredHold[]> {
    const { sku, after, limit, now } = query;
    const rows = this.#guard(() => this.#sql.liveHolds.all(sku, now, after?.expiresAt ?? -1, after?.expiresAt ?? -1, after?.reservationId ?? '', limit)) as
      Array<{ reservation_id: string; qty: number; expires_at: number; meta: string | null; buyer: string | null }>;
    return rows.map((row) => {
      const hold: StoredHold = { reservationId: row.reservation_id, qty: row.qty, expiresAt: row.expires_at };
      if (row.meta !== null) hold.meta = JSON.parse(row.meta) as JsonObject;
      if (row.buyer !== null) hold.buyer = row.buyer;
      return hold;
    });
  }

  async buyerTotals(query: { buyer: string; skus: readonly string[]; now: number }): Promise<number[]> {
    const { buyer, skus, now } = query;
    // One snapshot: a total and the due holds it still counts are read together.
    return this.#guard(() => this.#snapshot(() => skus.map((sku) => {
      // Due holds not yet expired in storage still count in the stored total; reads count them as expired.
      const due = this.#sql.dueOfBuyer.get(sku, now, buyer) as { qty: number };
      return this.#buyerTaken(sku, buyer) - due.qty;
    })) as number[]);
  }

  async reservation(reservationId: string): Promise<StoredReservation | null> {
    return this.#guard(() => this.#snapshot(() => this.#reservation(reservationId)) as StoredReservation | null);
  }

  async verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk> {
    return this.#guard(() => this.#verifyChunk(query.cursor, query.limit));
  }

  /**
   * One compaction step (see `CompactQuery`), in a transaction of its own. Batches of operations
   * are written in a single synchronous call each, so a step never lands inside one; it waits,
   * as an operation does, until no transaction of the app's is open on a shared connection.
   */
  async compact(query: CompactQuery): Promise<CompactStep> {
    await this.#outsideAppTransaction();
    // Same turn as the check: nothing can open a transaction in between.
    return this.#guard(() => this.#compact(query));
  }

  async compactedThrough(): Promise<number> {
    return this.#guard(() => this.#retention.horizon());
  }

  /**
   * A page of SKUs in byte order (code points), each level as of `now` in one snapshot. Only
   * SKUs whose stored available is within the bound can qualify (due holds only raise it): the
   * others skip the due-holds read.
   */
  async levels(query: LevelsQueryOfStore): Promise<StoredLevelsPage> {
    return this.#guard(() => this.#snapshot(() => this.#levelsPage(query)) as StoredLevelsPage);
  }

  async close(): Promise<void> {
    // Operations already accepted are written now, not dropped (on a closed database they
    // reject with STORE_UNAVAILABLE): no promise is left hanging.
    if (this.#writer === null) this.#batches?.drain();
    else {
      await this.#batches?.drainAll();
      await this.#writer.close();
    }
    if (this.#owned && this.#db.open) this.#db.close();
  }

  /**
   * Writes a batch of commands here, synchronously, as group commit does (the writer thread's
   * side): per command, its outcome or its error (a failed BEGIN or COMMIT: the same error for each).
   */
  #batchRunner(): BatchRun {
    const write = batchWriter(this.#db, (command: Command) => this.#decideAndWrite(command), unavailable);
    return (commands) => {
      const results: Array<{ ok: true; value: StoreOutcome } | { ok: false; error: unknown }> = new Array(commands.length);
      write(commands.map((command, i) => ({
        command,
        resolve: (value: StoreOutcome) => (results[i] = { ok: true, value }),
        reject: (error: unknown) => (results[i] = { ok: false, error }),
      })));
      return results;
    };
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw unavailable(error);
    }
  }

  #counters(sku: string): Counters {
    const row = this.#sql.level.get(sku) as LevelRow | undefined;
    return row === undefined ? zeroCounters() : countersOf(row);
  }

  /** A missing row is 0: rows whose total falls to 0 are deleted. */
  #buyerTaken(sku: string, buyer: string): number {
    return (this.#sql.buyerTaken.get(sku, buyer) as { taken: number } | undefined)?.taken ?? 0;
  }

  /** Levels with the holds due at `now` counted as expired; one read transaction for all SKUs. */
  #stocks(skus: readonly string[], now: number): Level[] {
    return skus.map((sku) => {
      const c = this.#counters(sku);
      const due = this.#sql.dueTotals.get(sku, now) as { qty: number; count: number };
      return levelAsOf(sku, c, due);
    });
  }

  #levelsPage({ after, limit, availableAtMost, now }: LevelsQueryOfStore): StoredLevelsPage {
    // SKUs are never empty, so '' is below every SKU.
    const rows = this.#sql.levelsPage.all({ after: after ?? '', limit, most: availableAtMost }) as Array<LevelRow & { candidate: number }>;
    const levels = rows.filter((row) => row.candidate === 1).map((row) => {
      const due = this.#sql.dueTotals.get(row.sku, now) as { qty: number; count: number };
      return levelAsOf(row.sku, countersOf(row), due);
    });
    const last = rows[rows.length - 1];
    return {
      levels: availableAtMost === null ? levels : levels.filter((level) => level.available <= availableAtMost),
      next: rows.length < limit || last === undefined ? null : last.sku,
    };
  }

  #reservation(id: string): StoredReservation | null {
    const row = this.#sql.reservation.get(id) as ReservationRow | undefined;
    if (row === undefined) return null;
    const holds = (this.#sql.holdsOf.all(id) as Array<{ sku: string }>).map((r) => r.sku);
    const stored: StoredReservation = {
      id, state: row.state, lines: JSON.parse(row.lines) as Line[], expiresAt: row.expires_at, createdAt: row.created_at,
      committed: row.committed === null ? null : (JSON.parse(row.committed) as Line[]), holds,
      outcome: row.outcome === null ? null : outcomeOf(row.outcome),
    };
    if (row.meta !== null) stored.meta = JSON.parse(row.meta) as JsonObject;
    if (row.buyer !== null) stored.buyer = row.buyer;
    return stored;
  }

  #request(requestId: string): StoredRequest | null {
    const row = this.#sql.request.get(requestId) as { kind: OperationKind; fingerprint: string; at: number; outcome: string } | undefined;
    if (row === undefined) return null;
    return { requestId, kind: row.kind, fingerprint: row.fingerprint, at: row.at, outcome: outcomeOf(row.outcome) };
  }

  #decideAndWrite(command: Command): StoreOutcome {
    const decision = decide(command, this.#view);
    const written = decision.write === null ? null : this.#write(decision.write);
    return decision.outcome ?? (written as StoreOutcome);
  }

  #write(write: Write): StoreOutcome {
    const { outcome, entries } = materialize(write, 1);
    this.#insertEntries(entries);
    const counters = new Map(write.steps.flatMap((step) => step.changes.map((change) => [change.sku, change.after] as const)));
    for (const [sku, c] of counters) {
      // Every level write carries the policy, so a default one (absent from the counters) resets the columns.
      const policy = policyOf(c);
      this.#sql.upsertLevel.run(sku, c.onHand, c.reserved, c.version, policy.backorderMax, policy.lowStockAt, policy.buyerMax);
    }
    // Totals come absolute, decided from what this same transaction read: set, never added to.
    // A 0 deletes the row (the CHECK refuses 0), so the table lists only buyers who have something.
    for (const { sku, buyer, taken } of write.buyerTotals) {
      if (taken === 0) this.#sql.deleteBuyerTotal.run(sku, buyer);
      else this.#sql.upsertBuyerTotal.run(sku, buyer, taken);
    }
    const { request, reversal, reservation, settled } = write;
    if (request !== null) this.#sql.insertRequest.run(request.requestId, request.kind, request.fingerprint, write.at, JSON.stringify(outcome));
    if (reversal !== null) for (const line of reversal.lines) this.#sql.upsertReversal.run(reversal.of, line.sku, line.qty);
    if (reservation !== null) this.#insertReservation(reservation);
    for (const hold of write.holdsEnded) this.#sql.deleteHold.run(hold.reservationId, hold.sku);
    for (const id of write.expired) this.#sql.expireReservation.run(id);
    if (settled !== null) {
      const committed = settled.committed === null ? null : JSON.stringify(settled.committed);
      this.#sql.settleReservation.run(settled.state, committed, JSON.stringify(outcome), settled.reservationId);
    }
    if (write.amended !== null) this.#amend(write.amended);
    if (write.extended !== null) {
      // The request record keeps the reserve's own outcome, so its replay still shows the first expiry.
      this.#sql.extendReservation.run(write.extended.expiresAt, write.extended.id);
      this.#sql.extendHolds.run(write.extended.expiresAt, write.extended.id);
    }
    return outcome;
  }

  /**
   * Appends the entries, numbered max + 1 (above the compacted horizon when no entry is left:
   * consecutive, as nothing else writes inside this `BEGIN IMMEDIATE` transaction), and puts
   * each number on its entry.
   */
  #insertEntries(entries: Entry[]): void {
    let firstSeq = 0;
    entries.forEach((e, i) => {
      const meta = e.meta === undefined ? null : JSON.stringify(e.meta);
      const policy = e.policy === undefined ? null : JSON.stringify(e.policy);
      const { lastInsertRowid } = this.#sql.insertEntry.run(
        e.requestId, e.kind, e.sku, e.onHandDelta, e.reservedDelta, e.onHandAfter, e.reservedAfter, e.at, meta, policy, e.buyer ?? null,
        e.reservationId ?? null,
      );
      if (i === 0) firstSeq = Number(lastInsertRowid);
      e.seq = firstSeq + i;
      if (Number(lastInsertRowid) !== e.seq) throw new InvariantViolationError(`entry numbered ${String(lastInsertRowid)}, expected ${e.seq}`);
    });
  }

  /** An amended reservation: its new lines, each held at its quantity (dropped lines' holds ended already). */
  #amend(r: StoredReservation): void {
    this.#sql.amendReservation.run(JSON.stringify(r.lines), r.id);
    for (const line of r.lines) this.#sql.upsertHold.run(r.id, line.sku, line.qty, r.expiresAt);
  }

  #insertReservation(r: StoredReservation): void {
    const meta = r.meta === undefined ? null : JSON.stringify(r.meta);
    this.#sql.insertReservation.run(r.id, r.state, JSON.stringify(r.lines), r.expiresAt, r.createdAt, meta, r.buyer ?? null);
    for (const line of r.lines) this.#sql.insertHold.run(r.id, line.sku, line.qty, r.expiresAt);
  }

  #chunk(cursor: string | null, limit: number): VerifyChunk {
    // SKUs are never empty, so '' is below every SKU: the first chunk needs no other query.
    const after = cursor ?? '';
    const skus = (this.#sql.chunkSkus.all(after, limit) as Array<{ sku: string }>).map((r) => r.sku);
    const complete = skus.length < limit;
    const upper = complete ? null : (skus[skus.length - 1] as string);
    const rows = (upper === null ? this.#sql.foldFrom.all(after) : this.#sql.foldRange.all(after, upper)) as Array<{
      sku: string; on_hand: number; reserved: number; version: number;
    }>;
    const folded = new Map(rows.map((r) => [r.sku, { onHand: r.on_hand, reserved: r.reserved, version: r.version }]));
    const holds = this.#chunkHolds(after, upper);
    const foldedHolds = this.#chunkFoldedHolds(after, upper);
    const repeated = groupBySku((upper === null ? this.#sql.repeatedFrom.all(after) : this.#sql.repeatedRange.all(after, upper)) as Array<{
      sku: string; request_id: string; kind: EntryKind; count: number;
    }>, (r) => ({ requestId: r.request_id, kind: r.kind, count: r.count }));
    const buyers = this.#chunkBuyers(after, upper);
    // What compacted entries folded to: the fold of the kept ones is added to it.
    const checkpoints = this.#retention.checkpoints(after, upper);
    const all = [...new Set([...skus, ...folded.keys(), ...holds.keys(), ...buyers.keys(), ...checkpoints.keys()])].sort(compareCodePoints);
    const items: VerifyItem[] = all.map((sku) => {
      const fold = { folded: folded.get(sku) ?? zeroCounters(), foldedHolds: foldedHolds.get(sku) ?? [], buyers: buyerItems(buyers.get(sku)) };
      return { sku, stored: this.#counters(sku), holds: holds.get(sku) ?? [], repeated: repeated.get(sku) ?? [], ...withCheckpoint(fold, checkpoints.get(sku) ?? null) };
    });
    return { items, cursor: upper };
  }

  /** The live holds of the chunk's SKUs, each with its reservation record, by SKU. */
  #chunkHolds(after: string, upper: string | null): Map<string, HoldCheck[]> {
    const rows = (upper === null ? this.#sql.holdsFrom.all(after) : this.#sql.holdsRange.all(after, upper)) as HoldRow[];
    return groupBySku(rows, (row): HoldCheck => {
      const lineQty = row.lines === null ? null : ((JSON.parse(row.lines) as Line[]).find((l) => l.sku === row.sku)?.qty ?? null);
      // The store's list of a reservation's live holds is this very table: a row is listed.
      const record = row.state === null ? null : { state: row.state, expiresAt: row.record_expires_at as number, lineQty, listed: true };
      return { reservationId: row.reservation_id, qty: row.qty, expiresAt: row.expires_at, record };
    });
  }

  /** Per SKU and reservation, the units the entries still hold (non-zero sums only). */
  #chunkFoldedHolds(after: string, upper: string | null): Map<string, VerifyItem['foldedHolds']> {
    const rows = (upper === null ? this.#sql.foldedHoldsFrom.all(after) : this.#sql.foldedHoldsRange.all(after, upper)) as Array<{
      sku: string; request_id: string; qty: number;
    }>;
    return groupBySku(rows, (row) => ({ reservationId: row.request_id, qty: row.qty }));
  }

  /** Per SKU and buyer of the chunk: the stored total beside the fold of the entries that name the buyer. */
  #chunkBuyers(after: string, upper: string | null): BuyerChecks {
    type Row = { sku: string; buyer: string; taken: number };
    const stored = (upper === null ? this.#sql.buyersStoredFrom.all(after) : this.#sql.buyersStoredRange.all(after, upper)) as Row[];
    const folded = (upper === null ? this.#sql.buyersFoldedFrom.all(after) : this.#sql.buyersFoldedRange.all(after, upper)) as Row[];
    const checks: BuyerChecks = new Map();
    const slot = ({ sku, buyer }: Row): { stored: number; folded: number } => {
      let bySku = checks.get(sku);
      if (bySku === undefined) checks.set(sku, (bySku = new Map()));
      let found = bySku.get(buyer);
      if (found === undefined) bySku.set(buyer, (found = { stored: 0, folded: 0 }));
      return found;
    };
    for (const row of stored) slot(row).stored = row.taken;
    for (const row of folded) slot(row).folded = row.taken;
    return checks;
  }
}

/** A level row as counters; withPolicy drops a default policy: counters (and levels) carry one only when it differs. */
function countersOf(row: Omit<LevelRow, 'sku'>): Counters {
  return withPolicy(
    { onHand: row.on_hand, reserved: row.reserved, version: row.version },
    { backorderMax: row.backorder_max, lowStockAt: row.low_stock_at, buyerMax: row.buyer_max },
  );
}

/** One SKU's buyer checks as a verify item lists them: by buyer, only pairs where either side is not 0. */
function buyerItems(bySku: ReadonlyMap<string, { stored: number; folded: number }> | undefined): VerifyItem['buyers'] {
  if (bySku === undefined) return [];
  return [...bySku].filter(([, b]) => b.stored !== 0 || b.folded !== 0).sort(([a], [b]) => byCodeUnits(a, b))
    .map(([buyer, b]) => ({ buyer, stored: b.stored, folded: b.folded }));
}

/** Rows of several SKUs as lists by SKU. */
function groupBySku<R extends { sku: string }, T>(rows: readonly R[], item: (row: R) => T): Map<string, T[]> {
  const bySku = new Map<string, T[]>();
  for (const row of rows) {
    const list = bySku.get(row.sku);
    if (list === undefined) bySku.set(row.sku, [item(row)]);
    else list.push(item(row));
  }
  return bySku;
}

interface HoldRow {
  sku: string; reservation_id: string; qty: number; expires_at: number;
  state: ReservationState | null; record_expires_at: number | null; lines: string | null;
}

function entryOf(row: EntryRow): FeedEntry {
  const entry: FeedEntry = {
    seq: row.seq, requestId: row.request_id, kind: row.kind, sku: row.sku, onHandDelta: row.on_hand_delta,
    reservedDelta: row.reserved_delta, onHandAfter: row.on_hand_after, reservedAfter: row.reserved_after, at: row.at,
  };
  if (row.meta !== null) entry.meta = JSON.parse(row.meta) as JsonObject;
  if (row.policy !== null) entry.policy = policyFrom(JSON.parse(row.policy) as StoredPolicy);
  if (row.buyer !== null) entry.buyer = row.buyer;
  if (row.reservation_id !== null) entry.reservationId = row.reservation_id;
  return entry;
}

/** A policy as stored: one written before purchase limits (schema 4) has no `buyerMax`. */
type StoredPolicy = Omit<StockPolicy, 'buyerMax'> & { buyerMax?: number | null };

/**
 * A stored policy whole, with its fields in the order the core builds them, whatever the JSON
 * text's order; a `buyerMax` it predates is the default (none), as it was then.
 */
function policyFrom(p: StoredPolicy): StockPolicy {
  return { backorderMax: p.backorderMax, lowStockAt: p.lowStockAt, buyerMax: p.buyerMax ?? null };
}

/**
 * A stored outcome, its policies whole: outcomes written at schema 4 name policies without
 * `buyerMax`, and a replay must show the policy as every read does now.
 */
function outcomeOf(text: string): Applied {
  const outcome = JSON.parse(text) as Omit<Applied, 'entries' | 'levels'> & { entries: Array<{ policy?: StoredPolicy }>; levels: Array<{ policy?: StoredPolicy }> };
  for (const item of [...outcome.entries, ...outcome.levels]) if (item.policy !== undefined) item.policy = policyFrom(item.policy);
  return outcome as Applied;
}

function prepare(db: SqliteDatabase, t: SqliteTables): Statements {
  const entryColumns = 'seq, request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, at, meta, policy, buyer, reservation_id';
  const foldSelect = `SELECT sku, SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved, COUNT(*) AS version FROM ${t.entries}`;
  const holdsSelect = 'SELECT h.sku, h.reservation_id, h.qty, h.expires_at, r.state, r.expires_at AS record_expires_at, r.lines ' +
    `FROM ${t.holds} h LEFT JOIN ${t.reservations} r ON r.id = h.reservation_id`;
  // Per reservation: an amend entry names it in reservation_id, every other move in request_id.
  const foldedHolds = (where: string): string =>
    `SELECT sku, COALESCE(reservation_id, request_id) AS request_id, SUM(reserved_delta) AS qty FROM ${t.entries} WHERE ${where} AND reserved_delta <> 0 ` +
    'GROUP BY sku, COALESCE(reservation_id, request_id) HAVING SUM(reserved_delta) <> 0';
  // The fold of a buyer's entries: each moves its total by reserved_delta - on_hand_delta (a take is positive).
  const buyersFolded = (where: string): string =>
    `SELECT sku, buyer, SUM(reserved_delta - on_hand_delta) AS taken FROM ${t.entries} WHERE ${where} AND buyer IS NOT NULL GROUP BY sku, buyer`;
  const repeated = (where: string): string =>
    `SELECT sku, request_id, kind, COUNT(*) AS count FROM ${t.entries} WHERE ${where} GROUP BY sku, request_id, kind HAVING COUNT(*) > 1`;
  return {
    level: db.prepare(`SELECT on_hand, reserved, version, backorder_max, low_stock_at, buyer_max FROM ${t.levels} WHERE sku = ?`),
    request: db.prepare(`SELECT kind, fingerprint, at, outcome FROM ${t.requests} WHERE request_id = ?`),
    reversed: db.prepare(`SELECT qty FROM ${t.reversals} WHERE of_request = ? AND sku = ?`),
    // The next seq: one above the last entry, or above the compacted horizon once compaction
    // removed every entry (SQLite alone would start again from 1).
    insertEntry: db.prepare(
      `INSERT INTO ${t.entries} (${entryColumns}) VALUES (` +
        `COALESCE((SELECT MAX(seq) FROM ${t.entries}), (SELECT compacted_through FROM ${t.horizon} WHERE id = 1), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    upsertLevel: db.prepare(
      `INSERT INTO ${t.levels} (sku, on_hand, reserved, version, backorder_max, low_stock_at, buyer_max) VALUES (?, ?, ?, ?, ?, ?, ?) ` +
        'ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved, version = excluded.version, ' +
        'backorder_max = excluded.backorder_max, low_stock_at = excluded.low_stock_at, buyer_max = excluded.buyer_max',
    ),
    insertRequest: db.prepare(`INSERT INTO ${t.requests} (request_id, kind, fingerprint, at, outcome) VALUES (?, ?, ?, ?, ?)`),
    upsertReversal: db.prepare(
      `INSERT INTO ${t.reversals} (of_request, sku, qty) VALUES (?, ?, ?) ON CONFLICT (of_request, sku) DO UPDATE SET qty = qty + excluded.qty`,
    ),
    entries: db.prepare(`SELECT ${entryColumns} FROM ${t.entries} WHERE seq > ? ORDER BY seq LIMIT ?`),
    entriesOfSku: db.prepare(`SELECT ${entryColumns} FROM ${t.entries} WHERE sku = ? AND seq > ? ORDER BY seq LIMIT ?`),
    chunkSkus: db.prepare(`SELECT sku FROM ${t.levels} WHERE sku > ? ORDER BY sku LIMIT ?`),
    foldRange: db.prepare(`${foldSelect} WHERE sku > ? AND sku <= ? GROUP BY sku`),
    foldFrom: db.prepare(`${foldSelect} WHERE sku > ? GROUP BY sku`),
    holdsRange: db.prepare(`${holdsSelect} WHERE h.sku > ? AND h.sku <= ?`),
    holdsFrom: db.prepare(`${holdsSelect} WHERE h.sku > ?`),
    foldedHoldsRange: db.prepare(foldedHolds('sku > ? AND sku <= ?')),
    foldedHoldsFrom: db.prepare(foldedHolds('sku > ?')),
    repeatedRange: db.prepare(repeated('sku > ? AND sku <= ?')),
    repeatedFrom: db.prepare(repeated('sku > ?')),
    buyersFoldedRange: db.prepare(buyersFolded('sku > ? AND sku <= ?')),
    buyersFoldedFrom: db.prepare(buyersFolded('sku > ?')),
    buyersStoredRange: db.prepare(`SELECT sku, buyer, taken FROM ${t.buyerTotals} WHERE sku > ? AND sku <= ?`),
    buyersStoredFrom: db.prepare(`SELECT sku, buyer, taken FROM ${t.buyerTotals} WHERE sku > ?`),
    // Every SKU of the page, flagged when its stored available is within the bound (null: no bound).
    levelsPage: db.prepare(
      `SELECT sku, on_hand, reserved, version, backorder_max, low_stock_at, buyer_max, ` +
        `(@most IS NULL OR on_hand - reserved + backorder_max <= @most) AS candidate FROM ${t.levels} WHERE sku > @after ORDER BY sku LIMIT @limit`,
    ),
    reservation: db.prepare(`SELECT id, state, lines, expires_at, created_at, committed, meta, outcome, buyer FROM ${t.reservations} WHERE id = ?`),
    holdsOf: db.prepare(`SELECT sku FROM ${t.holds} WHERE reservation_id = ? ORDER BY sku`),
    dueHolds: db.prepare(`SELECT reservation_id FROM ${t.holds} WHERE sku = ? AND expires_at <= ? ORDER BY expires_at, reservation_id LIMIT ?`),
    dueAnywhere: db.prepare(`SELECT reservation_id, sku FROM ${t.holds} WHERE expires_at <= ? ORDER BY expires_at, reservation_id, sku LIMIT ?`),
    dueTotals: db.prepare(`SELECT COALESCE(SUM(qty), 0) AS qty, COUNT(*) AS count FROM ${t.holds} WHERE sku = ? AND expires_at <= ?`),
    insertReservation: db.prepare(
      `INSERT INTO ${t.reservations} (id, state, lines, expires_at, created_at, committed, meta, outcome, buyer) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, ?)`,
    ),
    insertHold: db.prepare(`INSERT INTO ${t.holds} (reservation_id, sku, qty, expires_at) VALUES (?, ?, ?, ?)`),
    deleteHold: db.prepare(`DELETE FROM ${t.holds} WHERE reservation_id = ? AND sku = ?`),
    expireReservation: db.prepare(`UPDATE ${t.reservations} SET state = 'expired' WHERE id = ? AND state = 'held'`),
    settleReservation: db.prepare(`UPDATE ${t.reservations} SET state = ?, committed = ?, outcome = ? WHERE id = ?`),
    extendReservation: db.prepare(`UPDATE ${t.reservations} SET expires_at = ? WHERE id = ?`),
    extendHolds: db.prepare(`UPDATE ${t.holds} SET expires_at = ? WHERE reservation_id = ?`),
    amendReservation: db.prepare(`UPDATE ${t.reservations} SET lines = ? WHERE id = ?`),
    upsertHold: db.prepare(
      `INSERT INTO ${t.holds} (reservation_id, sku, qty, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (reservation_id, sku) DO UPDATE SET qty = excluded.qty`,
    ),
    // Text compares as memcmp of UTF-8: code-point order, as the other stores page.
    liveHolds: db.prepare(
      `SELECT h.reservation_id, h.qty, h.expires_at, r.meta, r.buyer FROM ${t.holds} h LEFT JOIN ${t.reservations} r ON r.id = h.reservation_id ` +
        'WHERE h.sku = ? AND h.expires_at > ? AND (h.expires_at > ? OR (h.expires_at = ? AND h.reservation_id > ?)) ' +
        'ORDER BY h.expires_at, h.reservation_id LIMIT ?',
    ),
    buyerTaken: db.prepare(`SELECT taken FROM ${t.buyerTotals} WHERE sku = ? AND buyer = ?`),
    upsertBuyerTotal: db.prepare(
      `INSERT INTO ${t.buyerTotals} (sku, buyer, taken) VALUES (?, ?, ?) ON CONFLICT (sku, buyer) DO UPDATE SET taken = excluded.taken`,
    ),
    deleteBuyerTotal: db.prepare(`DELETE FROM ${t.buyerTotals} WHERE sku = ? AND buyer = ?`),
    // The buyer's holds of the SKU due by now and still held in storage (the holds-by-SKU index, then each reservation by id).
    dueOfBuyer: db.prepare(
      `SELECT COALESCE(SUM(h.qty), 0) AS qty FROM ${t.holds} h JOIN ${t.reservations} r ON r.id = h.reservation_id ` +
        'WHERE h.sku = ? AND h.expires_at <= ? AND r.buyer = ?',
    ),
  };
}

function configure(db: SqliteDatabase, options: { busyTimeoutMs: number; durability: SqliteDurability; owned: boolean }): void {
  db.pragma(`busy_timeout = ${options.busyTimeoutMs}`);
  if (options.owned) db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
}

function openFile(path: unknown, busyTimeoutMs: number): SqliteDatabase {
  if (typeof path !== 'string' || path.length === 0) throw new InvalidInputError('path', 'must be a non-empty string');
  let Database: SqliteDatabaseConstructor;
  try {
    Database = createRequire(import.meta.url)('better-sqlite3') as SqliteDatabaseConstructor;
  } catch (error) {
    throw new StoreUnavailableError('stock-ledger/sqlite needs better-sqlite3: npm install better-sqlite3@12', { cause: error });
  }
  try {
    return new Database(path, { timeout: busyTimeoutMs });
  } catch (error) {
    throw openFailure(error);
  }
}

/** Opening and migrating throw only StockLedgerErrors: transient ones as they map, the rest as STORE_UNAVAILABLE with the cause. */
function openFailure(error: unknown): unknown {
  if (isStockLedgerError(error)) return error;
  if (typeof (error as { code?: unknown } | null)?.code === 'string') return unavailable(error);
  return new StoreUnavailableError(`SQLite: cannot open the ledger: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

function checkWriterThread(value: unknown, path: unknown, groupCommit: boolean): boolean {
  if (value === undefined || value === false) return false;
  if (value !== true) throw new InvalidInputError('writerThread', 'must be a boolean');
  if (typeof path !== 'string' || path === '' || path === ':memory:' || path.startsWith('file::memory:')) {
    throw new InvalidInputError('writerThread', 'needs the path of a database file: the thread opens its own connection to it');
  }
  if (!groupCommit) throw new InvalidInputError('writerThread', 'needs group commit: the thread writes batches');
  return true;
}

function checkBusyTimeout(value: unknown): number {
  if (value === undefined) return DEFAULT_BUSY_TIMEOUT_MS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 600_000) {
    throw new InvalidInputError('busyTimeoutMs', 'must be an integer from 0 to 600000');
  }
  return value;
}

function checkDurability(value: unknown): SqliteDurability {
  if (value === undefined) return 'full';
  if (value !== 'full' && value !== 'normal') throw new InvalidInputError('durability', "must be 'full' or 'normal'");
  return value;
}

/** An operation that was not asked to join waited the whole busy timeout for the app's transaction to end. */
function appTransactionOpen(busyTimeoutMs: number): StoreUnavailableError {
  return new StoreUnavailableError(
    `SQLite: a transaction of the app's stayed open on the shared connection for ${busyTimeoutMs} ms; ` +
      'an operation runs inside it only when the call hands it in ({ transaction })',
  );
}

const CONSTRAINT = /^SQLITE_CONSTRAINT/;

/**
 * Engine failures become `STORE_UNAVAILABLE` (each operation is one transaction or savepoint,
 * rolled back on failure, so retrying it is safe); a broken constraint means a bug and fails loudly as
 * `INVARIANT_VIOLATION`; the library's own errors pass through.
 */
function unavailable(error: unknown): unknown {
  if (isStockLedgerError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CONSTRAINT.test(code)) {
    return new InvariantViolationError(`SQLite: ${(error as Error).message}`, { cause: error });
  }
  if (typeof code === 'string' && code.startsWith('SQLITE_')) {
    return new StoreUnavailableError(`SQLite: ${(error as Error).message}`, { cause: error });
  }
  if (error instanceof TypeError && /database connection is not open/.test(error.message)) {
    return new StoreUnavailableError('SQLite: the database is closed', { cause: error });
  }
  return new InvariantViolationError(`SQLite store: ${String(error)}`, { cause: error });
}
