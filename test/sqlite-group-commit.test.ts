/**
 * SQLite group commit: operations issued together share one transaction, each keeps its own
 * outcome (the one the sequential order of the batch gives), a command that throws is undone
 * alone, a failed BEGIN or COMMIT fails the whole batch, and a sold-out deduct writes nothing.
 *
 * Transactions are counted from the outside, in the WAL file: every commit that wrote appends
 * frames, the last one marked as a commit frame. Autocheckpointing is off in these tests, so
 * the WAL only grows.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { LIMITS, StockLedger, isStockLedgerError, type OperationResult } from 'stock-ledger';
import { SqliteStore, type SqliteStoreOptions } from 'stock-ledger/sqlite';
import { readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir = '';
let files = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stock-ledger-sqlite-group-commit-'));
});
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});
const freshPath = (): string => join(dir, `ledger-${(files += 1)}.db`);

type FileOptions = Omit<SqliteStoreOptions, 'path' | 'database'>;
const CLOCK_MS = 1_700_000_000_000;

interface Opened {
  ledger: StockLedger;
  store: SqliteStore;
  path: string;
  /** Transactions that wrote since the store was opened (creating the schema is one). */
  commits: () => number;
}

/** A ledger on a fresh file, a fixed clock (so two runs give equal entries), no retries, no autocheckpoint. */
function open(options: FileOptions = {}, path = freshPath()): Opened {
  const store = new SqliteStore({ ...options, path });
  store.database.pragma('wal_autocheckpoint = 0');
  const base = walCommits(path);
  return { ledger: new StockLedger({ store, retry: false, clock: () => CLOCK_MS }), store, path, commits: () => walCommits(path) - base };
}

/** Commit frames in the current WAL generation: one per transaction that wrote something. */
function walCommits(path: string): number {
  if (!existsSync(`${path}-wal`)) return 0;
  const wal = readFileSync(`${path}-wal`);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const [salt1, salt2] = [wal.readUInt32BE(16), wal.readUInt32BE(20)];
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    // Frames of an older generation carry other salts: the current generation ends there.
    if (wal.readUInt32BE(at + 8) !== salt1 || wal.readUInt32BE(at + 12) !== salt2) break;
    if (wal.readUInt32BE(at + 4) !== 0) commits += 1; // database size after commit: set on commit frames only
  }
  return commits;
}

/** A result or the code of the error it rejected with. */
type Finished = { value: OperationResult } | { error: unknown };
const finish = (p: Promise<OperationResult>): Promise<Finished> =>
  p.then((value) => ({ value }), (error: unknown) => ({ error: isStockLedgerError(error) ? error.code : error }));

/** Which of these promises have finished after `turns` event-loop turns (setImmediate), no timers involved. */
async function finishedAfterTurns(promises: readonly Promise<unknown>[], turns: number): Promise<boolean[]> {
  const flags = promises.map(() => false);
  promises.forEach((p, i) => {
    p.then(() => (flags[i] = true), () => (flags[i] = true));
  });
  for (let t = 0; t < turns; t += 1) await new Promise((resolve) => setImmediate(resolve));
  return [...flags];
}

const totalChanges = (store: SqliteStore): number => (store.database.prepare('SELECT total_changes() AS n').get() as { n: number }).n;

// ---------------------------------------------------------------------------------------------

