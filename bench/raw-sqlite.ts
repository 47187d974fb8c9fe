/**
 * The SQLite baseline: what a careful programmer writes by hand with better-sqlite3. One
 * `BEGIN IMMEDIATE` transaction per deduct: conditional `UPDATE ... WHERE qty >= ?`, record the
 * request id (a replay if it was there), append an entry, `COMMIT`. Same journal mode (WAL)
 * and the same `synchronous` as the store it is compared with. The batch baseline
 * (bench/raw-sqlite-batch.ts) opens the same schema and runs the same steps per operation.
 *
 * A deduct of several lines takes them one by one and gives back what it took if one is short.
 * Reservations: `levels.qty` is the units free to take (on hand minus held), so a deduct reads
 * nothing else; `levels.reserved` counts what is held, and a reservation row (its id the
 * reserve's request id, a replay if it was there) keeps its state, expiry and lines. A reserve
 * moves units from `qty` to `reserved`; a commit takes them off `reserved` (sold), a release
 * gives them back to `qty`, each once, by a conditional `UPDATE` of the reservation's state that
 * also refuses a held reservation past its expiry. Nothing gives an expired hold back (a sweep
 * would; the bench's holds never expire): safe, it only sells less.
 */
import Database from 'better-sqlite3';
import type { RawLine } from './contenders.js';

/** An operation's outcome; NOT_HELD: a commit or release of a reservation that is not held (`state`, null when unknown). */
export type RawSqliteOutcome =
  | { ok: true; replayed: boolean }
  | { ok: false; code: 'INSUFFICIENT_STOCK' }
  | { ok: false; code: 'NOT_HELD'; state: string | null };

export type Synchronous = 'FULL' | 'NORMAL';

/** The statements of the steps; `seen` runs when an `UPDATE` took nothing, `giveBack` on a replay or a short line. */
interface RawStatements {
  take: Database.Statement<[number, string, number]>;
  remember: Database.Statement<[string]>;
  record: Database.Statement<[string, string, number, number]>;
  seen: Database.Statement<[string]>;
  giveBack: Database.Statement<[number, string]>;
  hold: Database.Statement<[number, number, string, number]>;
  unhold: Database.Statement<[number, number, string]>;
  sell: Database.Statement<[number, string]>;
  open: Database.Statement<[string, number, string]>;
  settle: Database.Statement<[string, string, number]>;
  stateOf: Database.Statement<[string]>;
  recordHeld: Database.Statement<[string, string, number, number, number]>;
}

export interface RawDeduct {
  requestId: string;
  sku: string;
  qty: number;
  at: number;
}

export interface RawDeductLines {
  requestId: string;
  lines: readonly RawLine[];
  at: number;
}

export interface RawReserve extends RawDeductLines {
  expiresAt: number;
}

export interface RawSettle {
  reservationId: string;
  to: 'committed' | 'released';
  at: number;
}

/** The steps of every operation, each to run inside a write transaction. */
export interface RawSteps {
  deduct(d: RawDeduct): RawSqliteOutcome;
  deductLines(d: RawDeductLines): RawSqliteOutcome;
  reserve(d: RawReserve): RawSqliteOutcome;
  settle(d: RawSettle): RawSqliteOutcome;
}

/** Opens (creating if needed) the baseline's file: WAL, the given `synchronous`, four tables. */
export function openRawDatabase(path: string, synchronous: Synchronous): Database.Database {
  const db = new Database(path, { timeout: 5000 });
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS requests (request_id TEXT PRIMARY KEY NOT NULL);
    CREATE TABLE IF NOT EXISTS levels (
      sku TEXT PRIMARY KEY NOT NULL, qty INTEGER NOT NULL CHECK (qty >= 0), reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0)
    );
    CREATE TABLE IF NOT EXISTS entries (
      seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL, sku TEXT NOT NULL, delta INTEGER NOT NULL,
      reserved_delta INTEGER NOT NULL DEFAULT 0, at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL, expires_at INTEGER NOT NULL, lines TEXT NOT NULL);
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
    hold: db.prepare('UPDATE levels SET qty = qty - ?, reserved = reserved + ? WHERE sku = ? AND qty >= ?'),
    unhold: db.prepare('UPDATE levels SET qty = qty + ?, reserved = reserved - ? WHERE sku = ?'),
    sell: db.prepare('UPDATE levels SET reserved = reserved - ? WHERE sku = ?'),
    open: db.prepare("INSERT INTO reservations (id, state, expires_at, lines) VALUES (?, 'held', ?, ?) ON CONFLICT DO NOTHING"),
    settle: db.prepare("UPDATE reservations SET state = ? WHERE id = ? AND state = 'held' AND expires_at > ? RETURNING lines"),
    stateOf: db.prepare('SELECT state, expires_at FROM reservations WHERE id = ?'),
    recordHeld: db.prepare('INSERT INTO entries (request_id, sku, delta, reserved_delta, at) VALUES (?, ?, ?, ?, ?)'),
  };
}

const REPLAYED: RawSqliteOutcome = { ok: true, replayed: true };
const SHORT: RawSqliteOutcome = { ok: false, code: 'INSUFFICIENT_STOCK' };

/**
 * Takes every line with `take` (a conditional `UPDATE`, false when short), all or none: on a
 * short line it gives back the lines taken before it and returns false.
 */
function takeAll(lines: readonly RawLine[], take: (line: RawLine) => boolean, giveBack: (line: RawLine) => void): boolean {
  for (const [i, line] of lines.entries()) {
    if (take(line)) continue;
    for (const taken of lines.slice(0, i)) giveBack(taken);
    return false;
  }
  return true;
}

