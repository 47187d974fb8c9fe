/**
 * The SQLite baseline: what a careful programmer writes by hand with better-sqlite3. One
 * `BEGIN IMMEDIATE` transaction per deduct: conditional `UPDATE ... WHERE qty >= ?`, record the
 * request id (a replay if it was there), append an entry, `COMMIT`. Same journal mode (WAL)
 * and the same `synchronous` as the store it is compared with. The batch baseline
 * (bench/raw-sqlite-batch.ts) opens the same schema and runs the same step per deduct.
 */
import Database from 'better-sqlite3';

export type RawSqliteOutcome = { ok: true; replayed: boolean } | { ok: false; code: 'INSUFFICIENT_STOCK' };

export type Synchronous = 'FULL' | 'NORMAL';

/** The statements of one deduct; `seen` runs when the `UPDATE` took nothing, `giveBack` on a replay. */
interface RawStatements {
  take: Database.Statement<[number, string, number]>;
  remember: Database.Statement<[string]>;
  record: Database.Statement<[string, string, number, number]>;
  seen: Database.Statement<[string]>;
  giveBack: Database.Statement<[number, string]>;
}

export interface RawDeduct {
  requestId: string;
  sku: string;
  qty: number;
  at: number;
}

/** Opens (creating if needed) the baseline's file: WAL, the given `synchronous`, three tables. */
export function openRawDatabase(path: string, synchronous: Synchronous): Database.Database {
  const db = new Database(path, { timeout: 5000 });
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS requests (request_id TEXT PRIMARY KEY NOT NULL);
    CREATE TABLE IF NOT EXISTS levels (sku TEXT PRIMARY KEY NOT NULL, qty INTEGER NOT NULL CHECK (qty >= 0));
    CREATE TABLE IF NOT EXISTS entries (
      seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL, sku TEXT NOT NULL, delta INTEGER NOT NULL, at INTEGER NOT NULL
    );
  `);
  return db;
}

function rawStatements(db: Database.Database): RawStatements {
  return {
    take: db.prepare('UPDATE levels SET qty = qty - ? WHERE sku = ? AND qty >= ?'),
    remember: db.prepare('INSERT INTO requests (request_id) VALUES (?) ON CONFLICT DO NOTHING'),
    record: db.prepare('INSERT INTO entries (request_id, sku, delta, at) VALUES (?, ?, ?, ?)'),
    seen: db.prepare('SELECT 1 FROM requests WHERE request_id = ?'),
    giveBack: db.prepare('UPDATE levels SET qty = qty + ? WHERE sku = ?'),
  };
}

/**
 * One idempotent conditional deduct, to run inside a write transaction. The conditional
 * `UPDATE` goes first, so a rejection writes nothing (a sold-out SKU costs no fsync); a request
 * id seen before is a replay either way, and gives back what the `UPDATE` took.
 */
export function rawDeductStep(db: Database.Database): (d: RawDeduct) => RawSqliteOutcome {
  const sql = rawStatements(db);
  return (d) => {
    if (sql.take.run(d.qty, d.sku, d.qty).changes === 0) {
      return sql.seen.get(d.requestId) === undefined ? { ok: false, code: 'INSUFFICIENT_STOCK' } : { ok: true, replayed: true };
    }
    if (sql.remember.run(d.requestId).changes === 0) {
      sql.giveBack.run(d.qty, d.sku);
      return { ok: true, replayed: true };
    }
    sql.record.run(d.requestId, d.sku, -d.qty, d.at);
    return { ok: true, replayed: false };
  };
}

/** Stocks every SKU in one transaction (setup, not measured). */
export function restockAll(db: Database.Database, skus: readonly string[], qty: number): void {
  const upsert = db.prepare('INSERT INTO levels (sku, qty) VALUES (?, ?) ON CONFLICT (sku) DO UPDATE SET qty = qty + excluded.qty');
  db.transaction(() => {
    for (const sku of skus) upsert.run(sku, qty);
  }).immediate();
}

export function onHandOf(db: Database.Database, sku: string): number {
  return (db.prepare('SELECT qty FROM levels WHERE sku = ?').get(sku) as { qty: number } | undefined)?.qty ?? 0;
}

export class RawSqliteStock {
  readonly #db: Database.Database;
  readonly #deduct: (d: RawDeduct) => RawSqliteOutcome;

  constructor(options: { path: string; synchronous: Synchronous }) {
    this.#db = openRawDatabase(options.path, options.synchronous);
    this.#deduct = this.#db.transaction(rawDeductStep(this.#db)).immediate;
  }

  async restockAll(skus: readonly string[], qty: number): Promise<void> {
    restockAll(this.#db, skus, qty);
  }

  async deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawSqliteOutcome> {
    return this.#deduct({ ...options, at: Date.now() });
  }

  async onHand(sku: string): Promise<number> {
    return onHandOf(this.#db, sku);
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
