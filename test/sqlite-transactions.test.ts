/**
 * SQLite and the app's own transaction on a shared connection: an operation joins it only when
 * the call hands it in (`{ transaction: database }`), as a savepoint; every other operation
 * waits until the app's transaction has ended, so an app's rollback never undoes an operation
 * it did not ask to join. Both with group commit and with one transaction per operation.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StockLedger, isStockLedgerError, type OperationResult } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { SqliteStore } from 'stock-ledger/sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir = '';
let files = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stock-ledger-sqlite-transactions-'));
});
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

type Db = InstanceType<typeof Database>;

/** The app's database (with its own orders table) and a ledger on the same connection. */
function appDatabase(options: { groupCommit?: boolean; busyTimeoutMs?: number } = {}): { db: Db; ledger: StockLedger } {
  const db = new Database(join(dir, `app-${(files += 1)}.db`));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER NOT NULL)');
  const store = new SqliteStore({ database: db, ...options });
  return { db, ledger: new StockLedger({ store }) };
}

const orders = (db: Db): unknown[] => db.prepare('SELECT id FROM orders ORDER BY id').all();

/** Whether the promise has finished after `ms` of real time. */
async function finishedWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let finished = false;
  p.then(() => (finished = true), () => (finished = true));
  await new Promise((resolve) => setTimeout(resolve, ms));
  return finished;
}

const codeOf = (error: unknown): unknown => (isStockLedgerError(error) ? error.code : error);

describe.each([
  ['group commit', true],
  ['one transaction per operation', false],
] as const)("SQLite, %s: an operation not asked to join never runs inside the app's transaction", (_, groupCommit) => {
  it("waits for the app's transaction to end: the app's rollback does not undo it", async () => {
    const { db, ledger } = appDatabase({ groupCommit });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    db.exec('BEGIN');
    db.prepare('INSERT INTO orders (id, total) VALUES (?, ?)').run('app-order', 1);
    const unrelated = ledger.deduct({ requestId: 'other-caller', sku: 'A', qty: 2 });
    expect(await finishedWithin(unrelated, 60)).toBe(false);
    db.exec('ROLLBACK');
    const result = await unrelated;
    expect(result).toMatchObject({ ok: true, replayed: false, levels: [{ sku: 'A', onHand: 3 }] });
    expect(orders(db)).toEqual([]);
    // Applied for good: outside any transaction, on the file.
    expect(db.inTransaction).toBe(false);
    expect(await ledger.request('other-caller')).toMatchObject({ kind: 'deduct' });
    expect(await ledger.stock('A')).toMatchObject({ onHand: 3, version: 2 });
    await ledger.close();
    db.close();
  });

  it("is written after the app's commit, once, beside the app's own rows", async () => {
    const { db, ledger } = appDatabase({ groupCommit });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    db.exec('BEGIN');
    db.prepare('INSERT INTO orders (id, total) VALUES (?, ?)').run('app-order', 1);
    const unrelated = [1, 2, 3].map((i) => ledger.deduct({ requestId: `caller-${i}`, sku: 'A', qty: 1 }));
    expect(await finishedWithin(Promise.all(unrelated), 30)).toBe(false);
    db.exec('COMMIT');
    expect((await Promise.all(unrelated)).map((r) => r.ok)).toEqual([true, true, true]);
    expect(orders(db)).toEqual([{ id: 'app-order' }]);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 2, version: 4 });
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
    db.close();
  });

  it('fails with STORE_UNAVAILABLE after the busy timeout, having written nothing; the same id applies later', async () => {
    const { db, ledger } = appDatabase({ groupCommit, busyTimeoutMs: 80 });
    const noRetry = new StockLedger({ store: ledger.store, retry: false });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    db.exec('BEGIN');
    const error = await noRetry.deduct({ requestId: 'late', sku: 'A', qty: 1 }).then(() => null, (e: unknown) => e);
    expect(codeOf(error)).toBe('STORE_UNAVAILABLE');
    expect(String(error)).toMatch(/transaction of the app's stayed open/);
    db.exec('ROLLBACK');
    expect(await ledger.request('late')).toBeNull();
    expect(await noRetry.deduct({ requestId: 'late', sku: 'A', qty: 1 })).toMatchObject({ ok: true, replayed: false });
    await ledger.close();
    db.close();
  });

  it("joins when the call hands the transaction in: the order row and the deduct commit together", async () => {
    const { db, ledger } = appDatabase({ groupCommit });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    db.exec('BEGIN');
    db.prepare('INSERT INTO orders (id, total) VALUES (?, ?)').run('order-1', 2);
    const joined = await ledger.deduct({ requestId: 'order-1', sku: 'A', qty: 2 }, { transaction: db });
    expect(joined).toMatchObject({ ok: true, replayed: false, levels: [{ sku: 'A', onHand: 3 }] });
    expect(db.inTransaction).toBe(true); // still the app's: the ledger never commits it
    db.exec('COMMIT');
    expect(orders(db)).toEqual([{ id: 'order-1' }]);
    expect(await ledger.request('order-1')).toMatchObject({ kind: 'deduct' });
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
    db.close();
  });

  it('a joined operation is undone by the app rollback, and the retry then applies', async () => {
    const { db, ledger } = appDatabase({ groupCommit });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    const attempt = async (commit: boolean): Promise<OperationResult> => {
      db.exec('BEGIN');
      db.prepare('INSERT INTO orders (id, total) VALUES (?, ?)').run('order-1', 2);
      const r = await ledger.deduct({ requestId: 'order-1', sku: 'A', qty: 2 }, { transaction: db });
      db.exec(commit ? 'COMMIT' : 'ROLLBACK');
      return r;
    };
    expect((await attempt(false)).ok).toBe(true);
    expect(orders(db)).toEqual([]);
    expect(await ledger.request('order-1')).toBeNull();
    expect(await ledger.stock('A')).toMatchObject({ onHand: 5, version: 1 });
    expect(await attempt(true)).toMatchObject({ ok: true, replayed: false });
    expect(await ledger.stock('A')).toMatchObject({ onHand: 3, version: 2 });
    await ledger.close();
    db.close();
  });

  it("a rejection or a failure inside the app's transaction leaves it usable", async () => {
    const { db, ledger } = appDatabase({ groupCommit });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 1 });
    await ledger.restock({ requestId: 'r2', sku: 'B', qty: 1 });
    db.exec('BEGIN');
    db.prepare('INSERT INTO orders (id, total) VALUES (?, ?)').run('order-1', 1);
    expect(await ledger.deduct({ requestId: 'too-many', sku: 'A', qty: 9 }, { transaction: db })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
    // A write that throws midway (after its level, at its entry) is rolled back to its savepoint.
    db.exec("CREATE TEMP TRIGGER poison AFTER INSERT ON stock_ledger_entries WHEN NEW.request_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
    const failed = await ledger.deduct({ requestId: 'poison', sku: 'B', qty: 1 }, { transaction: db }).then(() => null, (e: unknown) => e);
    expect(codeOf(failed)).toBe('INVARIANT_VIOLATION');
    expect(db.inTransaction).toBe(true);
    expect(await ledger.deduct({ requestId: 'fits', sku: 'A', qty: 1 }, { transaction: db })).toMatchObject({ ok: true });
    db.exec('COMMIT');
    db.exec('DROP TRIGGER poison');
    expect(orders(db)).toEqual([{ id: 'order-1' }]);
    expect(await ledger.stocks(['A', 'B'])).toMatchObject([{ onHand: 0, version: 2 }, { onHand: 1, version: 1 }]);
    expect(await ledger.request('poison')).toBeNull();
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
    db.close();
  });
});

