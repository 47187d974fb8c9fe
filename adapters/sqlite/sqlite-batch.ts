import { InvalidInputError } from '../../src/index.js';
import type { SqliteDatabase } from './sqlite-database.js';

/**
 * Group commit of {@link SqliteStore}: operations that arrive while a batch is pending are
 * applied together in one transaction (one fsync at `synchronous=FULL`), each in its own
 * savepoint, in arrival order.
 *
 * @example
 * ```ts
 * new SqliteStore({ path: 'stock.db', groupCommit: { batchOperationsMax: 64, batchWaitMs: 2 } });
 * ```
 */
export interface GroupCommitOptions {
  /**
   * Most operations in one transaction, 1 to 1000. Default 128. A full batch is written at
   * once, without waiting for `batchWaitMs`. Bigger batches save fsyncs but hold the write
   * lock longer, so other processes on the file wait longer.
   */
  batchOperationsMax?: number;
  /**
   * How long the first operation of a batch waits for others to join, 0 to 100 ms. Default 0:
   * the batch is written on the next event-loop turn, so a lone caller pays no timer, and only
   * operations issued in the same turn share it. A wait gathers bigger batches under load, and
   * every operation pays up to that wait.
   */
  batchWaitMs?: number;
}

/** Resolved group-commit settings. */
export interface GroupCommitSettings {
  batchOperationsMax: number;
  batchWaitMs: number;
}

const BATCH_OPERATIONS_DEFAULT = 128;
const BATCH_OPERATIONS_MAX = 1000;
const BATCH_WAIT_MS_DEFAULT = 0;
const BATCH_WAIT_MS_MAX = 100;

/**
 * The group-commit settings in force (null: one transaction per operation), or
 * `INVALID_INPUT` for a bad option.
 *
 * @example
 * ```ts
 * checkGroupCommit(undefined); // { batchOperationsMax: 128, batchWaitMs: 0 }
 * checkGroupCommit(false);     // null
 * ```
 */
export function checkGroupCommit(value: unknown): GroupCommitSettings | null {
  if (value === false) return null;
  const defaults = { batchOperationsMax: BATCH_OPERATIONS_DEFAULT, batchWaitMs: BATCH_WAIT_MS_DEFAULT };
  if (value === undefined || value === true) return defaults;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError('groupCommit', 'must be a boolean or { batchOperationsMax?, batchWaitMs? }');
  }
  // A misspelt option would silently fall back to a default: refuse it instead.
  const unknown = Object.keys(value).find((key) => key !== 'batchOperationsMax' && key !== 'batchWaitMs');
  if (unknown !== undefined) throw new InvalidInputError(`groupCommit.${unknown}`, 'is not an option');
  const { batchOperationsMax, batchWaitMs } = value as GroupCommitOptions;
  return {
    batchOperationsMax: boundedInteger('groupCommit.batchOperationsMax', batchOperationsMax, defaults.batchOperationsMax, 1, BATCH_OPERATIONS_MAX),
    batchWaitMs: boundedInteger('groupCommit.batchWaitMs', batchWaitMs, defaults.batchWaitMs, 0, BATCH_WAIT_MS_MAX),
  };
}

