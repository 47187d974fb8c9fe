/**
 * The batching SQLite baseline: the same schema and statements as bench/raw-sqlite.ts, but
 * operations that arrive while the event loop is busy queue up, and one `BEGIN IMMEDIATE`
 * transaction applies up to `batchOperationsMax` of them, so one fsync covers the batch.
 *
 * Per operation it runs the very step of the one-transaction-per-operation loop (`rawSteps`):
 * for a deduct, conditional `UPDATE`, record the request id, append an entry. A rejection
 * leaves nothing behind (a short line of a deduct gives back the lines taken before it), so it
 * needs no rollback inside the shared transaction.
 */
import type Database from 'better-sqlite3';
import type { RawLine } from './contenders.js';
import { openRawDatabase, rawSteps, restockAll, totalsOf, type RawSqliteOutcome, type RawSteps, type Synchronous } from './raw-sqlite.js';

interface Pending {
  /** Runs the operation's step, inside the batch's transaction. */
  apply: () => RawSqliteOutcome;
  resolve: (outcome: RawSqliteOutcome) => void;
  reject: (error: Error) => void;
}

export class RawSqliteBatch {
  readonly #db: Database.Database;
  readonly #batchOperationsMax: number;
  readonly #steps: RawSteps;
  readonly #apply: (batch: readonly Pending[]) => RawSqliteOutcome[];
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(options: { path: string; synchronous: Synchronous; batchOperationsMax: number }) {
    this.#db = openRawDatabase(options.path, options.synchronous);
    this.#batchOperationsMax = options.batchOperationsMax;
    this.#steps = rawSteps(this.#db);
    this.#apply = this.#db.transaction((batch: readonly Pending[]) => batch.map((p) => p.apply())).immediate;
  }

  async restockAll(skus: readonly string[], qty: number): Promise<void> {
    restockAll(this.#db, skus, qty);
  }

  /** Queues the deduct; it is applied, with whatever else queued, once the event loop is free. */
  deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawSqliteOutcome> {
    const d = { ...options, at: Date.now() };
    return this.#enqueue(() => this.#steps.deduct(d));
  }

  deductLines(options: { requestId: string; lines: readonly RawLine[] }): Promise<RawSqliteOutcome> {
    const d = { ...options, at: Date.now() };
    return this.#enqueue(() => this.#steps.deductLines(d));
  }

  reserve(options: { requestId: string; lines: readonly RawLine[]; ttlMs: number }): Promise<RawSqliteOutcome> {
    const at = Date.now();
    const d = { requestId: options.requestId, lines: options.lines, expiresAt: at + options.ttlMs, at };
    return this.#enqueue(() => this.#steps.reserve(d));
  }

  commit(reservationId: string): Promise<RawSqliteOutcome> {
    const d = { reservationId, to: 'committed' as const, at: Date.now() };
    return this.#enqueue(() => this.#steps.settle(d));
  }

  release(reservationId: string): Promise<RawSqliteOutcome> {
    const d = { reservationId, to: 'released' as const, at: Date.now() };
    return this.#enqueue(() => this.#steps.settle(d));
  }

  async totals(skus: readonly string[]): Promise<{ onHand: number; reserved: number }> {
    return totalsOf(this.#db, skus);
  }

  async close(): Promise<void> {
    const left = this.#queue.splice(0);
    for (const p of left) p.reject(new Error('raw SQLite batch closed'));
    this.#db.close();
  }

  #enqueue(apply: () => RawSqliteOutcome): Promise<RawSqliteOutcome> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ apply, resolve, reject });
      this.#schedule();
    });
  }

  /** setImmediate, not a microtask: every operation issued in this turn joins the batch. */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    if (!this.#db.open) return;
    const batch = this.#queue.splice(0, this.#batchOperationsMax);
    if (this.#queue.length > 0) this.#schedule();
    if (batch.length === 0) return;
    let outcomes: RawSqliteOutcome[];
    try {
      outcomes = this.#apply(batch);
    } catch (error) {
      for (const p of batch) p.reject(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    for (const [i, p] of batch.entries()) p.resolve(outcomes[i] as RawSqliteOutcome);
  }
}
