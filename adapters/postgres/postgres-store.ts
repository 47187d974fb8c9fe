import { InvalidInputError, StoreUnavailableError } from '../../src/index.js';
import type { Entry, FeedEntry, JsonObject, Level, ReservationState, StockStore } from '../../src/index.js';
import { compareCodePoints, inAppTransaction, levelAsOf, zeroCounters } from '../../src/store-kit.js';
import type {
  Command, CompactQuery, CompactStep, ExecuteOptions, HoldCheck, HoldCursor, LevelsQueryOfStore, StoreCapabilities, StoreOutcome, StoredHold, StoredLevelsPage,
  StoredRequest, StoredReservation, VerifyChunk, VerifyItem,
} from '../../src/store-kit.js';
import { BatchQueue, checkGroupCommit, type Pending, type PostgresGroupCommitOptions } from './postgres-batch.js';
import { connectorOf, joinedOf, type Connector, type PostgresClient } from './postgres-client.js';
import { countersOf, decodeKey, encodeKey, feedEntryOf, int, linesOf, str, type EntryJson, type LevelJson } from './postgres-codec.js';
import { isRetryableConflict, joinedConflict, sqlState, storeError } from './postgres-errors.js';
import { compactStep, levelsPageOf, type LevelsJson } from './postgres-retention.js';
import { checkSchema, migrateWith } from './postgres-schema.js';
import { sealSweep, sequence, sequenceIfNeeded, seqOf, SweepRaced, unnumbered } from './postgres-sequencer.js';
import { statements, type Statements } from './postgres-sql.js';
import { runUnit, TwinWon, type Finished, type UnitResult } from './postgres-unit.js';
import { EntryRefs, requestOutcome, storedReservation, type RequestJson, type ReservationJson } from './postgres-view.js';

/**
 * Options of {@link PostgresStore}.
 *
 * @example
 * ```ts
 * const options: PostgresStoreOptions = { client: pool, schema: 'shop_1', groupCommit: { batchOperationsMax: 64 } };
 * ```
 */
export interface PostgresStoreOptions {
  /**
   * A pg `Pool` or `Client`, a postgres.js `sql`, or a {@link PostgresExecutor}. The store only
   * runs statements on it and never closes it. A pool lends the store one connection per
   * transaction; a single `Client` runs one store transaction at a time.
   */
  client: PostgresClient;
  /** The schema that holds the ledger's tables (created on first use). Default `stock_ledger`. */
  schema?: string;
  /**
   * Group commit, on by default: operations issued while a batch is pending share one
   * transaction (one commit flush), each with its own outcome. `false`: one transaction per
   * operation. See {@link PostgresGroupCommitOptions}.
   */
  groupCommit?: boolean | PostgresGroupCommitOptions;
  /** How long a store-owned transaction waits for a row lock before `STORE_UNAVAILABLE`. Default 5000. */
  lockTimeoutMs?: number;
  /** Create or migrate the schema before the first operation (default true); false when `migrate()` runs elsewhere. */
  migrate?: boolean;
}

/** Attempts of a store-owned transaction that lost a deadlock, a serialization failure or a request-id race. */
const OWN_ATTEMPTS_MAX = 8;
/** Attempts inside the app's transaction when a twin recorded the request id first (READ COMMITTED then sees it). */
const JOINED_ATTEMPTS_MAX = 2;
const BACKOFF_MS_MAX = 20;
const DEFAULT_LOCK_TIMEOUT_MS = 5000;
/** How long a batch of several operations waits for a row lock before it splits into single operations. */
const BATCH_LOCK_WAIT_MS = 500;

/**
 * The ledger in PostgreSQL (13 or later; tested on 15), with pg 8 or postgres.js 3. Each
 * operation is one READ COMMITTED transaction (or, with group commit, several operations
 * share one): the SKUs it touches are locked `FOR UPDATE` in one global order, the core's
 * `decide()` rules on what was loaded, and the writes follow in one statement. An operation
 * can also run inside the app's own open transaction (`{ transaction }`), as a savepoint.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { StockLedger } from 'stock-ledger';
 * import { PostgresStore } from 'stock-ledger/postgres';
 * const ledger = new StockLedger({ store: new PostgresStore({ client: new pg.Pool() }) });
 * ```
 */