describe('SQLite: handing a transaction in', () => {
  it('is INVALID_INPUT without an open transaction, or with another database', async () => {
    const { db, ledger } = appDatabase();
    const other = new Database(':memory:');
    const bad = [
      await ledger.restock({ requestId: 'r1', sku: 'A', qty: 1 }, { transaction: db }).then(() => null, (e: unknown) => e),
      await ledger.restock({ requestId: 'r1', sku: 'A', qty: 1 }, { transaction: other }).then(() => null, (e: unknown) => e),
      await ledger.restock({ requestId: 'r1', sku: 'A', qty: 1 }, { transaction: 'db' }).then(() => null, (e: unknown) => e),
    ];
    expect(bad.map(codeOf)).toEqual(['INVALID_INPUT', 'INVALID_INPUT', 'INVALID_INPUT']);
    expect(await ledger.request('r1')).toBeNull();
    other.close();
    await ledger.close();
    db.close();
  });

  it('is INVALID_INPUT on a store that cannot join a transaction', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const error = await ledger.deduct({ requestId: 'd', sku: 'A', qty: 1 }, { transaction: {} }).then(() => null, (e: unknown) => e);
    expect(codeOf(error)).toBe('INVALID_INPUT');
  });

  it('is never retried by the ledger: a lock held elsewhere fails the joined call once, fast', async () => {
    const { db, ledger } = appDatabase({ busyTimeoutMs: 30 });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    const elsewhere = new Database(db.name);
    elsewhere.exec('BEGIN IMMEDIATE');
    db.exec('BEGIN'); // deferred: takes the write lock on its first write
    const error = await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 1 }, { transaction: db }).then(() => null, (e: unknown) => e);
    expect(codeOf(error)).toBe('STORE_UNAVAILABLE');
    expect((error as { attempts: number }).attempts).toBe(1);
    expect((error as { retry: string }).retry).toBe('transaction'); // the app's whole transaction, not the call
    db.exec('ROLLBACK');
    elsewhere.exec('ROLLBACK');
    elsewhere.close();
    expect(await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 1 })).toMatchObject({ ok: true, replayed: false });
    await ledger.close();
    db.close();
  });
});