describe('SQLite group commit: one batch, each operation its own outcome', () => {
  /** Same SKU: a success, its replay, a conflict under its id, a rejection, another success. */
  const batch = (ledger: StockLedger): Array<() => Promise<OperationResult>> => [
    () => ledger.deduct({ requestId: 'o1', sku: 'A', qty: 3, meta: { order: 1 } }),
    () => ledger.deduct({ requestId: 'o1', sku: 'A', qty: 3, meta: { order: 1 } }),
    () => ledger.deduct({ requestId: 'o1', sku: 'A', qty: 1 }),
    () => ledger.deduct({ requestId: 'o2', sku: 'A', qty: 3 }),
    () => ledger.deduct({ requestId: 'o3', sku: 'A', qty: 2 }),
  ];

  it('a replay, a conflict, a rejection and successes of one SKU in one transaction give the sequential outcomes', async () => {
    const { ledger, store, commits } = open();
    expect((await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 })).ok).toBe(true);
    expect(commits()).toBe(1);
    // Issued in one turn, none awaited before the next: one batch.
    const together = await Promise.all(batch(ledger).map((op) => finish(op())));
    expect(commits()).toBe(2);

    // The same operations one at a time, each awaited, one transaction each.
    const sequential = open({ groupCommit: false });
    await sequential.ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    const oneByOne: Finished[] = [];
    for (const op of batch(sequential.ledger)) oneByOne.push(await finish(op()));
    expect(sequential.commits()).toBe(3); // r1, o1, o3: rejections and replays commit nothing
    expect(together).toEqual(oneByOne);

    // And what that sequential order gives, spelled out.
    const [success, replay, conflict, rejection, after] = together as [Finished, Finished, Finished, Finished, Finished];
    expect(success).toMatchObject({ value: { ok: true, replayed: false, levels: [{ sku: 'A', onHand: 2, version: 2 }] } });
    expect(replay).toEqual({ value: { ...(success as { value: object }).value, replayed: true } });
    expect(conflict).toEqual({ error: 'IDEMPOTENCY_CONFLICT' });
    expect(rejection).toEqual({ value: { ok: false, code: 'INSUFFICIENT_STOCK', sku: 'A', requested: 3, available: 2 } });
    expect(after).toMatchObject({ value: { ok: true, replayed: false, entries: [{ seq: 3, onHandDelta: -2 }], levels: [{ onHand: 0, version: 3 }] } });
    expect((await readAllEntries(ledger)).map((e) => [e.seq, e.requestId, e.onHandDelta])).toEqual([[1, 'r1', 5], [2, 'o1', -3], [3, 'o3', -2]]);
    expect(await ledger.request('o2')).toBeNull();
    expect((await ledger.verify()).ok).toBe(true);
    expect(store.database.inTransaction).toBe(false);
    await Promise.all([ledger.close(), sequential.ledger.close()]);
  });

  it('batches are bounded by batchOperationsMax; more operations go to the next transactions', async () => {
    const { ledger, commits } = open({ groupCommit: { batchOperationsMax: 4 } });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.restock({ requestId: `r${i}`, sku: `S${i % 3}`, qty: i + 1 })));
    expect(results.every((r) => r.ok && !r.replayed)).toBe(true);
    expect(commits()).toBe(3); // 4 + 4 + 2
    // Queue order is entry order.
    expect((await readAllEntries(ledger)).map((e) => e.requestId)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    await ledger.close();
  });
});

describe('SQLite group commit: waiting', () => {
  it('a lone caller gets its own transaction, committed within one event-loop turn (batchWaitMs 0)', async () => {
    const { ledger, commits } = open();
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    for (let i = 1; i <= 3; i += 1) {
      const deduct = ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 });
      expect(await finishedAfterTurns([deduct], 2)).toEqual([true]);
      expect(await deduct).toMatchObject({ ok: true, levels: [{ onHand: 5 - i }] });
      expect(commits()).toBe(1 + i);
    }
    await ledger.close();
  });

  it('with batchWaitMs, a lone caller waits for the timer; a full batch is written at once', async () => {
    const { ledger, commits } = open({ groupCommit: { batchOperationsMax: 3, batchWaitMs: 100 } });
    const lone = ledger.restock({ requestId: 'r1', sku: 'A', qty: 9 });
    expect(await finishedAfterTurns([lone], 2)).toEqual([false]);
    expect((await lone).ok).toBe(true);
    expect(commits()).toBe(1);

    // Four at once: the first three fill a batch and are written now, the fourth waits.
    const four = [1, 2, 3, 4].map((i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 }));
    expect(await finishedAfterTurns(four, 2)).toEqual([true, true, true, false]);
    expect(commits()).toBe(2);
    expect((await Promise.all(four)).map((r) => r.ok && r.levels[0]?.onHand)).toEqual([8, 7, 6, 5]);
    expect(commits()).toBe(3);
    await ledger.close();
  });
});