export class PostgresStore implements StockStore {
  /** It joins the app's transaction when a call hands it in. */
  readonly capabilities: StoreCapabilities = Object.freeze({ joinTransaction: true });
  readonly #connector: Connector;
  readonly #schema: string;
  readonly #sql: Statements;
  readonly #lockTimeoutMs: number;
  readonly #batches: BatchQueue<Command, StoreOutcome> | null;
  readonly #migrate: boolean;
  /** Store-owned transactions of this store now running. */
  #ownInFlight = 0;
  #ready: Promise<void> | null = null;
  #closed = false;

  constructor(options: PostgresStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidInputError('options', 'must be { client, schema? }');
    this.#connector = connectorOf(options.client);
    this.#schema = checkSchema(options.schema);
    this.#sql = statements(this.#schema);
    this.#lockTimeoutMs = checkLockTimeout(options.lockTimeoutMs);
    this.#migrate = options.migrate !== false;
    const inFlight = this.#connector.driver === 'pg-pool' || this.#connector.driver === 'postgres.js' ? 4 : 1;
    const groupCommit = checkGroupCommit(options.groupCommit, inFlight);
    this.#batches = groupCommit === null ? null : new BatchQueue(groupCommit, (batch) => this.#writeBatch(batch));
  }

  /** The schema the ledger lives in. */
  get schema(): string {
    return this.#schema;
  }

