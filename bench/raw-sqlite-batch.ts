/**
 * The batching SQLite baseline: the same schema and statements as bench/raw-sqlite.ts, but
 * deducts that arrive while the event loop is busy queue up, and one `BEGIN IMMEDIATE`
 * transaction applies up to `batchOperationsMax` of them, so one fsync covers the batch.
 *
 * Per deduct it runs the very step of the one-transaction-per-deduct loop (`rawDeductStep`):
 * conditional `UPDATE`, record the request id, append an entry. A rejection writes nothing, so
 * it needs no rollback inside the shared transaction.
 */
import type Database from 'better-sqlite3';
import { onHandOf, openRawDatabase, rawDeductStep, restockAll, type RawDeduct, type RawSqliteOutcome, type Synchronous } from './raw-sqlite.js';

interface Pending extends RawDeduct {
  resolve: (outcome: RawSqliteOutcome) => void;
  reject: (error: Error) => void;
}

export class RawSqliteBatch {
  readonly #db: Database.Database;
  readonly #batchOperationsMax: number;
  readonly #apply: (batch: readonly Pending[]) => RawSqliteOutcome[];
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(options: { path: string; synchronous: Synchronous; batchOperationsMax: number }) {
    this.#db = openRawDatabase(options.path, options.synchronous);
    this.#batchOperationsMax = options.batchOperationsMax;
    const step = rawDeductStep(this.#db);
    this.#apply = this.#db.transaction((batch: readonly Pending[]) => batch.map(step)).immediate;
  }

  async restockAll(skus: readonly string[], qty: number): Promise<void> {
    restockAll(this.#db, skus, qty);
  }

  /** Queues the deduct; it is applied, with whatever else queued, once the event loop is free. */
  deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawSqliteOutcome> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ ...options, at: Date.now(), resolve, reject });
      this.#schedule();
    });
  }

  async onHand(sku: string): Promise<number> {
    return onHandOf(this.#db, sku);
  }

  async close(): Promise<void> {
    const left = this.#queue.splice(0);
    for (const p of left) p.reject(new Error('raw SQLite batch closed'));
    this.#db.close();
  }

  /** setImmediate, not a microtask: every deduct issued in this turn joins the batch. */
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