describe('SQLite group commit: options', () => {
  const bad: Array<[string, unknown]> = [
    ['null', null],
    ["'yes'", 'yes'],
    ['1', 1],
    ['[]', []],
    ['an unknown key', { batchSize: 8 }],
    ['batchOperationsMax 0', { batchOperationsMax: 0 }],
    ['batchOperationsMax 1001', { batchOperationsMax: 1001 }],
    ['batchOperationsMax 2.5', { batchOperationsMax: 2.5 }],
    ["batchOperationsMax '8'", { batchOperationsMax: '8' }],
    ['batchWaitMs -1', { batchWaitMs: -1 }],
    ['batchWaitMs 101', { batchWaitMs: 101 }],
    ['batchWaitMs NaN', { batchWaitMs: Number.NaN }],
  ];
  it.each(bad)('groupCommit %s throws INVALID_INPUT before creating any file', (_, groupCommit) => {
    const path = freshPath();
    let thrown: unknown = null;
    try {
      new SqliteStore({ path, groupCommit } as unknown as SqliteStoreOptions);
    } catch (error) {
      thrown = error;
    }
    expect(isStockLedgerError(thrown) ? thrown.code : thrown).toBe('INVALID_INPUT');
    expect(existsSync(path)).toBe(false);
  });

  it.each([true, false, {}, { batchOperationsMax: 1 }, { batchOperationsMax: 1000, batchWaitMs: 100 }, { batchWaitMs: 0 }])(
    'groupCommit %o is accepted and works',
    async (groupCommit) => {
      const { ledger } = open({ groupCommit });
      const results = await Promise.all([1, 2, 3].map((i) => ledger.restock({ requestId: `r${i}`, sku: 'A', qty: i })));
      expect(results.map((r) => r.ok && r.levels[0]?.onHand).sort()).toEqual([1, 3, 6]);
      await ledger.close();
    },
  );
});

describe('SQLite group commit: close', () => {
  it('writes operations still queued (even while a batch waits for its timer) before closing', async () => {
    const { ledger, store, path } = open({ groupCommit: { batchWaitMs: 100 } });
    const pending = [ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 }), ...[1, 2, 3].map((i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 2 }))];
    await ledger.close();
    expect(store.database.open).toBe(false);
    // Finished by close() itself, not by the 100 ms timer.
    expect(await finishedAfterTurns(pending, 1)).toEqual([true, true, true, true]);
    expect((await Promise.all(pending)).map((r) => r.ok)).toEqual([true, true, true, false]);

    const reopened = open({}, path);
    expect(await reopened.ledger.stock('A')).toMatchObject({ onHand: 1, version: 3 });
    expect(await reopened.ledger.request('d3')).toBeNull();
    await reopened.ledger.close();

    // A closed store rejects new work with STORE_UNAVAILABLE, as before group commit.
    const late = new StockLedger({ store, retry: false });
    expect(await finish(late.deduct({ requestId: 'd4', sku: 'A', qty: 1 }))).toEqual({ error: 'STORE_UNAVAILABLE' });
  });

  it('with a database handed in: queued work is written, the database stays open', async () => {
    const db = new Database(freshPath());
    const store = new SqliteStore({ database: db, groupCommit: { batchWaitMs: 50 } });
    const ledger = new StockLedger({ store, retry: false });
    const pending = [1, 2].map((i) => ledger.restock({ requestId: `r${i}`, sku: 'A', qty: i }));
    await ledger.close();
    expect((await Promise.all(pending)).every((r) => r.ok)).toBe(true);
    expect(db.open).toBe(true);
    expect(db.prepare('SELECT on_hand FROM stock_ledger_levels WHERE sku = ?').get('A')).toEqual({ on_hand: 3 });
    db.close();
  });
});