  async execute(command: Command, options?: ExecuteOptions): Promise<StoreOutcome> {
    await this.#open();
    if (options?.transaction !== undefined) return this.#executeJoined(command, options.transaction);
    // A sweep runs alone: it seals its transaction with the sequencer lock (see sealSweep).
    if (this.#batches !== null && command.kind !== 'sweep') return this.#batches.push(command);
    const [finished] = await this.#runOwn([command]);
    return outcomeOf(finished as Finished);
  }

  async stocks(skus: readonly string[], now: number): Promise<Level[]> {
    const data = await this.#read<Array<LevelJson & { dq: number | string; dn: number }>>(this.#sql.stocks, [
      JSON.stringify(skus.map(encodeKey)), now,
    ]);
    const bySku = new Map(data.map((row) => [decodeKey(row.s), row]));
    return skus.map((sku) => {
      const row = bySku.get(sku);
      if (row === undefined) return levelAsOf(sku, zeroCounters(), { qty: 0, count: 0 });
      return levelAsOf(sku, countersOf(row), { qty: int(row.dq, 'due qty'), count: int(row.dn, 'due count') });
    });
  }

  async entries(query: { after: number; sku: string | null; limit: number }): Promise<FeedEntry[]> {
    await this.#open();
    // Entries committed by a process that died before numbering them, or by an app's
    // transaction, get their seq now: a reader never waits on a writer to finish.
    await this.#guard(() => sequenceIfNeeded(this.#connector, this.#sql));
    const rows = query.sku === null
      ? await this.#read<EntryJson[]>(this.#sql.entries, [query.after, query.limit])
      : await this.#read<EntryJson[]>(this.#sql.entriesOfSku, [query.after, query.limit, encodeKey(query.sku)]);
    return rows.map(feedEntryOf);
  }

  async request(requestId: string): Promise<StoredRequest | null> {
    return this.#numbered(async (refs) => {
      const [row] = await this.#read<RequestJson[]>(this.#sql.request, [encodeKey(requestId)]);
      if (row === undefined) return null;
      const reservation = row.k === 'reserve' ? ((await this.#read<ReservationJson[]>(this.#sql.reservation, [row.id]))[0] ?? null) : null;
      return requestOutcome(row, reservation, refs);
    });
  }

  async reservation(reservationId: string): Promise<StoredReservation | null> {
    return this.#numbered(async (refs) => {
      const [row] = await this.#read<ReservationJson[]>(this.#sql.reservation, [encodeKey(reservationId)]);
      return row === undefined ? null : storedReservation(row, refs);
    });
  }

  async holds(query: { sku: string; after: HoldCursor | null; limit: number; now: number }): Promise<StoredHold[]> {
    const { sku, after, limit, now } = query;
    const rows = await this.#read<Array<{ r: string; q: number | string; xp: number | string; m: string | null; b: string | null }>>(this.#sql.holds, [
      encodeKey(sku), now, after?.expiresAt ?? -1, encodeKey(after?.reservationId ?? ''), limit,
    ]);
    return rows.map((row) => {
      const hold: StoredHold = { reservationId: decodeKey(row.r), qty: int(row.q, 'hold qty'), expiresAt: int(row.xp, 'hold expires_at') };
      if (row.m !== null) hold.meta = JSON.parse(row.m) as JsonObject;
      if (row.b !== null) hold.buyer = decodeKey(row.b);
      return hold;
    });
  }

  async buyerTotals(query: { buyer: string; skus: readonly string[]; now: number }): Promise<number[]> {
    const { buyer, skus, now } = query;
    const totals = await this.#read<Array<number | string>>(this.#sql.buyerTotals, [encodeKey(buyer), JSON.stringify(skus.map(encodeKey)), now]);
    return skus.map((_, i) => int(totals[i], 'buyer total'));
  }

  async verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk> {
    // SKUs are never empty, so '' is below every SKU. One statement: one snapshot for the chunk.
    const data = await this.#read<VerifyJson>(this.#sql.verifyChunk, [encodeKey(query.cursor ?? ''), query.limit]);
    return verifyChunkOf(data);
  }

  /**
   * One compaction step, in a transaction of its own (see `compact_step` in
   * postgres-retention.ts): numbered entries only, in seq order. It locks the level rows of
   * every SKU the records it removes touch, as writers lock them, so a step and an operation
   * on the same request (a reverse writing a tally) never interleave.
   */
  async compact(query: CompactQuery): Promise<CompactStep> {
    await this.#open();
    return this.#guard(() => compactStep(this.#connector, this.#sql, query, this.#lockTimeoutMs));
  }

  async compactedThrough(): Promise<number> {
    await this.#open();
    const rows = await this.#guard(() => this.#connector.query(this.#sql.compactedThrough));
    return int(rows[0]?.['t'], 'compaction horizon');
  }

  async levels(query: LevelsQueryOfStore): Promise<StoredLevelsPage> {
    // SKUs are never empty, so '' is below every SKU. One statement: each level is read with its due holds.
    const data = await this.#read<LevelsJson>(this.#sql.levels, [encodeKey(query.after ?? ''), query.limit, query.availableAtMost, query.now]);
    return levelsPageOf(data, query);
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Operations already accepted are written, not dropped; the client stays open (it is the app's).
    await this.#batches?.drain();
  }

  /** Creates or migrates the schema once, before the first statement (again after a failure). */
  async #open(): Promise<void> {
    if (this.#closed) throw new StoreUnavailableError('PostgreSQL: the store is closed');
    if (!this.#migrate) return;
    this.#ready ??= this.#guard(() => migrateWith(this.#connector, this.#schema).then(() => undefined));
    try {
      await this.#ready;
    } catch (error) {
      this.#ready = null;
      throw error;
    }
  }

  /** One autocommit read returning one JSON text column `j`, parsed. */
  async #read<T>(text: string, values: readonly unknown[]): Promise<T> {
    await this.#open();
    return this.#guard(async () => {
      const rows = await this.#connector.query(text, values);
      return JSON.parse(str(rows[0]?.['j'], 'reply')) as T;
    });
  }

  /** A read whose entries must carry seqs: numbers them first when some are not yet (bounded). */
  async #numbered<T>(read: (refs: EntryRefs) => Promise<T>): Promise<T> {
    const refs = new EntryRefs();
    const value = await read(refs);
    const ops = refs.unnumberedOps();
    if (ops.length === 0) return value;
    const seqs = await this.#guard(() => sequence(this.#connector, this.#sql, ops));
    refs.number((ref) => seqOf(seqs, ref));
    if (refs.unnumberedOps().length > 0) throw unnumbered();
    return value;
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw storeError(error);
    }
  }

  async #writeBatch(batch: Pending<Command, StoreOutcome>[]): Promise<void> {
    let finished: Finished[];
    try {
      // A batch waits only briefly for a row lock: one SKU held by an app's open transaction
      // must not stall the batch's other operations. On a lock timeout the batch splits and
      // each operation waits on its own, with the full lock timeout.
      const lockWaitMs = batch.length > 1 ? Math.min(this.#lockTimeoutMs, BATCH_LOCK_WAIT_MS) : this.#lockTimeoutMs;
      finished = await this.#runOwn(batch.map((p) => p.command), lockWaitMs);
    } catch (error) {
      if (batch.length > 1 && sqlState((error as { cause?: unknown }).cause) === '55P03') {
        await Promise.all(batch.map((pending) => this.#writeBatch([pending])));
        return;
      }
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) => {
      const f = finished[i] as Finished;
      if (f.ok) pending.resolve(f.outcome);
      else pending.reject(storeError(f.error));
    });
  }

  /**
   * Commands in one store-owned transaction; retried whole (bounded, with jitter) after a
   * deadlock, a serialization failure or a lost request-id race. Then the entries are numbered.
   */
  async #runOwn(commands: Command[], lockTimeoutMs = this.#lockTimeoutMs): Promise<Finished[]> {
    for (let attempt = 1; ; attempt += 1) {
      let unit: UnitResult;
      this.#ownInFlight += 1;
      try {
        unit = await this.#connector.transaction(async (connection) => {
          // Alone, a transaction numbers its entries before its COMMIT (no extra round trip);
          // with company it numbers after, so the sequencer lock is never held across one
          // transaction's flush while the others queue behind it, and one run numbers many.
          const sweeps = commands.some((c) => c.kind === 'sweep');
          const done = await runUnit(connection, this.#sql, commands, { numberOwn: this.#ownInFlight === 1 && !sweeps });
          if (done.sweep !== null) await sealSweep(connection, this.#sql, done.ops, done.sweep, done.refs);
          // Nothing written (rejections, replays): roll back, which flushes nothing to disk.
          return { value: done, commit: done.ops.length > 0 };
        }, lockTimeoutMs);
      } catch (error) {
        if ((error instanceof TwinWon || error instanceof SweepRaced || isRetryableConflict(error)) && attempt < OWN_ATTEMPTS_MAX) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(BACKOFF_MS_MAX, 2 ** attempt)));
          continue;
        }
        throw storeError(error instanceof TwinWon ? error.cause : error);
      } finally {
        this.#ownInFlight -= 1;
      }
      // Numbered in the transaction when the sequencer lock was free; else now, after the commit.
      await this.#number(unit.refs);
      return unit.finished;
    }
  }

  /** Puts real seqs on every entry an outcome holds, running the sequencer after the commit. */
  async #number(refs: EntryRefs): Promise<void> {
    const ops = refs.unnumberedOps();
    if (ops.length === 0) return;
    const seqs = await this.#guard(() => sequence(this.#connector, this.#sql, ops));
    refs.number((ref) => seqOf(seqs, ref));
    if (refs.unnumberedOps().length > 0) throw unnumbered();
  }

  /**
   * Inside the app's transaction, as a savepoint; never retried there except once after a
   * lost request-id race (READ COMMITTED then sees the winner). Its new entries report
   * `seq: null`: they are numbered after the app commits, by the next writer or reader.
   */
  async #executeJoined(command: Command, transaction: unknown): Promise<StoreOutcome> {
    const joined = joinedOf(transaction);
    for (let attempt = 1; ; attempt += 1) {
      let unit: UnitResult;
      try {
        unit = await joined.savepoint((connection) => runUnit(connection, this.#sql, [command], { numberOwn: false }));
      } catch (error) {
        if (error instanceof TwinWon && attempt < JOINED_ATTEMPTS_MAX) continue;
        if (error instanceof TwinWon || isRetryableConflict(error)) throw joinedConflict(error instanceof TwinWon ? error.cause : error);
        throw inAppTransaction(storeError(error));
      }
      unit.refs.unnumbered();
      return outcomeOf(unit.finished[0] as Finished);
    }
  }
}

