/**
 * SQLite with `writerThread: true`: batches are written by a worker thread on its own
 * connection, so the app's event loop keeps running while a batch commits (or waits for the
 * write lock, or fsyncs), and an operation is still acknowledged only after its COMMIT. The
 * whole conformance suite runs against it; the cases below check ordering and progress, never
 * durations.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StockLedger, isStockLedgerError, type OperationResult } from 'stock-ledger';
import { SqliteStore, type SqliteStoreOptions } from 'stock-ledger/sqlite';
import { conformanceCases } from 'stock-ledger/testing';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-sqlite-overlap-'));
let files = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const freshPath = (): string => join(dir, `ledger-${(files += 1)}.db`);

type FileOptions = Omit<SqliteStoreOptions, 'path' | 'database'>;
const codeOf = (error: unknown): unknown => (isStockLedgerError(error) ? error.code : error);
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function open(options: FileOptions = {}, path = freshPath()): { ledger: StockLedger; store: SqliteStore; path: string } {
  const store = new SqliteStore({ writerThread: true, ...options, path });
  return { ledger: new StockLedger({ store, retry: false }), store, path };
}

/** Units on hand of `sku`, read on a connection of its own: what is on the file. */
function onHandOnFile(path: string, sku: string): number | undefined {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT on_hand FROM stock_ledger_levels WHERE sku = ?').get(sku) as { on_hand: number } | undefined)?.on_hand;
  } finally {
    db.close();
  }
}

describe('conformance, writer thread', () => {
  // The same suite, unchanged, on a fresh file per store.
  for (const c of conformanceCases({ name: 'sqlite (writer thread)', createStore: () => new SqliteStore({ writerThread: true, path: freshPath() }) })) {
    it(c.name, c.run, c.timeoutMs);
  }
});

describe('SQLite writer thread: the event loop runs while a batch is written', () => {
  it('an immediate queued after a big batch at synchronous=FULL runs before any of it is acknowledged', async () => {
    const { ledger } = open({ durability: 'full', groupCommit: { batchOperationsMax: 1000 } });
    const skus = Array.from({ length: 1000 }, (_, i) => `SKU-${i}`);
    for (let i = 0; i < skus.length; i += 100) await ledger.restock({ requestId: `r${i}`, lines: skus.slice(i, i + 100).map((sku) => ({ sku, qty: 5 })) });
    const order: string[] = [];
    const batch = skus.map((sku, i) => ledger.deduct({ requestId: `d${i}`, sku, qty: 1 }).then((r) => {
      order.push('acknowledged');
      return r;
    }));
    // The batch goes out on the next turn; this immediate is queued behind that flush.
    setImmediate(() => order.push('immediate'));
    const results = await Promise.all(batch);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(order[0]).toBe('immediate');
    expect(order.filter((o) => o === 'acknowledged')).toHaveLength(1000);
    await ledger.close();
  });

  it('timers keep firing while the writer waits for the write lock; the operation is acknowledged after it commits', async () => {
    const { ledger, store, path } = open();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    // Another connection holds the write lock: the writer thread waits for it (busy timeout 5 s).
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    let acknowledged = false;
    const deduct = ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 }).then((r) => {
      acknowledged = true;
      return r;
    });
    let ticks = 0;
    const interval = setInterval(() => (ticks += 1), 1);
    while (ticks < 5) await new Promise((resolve) => setTimeout(resolve, 1));
    clearInterval(interval);
    // Five timer turns went by on this thread while the batch could not commit.
    expect(acknowledged).toBe(false);
    expect(onHandOnFile(path, 'A')).toBe(5);
    other.exec('COMMIT');
    other.close();
    expect(await deduct).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 3 }] });
    // Acknowledged means committed: another connection sees it.
    expect(onHandOnFile(path, 'A')).toBe(3);
    await store.close();
  });

  it('without the writer thread, the same immediate runs only after the batch is acknowledged (the batch blocks the loop)', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path });
    const ledger = new StockLedger({ store, retry: false });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 50 });
    const order: string[] = [];
    const batch = Array.from({ length: 10 }, (_, i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 }).then(() => order.push('acknowledged')));
    setImmediate(() => order.push('immediate'));
    await Promise.all(batch);
    await nextTurn();
    expect(order.indexOf('immediate')).toBe(10);
    await ledger.close();
  });
});