describe('SQLite group commit: failures', () => {
  it('a command that throws (INVARIANT_VIOLATION) is undone alone; the rest of its batch commits', async () => {
    const path = freshPath();
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    const ledger = new StockLedger({ store: new SqliteStore({ database: db }), retry: false, clock: () => CLOCK_MS });
    for (const [sku, qty] of [['A', 10], ['B', 5], ['X', 5]] as const) await ledger.restock({ requestId: `r-${sku}`, sku, qty });
    const cart = await ledger.reserve({ requestId: 'cart-1', lines: [{ sku: 'B', qty: 1 }], ttlMs: 3_600_000 });
    expect(cart.ok).toBe(true);
    // Corruption behind the ledger's back: X's level past the quantity limit (decide() throws
    // before writing); cart-1's request record gone while its reservation row stays (the write
    // throws midway, after its entries and levels: SQLITE_CONSTRAINT on the reservation's key).
    db.prepare('UPDATE stock_ledger_levels SET on_hand = ? WHERE sku = ?').run(LIMITS.quantityMax + 10, 'X');
    db.prepare('DELETE FROM stock_ledger_requests WHERE request_id = ?').run('cart-1');
    const entriesBefore = db.prepare('SELECT COUNT(*) AS n FROM stock_ledger_entries').get() as { n: number };
    const commitsBefore = walCommits(path);

    const results = await Promise.all([
      finish(ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2 })),
      finish(ledger.deduct({ requestId: 'dx', sku: 'X', qty: 1 })),
      finish(ledger.reserve({ requestId: 'cart-1', lines: [{ sku: 'B', qty: 1 }], ttlMs: 3_600_000 })),
      finish(ledger.deduct({ requestId: 'd2', sku: 'A', qty: 3 })),
      // B has 4 available only if the failed reserve's hold was undone.
      finish(ledger.deduct({ requestId: 'd3', sku: 'B', qty: 4 })),
    ]);
    expect(walCommits(path) - commitsBefore).toBe(1);
    expect(results.map((r) => ('error' in r ? r.error : r.value.ok))).toEqual([true, 'INVARIANT_VIOLATION', 'INVARIANT_VIOLATION', true, true]);
    expect(results[3]).toMatchObject({ value: { levels: [{ sku: 'A', onHand: 5, version: 3 }] } });
    expect(results[4]).toMatchObject({ value: { levels: [{ sku: 'B', onHand: 1, reserved: 1, version: 3 }] } });
    // Exactly the three successes were written; nothing of the two that threw.
    expect(db.prepare('SELECT COUNT(*) AS n FROM stock_ledger_entries').get()).toEqual({ n: entriesBefore.n + 3 });
    expect(db.prepare("SELECT request_id FROM stock_ledger_entries WHERE request_id IN ('dx', 'cart-1')").all()).toEqual([{ request_id: 'cart-1' }]);
    expect(db.prepare('SELECT on_hand, version FROM stock_ledger_levels WHERE sku = ?').get('X')).toEqual({ on_hand: LIMITS.quantityMax + 10, version: 1 });
    expect(await ledger.request('cart-1')).toBeNull();
    expect(db.inTransaction).toBe(false);
    await ledger.close();
    db.close();
  });

  it('a failed COMMIT rejects the whole batch, rolls it back, and the store keeps working', async () => {
    const db = new Database(freshPath());
    const ledger = new StockLedger({ store: new SqliteStore({ database: db }), retry: false });
    // A deferred foreign key broken by one operation's entry is only checked at COMMIT.
    db.pragma('foreign_keys = ON');
    db.exec(`
      CREATE TABLE app_parent (id INTEGER PRIMARY KEY);
      CREATE TABLE app_child (parent_id INTEGER REFERENCES app_parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER app_poison AFTER INSERT ON stock_ledger_entries WHEN NEW.request_id = 'poison'
      BEGIN INSERT INTO app_child (parent_id) VALUES (42); END;
    `);
    const ops = (): Array<Promise<Finished>> =>
      ['ok-1', 'poison', 'ok-2'].map((requestId) => finish(ledger.restock({ requestId, sku: 'A', qty: 1 })));
    // Today's mapping for a broken constraint: INVARIANT_VIOLATION, for every operation of the batch.
    expect(await Promise.all(ops())).toEqual([{ error: 'INVARIANT_VIOLATION' }, { error: 'INVARIANT_VIOLATION' }, { error: 'INVARIANT_VIOLATION' }]);
    expect(db.inTransaction).toBe(false);
    expect(db.prepare('SELECT COUNT(*) AS n FROM stock_ledger_entries').get()).toEqual({ n: 0 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM stock_ledger_requests').get()).toEqual({ n: 0 });

    db.exec('DROP TRIGGER app_poison');
    expect((await Promise.all(ops())).map((r) => 'value' in r && r.value.ok && r.value.replayed)).toEqual([false, false, false]);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 3, version: 3 });
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
    db.close();
  });

  it('an engine error that rolls the whole transaction back (SQLITE_FULL) fails the whole batch, and nothing after it runs', async () => {
    const db = new Database(freshPath());
    const ledger = new StockLedger({ store: new SqliteStore({ database: db }), retry: false });
    await ledger.restock({ requestId: 'r0', sku: 'A', qty: 1 });
    // No page may be added to the file: small rows still fit, a 4 KB meta does not.
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const big = { note: 'x'.repeat(4000) };
    const ops = (): Array<Promise<Finished>> => [
      finish(ledger.restock({ requestId: 'r1', sku: 'A', qty: 1 })),
      finish(ledger.restock({ requestId: 'r2', sku: 'B', qty: 1, meta: big })),
      finish(ledger.restock({ requestId: 'r3', sku: 'A', qty: 1 })),
    ];
    expect(await Promise.all(ops())).toEqual([1, 2, 3].map(() => ({ error: 'STORE_UNAVAILABLE' })));
    // SQLite rolled back r1 with the rest; r3 must not have run outside any transaction.
    expect(db.prepare('SELECT request_id FROM stock_ledger_requests ORDER BY request_id').all()).toEqual([{ request_id: 'r0' }]);
    expect(db.inTransaction).toBe(false);

    db.pragma('max_page_count = 1073741823');
    expect((await Promise.all(ops())).map((r) => 'value' in r && r.value.ok)).toEqual([true, true, true]);
    expect(await ledger.stocks(['A', 'B'])).toMatchObject([{ onHand: 3, version: 3 }, { onHand: 1, version: 1 }]);
    await ledger.close();
    db.close();
  });

  it('a failed BEGIN (lock held elsewhere) rejects the whole batch with STORE_UNAVAILABLE; the same ids apply later', async () => {
    const { ledger, store, path } = open({ busyTimeoutMs: 50 });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    const raw = new Database(path);
    raw.exec('BEGIN IMMEDIATE');
    const batch = (): Array<Promise<Finished>> => [1, 2, 3].map((i) => finish(ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })));
    expect(await Promise.all(batch())).toEqual([1, 2, 3].map(() => ({ error: 'STORE_UNAVAILABLE' })));
    expect(store.database.inTransaction).toBe(false);
    raw.exec('ROLLBACK');
    raw.close();
    expect(await ledger.stock('A')).toMatchObject({ onHand: 5, version: 1 });
    expect((await Promise.all(batch())).map((r) => 'value' in r && r.value.ok && r.value.levels[0]?.onHand)).toEqual([4, 3, 2]);
    await ledger.close();
  });
});