function outcomeOf(finished: Finished): StoreOutcome {
  if (finished.ok) return finished.outcome;
  throw storeError(finished.error);
}

function checkLockTimeout(value: unknown): number {
  if (value === undefined) return DEFAULT_LOCK_TIMEOUT_MS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 600_000) {
    throw new InvalidInputError('lockTimeoutMs', 'must be an integer from 1 to 600000');
  }
  return value;
}

interface VerifyJson {
  upper: string | null;
  levels: LevelJson[];
  folded: Array<{ s: string; h: number | string; r: number | string; v: number }>;
  holds: Array<{ s: string; r: string; q: number; xp: number; st: ReservationState | null; rx: number | null; l: string | null }>;
  fh: Array<{ s: string; r: string; q: number | string }>;
  rep: Array<{ s: string; r: string; k: Entry['kind']; n: number }>;
  /** Per (SKU, buyer) where either is not 0: the stored total and the fold of the entries naming the buyer. */
  bt: Array<{ s: string; b: string; st: number | string; f: number | string }>;
}

function groupBySku<R extends { s: string }, T>(rows: readonly R[], item: (row: R) => T): Map<string, T[]> {
  const bySku = new Map<string, T[]>();
  for (const row of rows) {
    const sku = decodeKey(row.s);
    const list = bySku.get(sku);
    if (list === undefined) bySku.set(sku, [item(row)]);
    else list.push(item(row));
  }
  return bySku;
}

