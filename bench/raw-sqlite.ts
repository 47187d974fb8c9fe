/**
 * The SQLite baseline: what a careful programmer writes by hand with better-sqlite3. One
 * `BEGIN IMMEDIATE` transaction per deduct: record the request id (a replay if it was there),
 * conditional `UPDATE ... WHERE qty >= ?`, append an entry, `COMMIT`. Same journal mode (WAL)
 * and the same `synchronous` as the store it is compared with.
 */
import Database from 'better-sqlite3';

export type RawSqliteOutcome = { ok: true; replayed: boolean } | { ok: false; code: 'INSUFFICIENT_STOCK' };

/** Thrown inside the transaction to roll back the request row of a rejected deduct. */
class Insufficient extends Error {}

export class RawSqliteStock {
  readonly #db: Database.Database;
  readonly #deduct: (requestId: string, sku: string, qty: number, at: number) => RawSqliteOutcome;

  constructor(options: { path: string; synchronous: 'FULL' | 'NORMAL' }) {
    this.#db = new Database(options.path, { timeout: 5000 });
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma(`synchronous = ${options.synchronous}`);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS requests (request_id TEXT PRIMARY KEY NOT NULL);
      CREATE TABLE IF NOT EXISTS levels (sku TEXT PRIMARY KEY NOT NULL, qty INTEGER NOT NULL CHECK (qty >= 0));
      CREATE TABLE IF NOT EXISTS entries (
        seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL, sku TEXT NOT NULL, delta INTEGER NOT NULL, at INTEGER NOT NULL
      );
    `);
    const remember = this.#db.prepare('INSERT INTO requests (request_id) VALUES (?) ON CONFLICT DO NOTHING');
    const take = this.#db.prepare('UPDATE levels SET qty = qty - ? WHERE sku = ? AND qty >= ?');
    const record = this.#db.prepare('INSERT INTO entries (request_id, sku, delta, at) VALUES (?, ?, ?, ?)');
    const step = this.#db.transaction((requestId: string, sku: string, qty: number, at: number): RawSqliteOutcome => {
      if (remember.run(requestId).changes === 0) return { ok: true, replayed: true };
      if (take.run(qty, sku, qty).changes === 0) throw new Insufficient();
      record.run(requestId, sku, -qty, at);
      return { ok: true, replayed: false };
    });
    this.#deduct = (requestId, sku, qty, at) => {
      try {
        return step.immediate(requestId, sku, qty, at);
      } catch (error) {
        if (error instanceof Insufficient) return { ok: false, code: 'INSUFFICIENT_STOCK' };
        throw error;
      }
    };
  }

  async restock(options: { sku: string; qty: number }): Promise<void> {
    this.#db
      .prepare('INSERT INTO levels (sku, qty) VALUES (?, ?) ON CONFLICT (sku) DO UPDATE SET qty = qty + excluded.qty')
      .run(options.sku, options.qty);
  }

  async deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawSqliteOutcome> {
    return this.#deduct(options.requestId, options.sku, options.qty, Date.now());
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