describe('SQLite: sold out stays cheap', () => {
  it.each([
    ['group commit', {}],
    ['one transaction per operation', { groupCommit: false }],
  ] as const)('%s: deducts of a sold-out SKU write nothing and commit nothing', async (_, options) => {
    const { ledger, store, path, commits } = open(options);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 1 });
    await ledger.restock({ requestId: 'r2', sku: 'B', qty: 9 });
    expect((await ledger.deduct({ requestId: 'd0', sku: 'A', qty: 1 })).ok).toBe(true);
    const before = { commits: commits(), walBytes: statSync(`${path}-wal`).size, changes: totalChanges(store), entries: (await readAllEntries(ledger)).length };
    expect(before.commits).toBe(3);

    const results = await Promise.all([
      ...[1, 2, 3, 4, 5].map((i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })),
      ledger.deduct({ requestId: 'multi', lines: [{ sku: 'B', qty: 1 }, { sku: 'A', qty: 1 }] }),
    ]);
    expect(results.every((r) => !r.ok && r.code === 'INSUFFICIENT_STOCK' && r.sku === 'A')).toBe(true);
    const after = { commits: commits(), walBytes: statSync(`${path}-wal`).size, changes: totalChanges(store), entries: (await readAllEntries(ledger)).length };
    expect(after).toEqual(before);
    expect(await ledger.request('d1')).toBeNull();
    await ledger.close();
  });
});