function verifyChunkOf(data: VerifyJson): VerifyChunk {
  const counters = (row: { h: number | string; r: number | string; v: number }): { onHand: number; reserved: number; version: number } => ({
    onHand: int(row.h, 'on_hand'), reserved: int(row.r, 'reserved'), version: int(row.v, 'version'),
  });
  // Stored counters carry the policy: verify checks reserved and available against the backorder.
  const stored = new Map(data.levels.map((row) => [decodeKey(row.s), countersOf(row)]));
  const folded = new Map(data.folded.map((row) => [decodeKey(row.s), counters(row)]));
  const holds = groupBySku(data.holds, (row): HoldCheck => {
    const lineQty = row.l === null ? null : (linesOf(row.l).find((l) => l.sku === decodeKey(row.s))?.qty ?? null);
    // The store's list of a reservation's live holds is the holds table itself: a row is listed.
    const record = row.st === null ? null : { state: row.st, expiresAt: int(row.rx, 'expires_at'), lineQty, listed: true };
    return { reservationId: decodeKey(row.r), qty: int(row.q, 'qty'), expiresAt: int(row.xp, 'expires_at'), record };
  });
  const foldedHolds = groupBySku(data.fh, (row) => ({ reservationId: decodeKey(row.r), qty: int(row.q, 'qty') }));
  const repeated = groupBySku(data.rep, (row) => ({ requestId: decodeKey(row.r), kind: row.k, count: int(row.n, 'count') }));
  const buyers = groupBySku(data.bt, (row) => ({ buyer: decodeKey(row.b), stored: int(row.st, 'buyer total'), folded: int(row.f, 'folded buyer total') }));
  const all = [...new Set([...stored.keys(), ...folded.keys(), ...holds.keys(), ...buyers.keys()])].sort(compareCodePoints);
  const items: VerifyItem[] = all.map((sku) => ({
    sku, stored: stored.get(sku) ?? zeroCounters(), folded: folded.get(sku) ?? zeroCounters(), holds: holds.get(sku) ?? [],
    foldedHolds: foldedHolds.get(sku) ?? [], repeated: repeated.get(sku) ?? [],
    buyers: (buyers.get(sku) ?? []).sort((a, b) => compareCodePoints(a.buyer, b.buyer)),
  }));
  return { items, cursor: data.upper === null ? null : decodeKey(data.upper) };
}