function boundedInteger(field: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidInputError(field, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** One queued operation and the promise it resolves or rejects. */
export interface Pending<C, R> {
  command: C;
  resolve(result: R): void;
  reject(error: unknown): void;
}

type Finished<R> = { ok: true; value: R } | { ok: false; error: unknown };

/**
 * Builds the function that writes one batch: one `BEGIN IMMEDIATE` transaction (a savepoint
 * when the app's own transaction is open on `db`), every command through `apply`, then COMMIT;
 * only then are the promises resolved or rejected. If a command throws, the batch is rolled back and runs
 * again with each command in its own savepoint. A command that throws is undone
 * alone and rejects alone (`mapError` turns its error into the store's error); a failed BEGIN
 * or COMMIT rejects the whole batch, rolled back.
 *
 * @example
 * ```ts
 * const write = batchWriter(db, (command) => decideAndWrite(command), toStoreError);
 * write([{ command, resolve, reject }]);
 * ```
 */
export function batchWriter<C, R>(db: SqliteDatabase, apply: (command: C) => R, mapError: (error: unknown) => unknown): (batch: readonly Pending<C, R>[]) => void {
  // The common case: no command throws (rejections are outcomes, not throws), so the batch runs
  // without a savepoint per command: two statements fewer per operation.
  let threw = false;
  const applyDirect = db.transaction((batch: readonly Pending<C, R>[]): Finished<R>[] =>
    batch.map(({ command }) => {
      try {
        return { ok: true, value: apply(command) };
      } catch (error) {
        threw = true;
        throw error;
      }
    }),
  ).immediate;
  // When one did throw, the whole transaction was rolled back and the batch runs again, each
  // command inside a savepoint (better-sqlite3 runs a nested transaction as SAVEPOINT ...
  // RELEASE, and on a throw as ROLLBACK TO): the other commands of the batch keep their writes.
  const inSavepoint = db.transaction(apply);
  const applyIsolated = db.transaction((batch: readonly Pending<C, R>[]): Finished<R>[] =>
    batch.map(({ command }) => {
      try {
        return { ok: true, value: inSavepoint(command) };
      } catch (error) {
        // Some engine errors (SQLITE_FULL, SQLITE_IOERR, ...) roll the whole transaction back:
        // the writes of earlier commands are gone too, so the batch fails as a whole.
        if (!db.inTransaction) throw error;
        return { ok: false, error: mapError(error) };
      }
    }),
  ).immediate;
  const run = (batch: readonly Pending<C, R>[]): Finished<R>[] => {
    threw = false;
    try {
      return applyDirect(batch);
    } catch (error) {
      if (!threw) throw error;
      return applyIsolated(batch);
    }
  };
  return (batch) => {
    let finished: Finished<R>[];
    try {
      finished = run(batch);
    } catch (error) {
      // BEGIN, COMMIT or the transaction itself failed; better-sqlite3 has rolled back.
      const failure = mapError(error);
      for (const pending of batch) pending.reject(failure);
      return;
    }
    finished.forEach((s, i) => {
      const pending = batch[i] as Pending<C, R>;
      if (s.ok) pending.resolve(s.value);
      else pending.reject(s.error);
    });
  };
}

/**
 * When a batch may not be written yet (the app's transaction is open on the shared
 * connection): the queue looks again every {@link GATE_POLL_MS} ms, at most `waitMsMax`, then
 * fails the waiting operations with `timedOut()` (nothing of them was written).
 */
export interface BatchGate {
  closed(): boolean;
  waitMsMax: number;
  timedOut(): unknown;
}

const GATE_POLL_MS = 2;

/**
 * Queues operations and hands them to `write` in bounded batches. The first operation of an
 * empty queue schedules the batch (`setImmediate` with no wait, so a lone caller waits one
 * event-loop turn and nothing more; otherwise a `batchWaitMs` timer); a full batch is written
 * at once.
 *
 * A `write` that returns a promise (the batch is written elsewhere, on the writer thread) may
 * have up to `inFlightMax` batches out at once; operations that arrive meanwhile gather into the
 * next batch, which is handed over as soon as one comes back.
 *
 * @example
 * ```ts
 * const queue = new BatchQueue(settings, batchWriter(db, apply, toStoreError));
 * const outcome = await queue.push(command);
 * ```
 */
export class BatchQueue<C, R> {
  readonly #settings: GroupCommitSettings;
  readonly #write: (batch: readonly Pending<C, R>[]) => void | Promise<void>;
  readonly #gate: BatchGate | null;
  readonly #inFlightMax: number;
  #queue: Pending<C, R>[] = [];
  #cancel: (() => void) | null = null;
  /** When the gate was first found closed, for the batch now waiting; null when not waiting. */
  #gateClosedSinceMs: number | null = null;
  /** Batches handed to an asynchronous `write` and not yet back. */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    settings: GroupCommitSettings,
    write: (batch: readonly Pending<C, R>[]) => void | Promise<void>,
    gate: BatchGate | null = null,
    inFlightMax = 1,
  ) {
    this.#settings = settings;
    this.#write = write;
    this.#gate = gate;
    this.#inFlightMax = inFlightMax;
  }

  /** Queues one command; resolves or rejects once the batch holding it is committed (or failed). */
  push(command: C): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ command, resolve, reject });
      // With every batch slot taken, the next one to come back hands this one over.
      if (this.#inFlight.size >= this.#inFlightMax) return;
      if (this.#queue.length >= this.#settings.batchOperationsMax) this.#flush();
      else if (this.#cancel === null) this.#schedule();
    });
  }

  /**
   * Writes everything queued now, batch by batch (for close: no promise is left hanging); with
   * the gate closed, fails it instead, as it could only be written inside the app's transaction.
   */
  drain(): void {
    this.#cancel?.();
    this.#cancel = null;
    if (this.#gate?.closed() === true) this.#failQueued(this.#gate.timedOut());
    while (this.#queue.length > 0) this.#writeNext();
  }

  /**
   * {@link drain} for an asynchronous `write`: hands over everything queued, at most
   * `inFlightMax` batches out at a time, and resolves once every batch has come back.
   */
  async drainAll(): Promise<void> {
    this.#cancel?.();
    this.#cancel = null;
    if (this.#gate?.closed() === true) this.#failQueued(this.#gate.timedOut());
    while (this.#queue.length > 0 || this.#inFlight.size > 0) {
      if (this.#queue.length > 0 && this.#inFlight.size < this.#inFlightMax) this.#writeNext();
      else await Promise.race(this.#inFlight);
    }
  }

  #schedule(): void {
    if (this.#settings.batchWaitMs === 0) {
      const immediate = setImmediate(() => this.#flush());
      this.#cancel = () => clearImmediate(immediate);
    } else {
      const timer = setTimeout(() => this.#flush(), this.#settings.batchWaitMs);
      this.#cancel = () => clearTimeout(timer);
    }
  }

  #flush(): void {
    this.#cancel?.();
    this.#cancel = null;
    if (this.#inFlight.size >= this.#inFlightMax) return;
    if (this.#gate !== null && this.#gate.closed()) {
      this.#waitForGate(this.#gate);
      return;
    }
    this.#gateClosedSinceMs = null;
    this.#writeNext();
    if (this.#queue.length > 0 && this.#inFlight.size < this.#inFlightMax) this.#schedule();
  }

  /** Looks again shortly, or fails what waits once the gate has been closed for too long. */
  #waitForGate(gate: BatchGate): void {
    const nowMs = Date.now();
    this.#gateClosedSinceMs ??= nowMs;
    if (nowMs - this.#gateClosedSinceMs >= gate.waitMsMax) {
      this.#gateClosedSinceMs = null;
      this.#failQueued(gate.timedOut());
      return;
    }
    const timer = setTimeout(() => this.#flush(), GATE_POLL_MS);
    this.#cancel = () => clearTimeout(timer);
  }

  #failQueued(error: unknown): void {
    for (const pending of this.#queue.splice(0)) pending.reject(error);
  }

  #writeNext(): void {
    const batch = this.#queue.splice(0, this.#settings.batchOperationsMax);
    let written: void | Promise<void>;
    try {
      written = this.#write(batch);
    } catch (error) {
      // `write` resolves or rejects every promise itself; this only guards against a bug leaving one
      // hanging (rejecting a finished promise does nothing).
      for (const pending of batch) pending.reject(error);
      return;
    }
    if (written === undefined) return;
    const out: Promise<void> = written.then(
      () => this.#returned(out),
      (error: unknown) => {
        for (const pending of batch) pending.reject(error);
        this.#returned(out);
      },
    );
    this.#inFlight.add(out);
  }

  /**
   * A batch came back: what gathered meanwhile goes out on the next turn, with the operations
   * its callers issue on being answered now (they join, rather than splitting the batch).
   */
  #returned(out: Promise<void>): void {
    this.#inFlight.delete(out);
    if (this.#queue.length > 0 && this.#cancel === null) this.#schedule();
  }
}