describe('SQLite writer thread: errors, close, options', () => {
  it('a write lock held past the busy timeout fails the batch with STORE_UNAVAILABLE, nothing written', async () => {
    const { ledger, store, path } = open({ busyTimeoutMs: 50 });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const error = await ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 }).then(() => null, (e: unknown) => e);
    other.exec('ROLLBACK');
    other.close();
    expect(codeOf(error)).toBe('STORE_UNAVAILABLE');
    expect(error).toMatchObject({ retry: 'operation' });
    expect(await ledger.request('d')).toBeNull();
    // Retrying the same request is safe and now succeeds.
    expect(await ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 })).toMatchObject({ ok: true, replayed: false });
    await store.close();
  });

  it("the library's errors thrown inside the writer's transaction keep their class, code and fields; the rest of the batch is written", async () => {
    const { ledger, store } = open();
    await ledger.restock({ requestId: 'r', lines: [{ sku: 'A', qty: 5 }, { sku: 'B', qty: 5 }] });
    await ledger.setPolicyOrThrow({ requestId: 'limit', sku: 'A', buyerMax: 1 });
    const [limited, other] = await Promise.allSettled([
      ledger.deduct({ requestId: 'no-buyer', sku: 'A', qty: 1 }),
      ledger.deduct({ requestId: 'fine', sku: 'B', qty: 1 }),
    ]);
    expect(limited.status).toBe('rejected');
    const reason = (limited as PromiseRejectedResult).reason as Error & { code: string; field: string };
    expect(isStockLedgerError(reason)).toBe(true);
    expect(reason.constructor.name).toBe('InvalidInputError');
    expect(reason).toMatchObject({ code: 'INVALID_INPUT', field: 'buyer' });
    expect(reason.message).toMatch(/^buyer: is required/);
    expect(other).toMatchObject({ status: 'fulfilled', value: { ok: true } });
    await store.close();
  });

  it('an idempotency conflict crosses back as IdempotencyConflictError', async () => {
    const { ledger, store } = open();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    await ledger.deduct({ requestId: 'd', sku: 'A', qty: 1 });
    const error = await ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 }).then(() => null, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT', requestId: 'd', storedKind: 'deduct' });
    expect((error as Error).constructor.name).toBe('IdempotencyConflictError');
    await store.close();
  });

  it('close() writes every accepted operation, then later ones fail with STORE_UNAVAILABLE', async () => {
    const { ledger, store, path } = open({ groupCommit: { batchOperationsMax: 7 } });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 100 });
    const accepted = Array.from({ length: 50 }, (_, i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 }));
    const closing = store.close();
    const results = await Promise.all(accepted);
    await closing;
    expect(results.every((r) => r.ok)).toBe(true);
    expect(onHandOnFile(path, 'A')).toBe(50);
    const late = await ledger.deduct({ requestId: 'late', sku: 'A', qty: 1 }).then(() => null, (e: unknown) => e);
    expect(codeOf(late)).toBe('STORE_UNAVAILABLE');
    await store.close();
  });

  it('refuses what the thread cannot do: a database handed in, :memory:, no group commit, a non-boolean', () => {
    const db = new Database(':memory:');
    expect(() => new SqliteStore({ database: db, writerThread: true })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', field: 'writerThread' }));
    db.close();
    expect(() => new SqliteStore({ path: ':memory:', writerThread: true })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', field: 'writerThread' }));
    expect(() => new SqliteStore({ path: freshPath(), writerThread: true, groupCommit: false })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', field: 'writerThread' }));
    expect(() => new SqliteStore({ path: freshPath(), writerThread: 'yes' as never })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', field: 'writerThread' }));
  });
});

describe("SQLite writer thread: the app's transaction on store.database", () => {
  it('a joined operation runs in it on the main connection; a rollback undoes it', async () => {
    const { ledger, store } = open();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    const db = store.database;
    db.exec('BEGIN');
    const joined = await ledger.deduct({ requestId: 'joined', sku: 'A', qty: 2 }, { transaction: db });
    expect(joined).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 3 }] });
    db.exec('ROLLBACK');
    expect(await ledger.stock('A')).toMatchObject({ onHand: 5 });
    expect(await ledger.request('joined')).toBeNull();
    await store.close();
  });

  it("an operation not asked to join waits for the app's transaction to end, then is written once", async () => {
    const { ledger, store } = open();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    const db = store.database;
    db.exec('BEGIN');
    let settled = false;
    const unrelated = ledger.deduct({ requestId: 'other', sku: 'A', qty: 2 }).finally(() => (settled = true));
    for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(settled).toBe(false);
    db.exec('ROLLBACK');
    expect(await unrelated).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 3 }] });
    expect(await ledger.stock('A')).toMatchObject({ onHand: 3, version: 2 });
    await store.close();
  });
});

describe('SQLite writer thread: several stores on one file', () => {
  it('two stores (two threads) and a default store never oversell one SKU together', async () => {
    const path = freshPath();
    const a = open({}, path);
    const b = open({}, path);
    const c = new StockLedger({ store: new SqliteStore({ path }), retry: false });
    await a.ledger.restock({ requestId: 'r', sku: 'A', qty: 100 });
    const calls: Array<Promise<OperationResult>> = [];
    for (let i = 0; i < 150; i += 1) {
      const ledger = [a.ledger, b.ledger, c][i % 3] as StockLedger;
      calls.push(ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 }));
    }
    const results = await Promise.all(calls);
    expect(results.filter((r) => r.ok)).toHaveLength(100);
    expect(await c.stock('A')).toMatchObject({ onHand: 0, version: 101 });
    await Promise.all([a.ledger.close(), b.ledger.close(), c.close()]);
  });
});