/**
 * The steps. The conditional `UPDATE` goes first, so a rejection writes nothing (a sold-out SKU
 * costs no fsync; a deduct of several lines writes only what it gives back); a request id seen
 * before is a replay either way, and gives back what the `UPDATE` took.
 */
export function rawSteps(db: Database.Database): RawSteps {
  const sql = rawStatements(db);
  const giveBack = (line: RawLine): void => void sql.giveBack.run(line.qty, line.sku);
  const unhold = (line: RawLine): void => void sql.unhold.run(line.qty, line.qty, line.sku);
  return {
    deduct(d) {
      if (sql.take.run(d.qty, d.sku, d.qty).changes === 0) return sql.seen.get(d.requestId) === undefined ? SHORT : REPLAYED;
      if (sql.remember.run(d.requestId).changes === 0) {
        sql.giveBack.run(d.qty, d.sku);
        return REPLAYED;
      }
      sql.record.run(d.requestId, d.sku, -d.qty, d.at);
      return { ok: true, replayed: false };
    },
    deductLines(d) {
      if (!takeAll(d.lines, (l) => sql.take.run(l.qty, l.sku, l.qty).changes === 1, giveBack)) return sql.seen.get(d.requestId) === undefined ? SHORT : REPLAYED;
      if (sql.remember.run(d.requestId).changes === 0) {
        d.lines.forEach(giveBack);
        return REPLAYED;
      }
      for (const l of d.lines) sql.record.run(d.requestId, l.sku, -l.qty, d.at);
      return { ok: true, replayed: false };
    },
    reserve(d) {
      if (!takeAll(d.lines, (l) => sql.hold.run(l.qty, l.qty, l.sku, l.qty).changes === 1, unhold)) return sql.stateOf.get(d.requestId) === undefined ? SHORT : REPLAYED;
      if (sql.open.run(d.requestId, d.expiresAt, JSON.stringify(d.lines)).changes === 0) {
        d.lines.forEach(unhold);
        return REPLAYED;
      }
      for (const l of d.lines) sql.recordHeld.run(d.requestId, l.sku, 0, l.qty, d.at);
      return { ok: true, replayed: false };
    },
    settle(d) {
      const row = sql.settle.get(d.to, d.reservationId, d.at) as { lines: string } | undefined;
      if (row === undefined) {
        const was = sql.stateOf.get(d.reservationId) as { state: string; expires_at: number } | undefined;
        if (was?.state === d.to) return REPLAYED;
        return { ok: false, code: 'NOT_HELD', state: was === undefined ? null : was.state === 'held' ? 'expired' : was.state };
      }
      for (const l of JSON.parse(row.lines) as RawLine[]) {
        if (d.to === 'committed') sql.sell.run(l.qty, l.sku);
        else unhold(l);
        sql.recordHeld.run(d.reservationId, l.sku, d.to === 'committed' ? -l.qty : 0, -l.qty, d.at);
      }
      return { ok: true, replayed: false };
    },
  };
}

/** Stocks every SKU in one transaction (setup, not measured). */
export function restockAll(db: Database.Database, skus: readonly string[], qty: number): void {
  const upsert = db.prepare('INSERT INTO levels (sku, qty) VALUES (?, ?) ON CONFLICT (sku) DO UPDATE SET qty = qty + excluded.qty');
  db.transaction(() => {
    for (const sku of skus) upsert.run(sku, qty);
  }).immediate();
}

/** On hand (free plus held) and reserved, summed over `skus`. */
export function totalsOf(db: Database.Database, skus: readonly string[]): { onHand: number; reserved: number } {
  const read = db.prepare<[string], { qty: number; reserved: number }>('SELECT qty, reserved FROM levels WHERE sku = ?');
  let onHand = 0;
  let reserved = 0;
  for (const sku of skus) {
    const level = read.get(sku);
    onHand += (level?.qty ?? 0) + (level?.reserved ?? 0);
    reserved += level?.reserved ?? 0;
  }
  return { onHand, reserved };
}

export class RawSqliteStock {
  readonly #db: Database.Database;
  readonly #steps: RawSteps;

  constructor(options: { path: string; synchronous: Synchronous }) {
    this.#db = openRawDatabase(options.path, options.synchronous);
    const steps = rawSteps(this.#db);
    this.#steps = {
      deduct: this.#db.transaction(steps.deduct).immediate,
      deductLines: this.#db.transaction(steps.deductLines).immediate,
      reserve: this.#db.transaction(steps.reserve).immediate,
      settle: this.#db.transaction(steps.settle).immediate,
    };
  }

  async restockAll(skus: readonly string[], qty: number): Promise<void> {
    restockAll(this.#db, skus, qty);
  }

  async deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawSqliteOutcome> {
    return this.#steps.deduct({ ...options, at: Date.now() });
  }

  async deductLines(options: { requestId: string; lines: readonly RawLine[] }): Promise<RawSqliteOutcome> {
    return this.#steps.deductLines({ ...options, at: Date.now() });
  }

  async reserve(options: { requestId: string; lines: readonly RawLine[]; ttlMs: number }): Promise<RawSqliteOutcome> {
    const at = Date.now();
    return this.#steps.reserve({ requestId: options.requestId, lines: options.lines, expiresAt: at + options.ttlMs, at });
  }

  async commit(reservationId: string): Promise<RawSqliteOutcome> {
    return this.#steps.settle({ reservationId, to: 'committed', at: Date.now() });
  }

  async release(reservationId: string): Promise<RawSqliteOutcome> {
    return this.#steps.settle({ reservationId, to: 'released', at: Date.now() });
  }

  async totals(skus: readonly string[]): Promise<{ onHand: number; reserved: number }> {
    return totalsOf(this.#db, skus);
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
