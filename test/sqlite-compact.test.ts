/**
 * Retention in the SQLite store (schema 7): what one compaction step removes and keeps, the
 * checkpoint rows it writes and how verify() reads them, the feed's horizon and the numbering
 * after it, levels() pages, migration from schemas 6 and 5, and compaction while another
 * connection and other processes write.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { FeedCompactedError, StockLedger, type Entry, type Level } from 'stock-ledger';
import { SCHEMA_VERSION, SqliteStore, schemaVersion, type SqliteStoreOptions } from 'stock-ledger/sqlite';
import { compareCodePoints, type StockStore } from 'stock-ledger/store';
import { compactionCase, compactionRaceCase, keptEntries, readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerConfig } from './fixtures/sqlite-worker.js';

let dir = '';
let files = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stock-ledger-sqlite-compact-'));
});
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});
const freshPath = (): string => join(dir, `ledger-${(files += 1)}.db`);

const T0 = 1_700_000_000_000;
const WINDOW_MS = 60_000;

/** A ledger on a new file whose clock the test moves. */
function clocked(options: Omit<SqliteStoreOptions, 'database'> & { path: string }): { ledger: StockLedger; store: SqliteStore; clock: { now: number } } {
  const clock = { now: T0 };
  const store = new SqliteStore(options);
  return { ledger: new StockLedger({ store, clock: () => clock.now, retention: { windowMs: WINDOW_MS } }), store, clock };
}


const rows = (db: Database.Database, sql: string): unknown[] => db.prepare(sql).all();

/** Old history: records, a finished reservation and a closed id to remove; then a held cart that pins what follows. */
async function oldHistory(ledger: StockLedger): Promise<{ pinSeq: number }> {
  await ledger.restockOrThrow({ requestId: 'po-1', lines: [{ sku: 'A', qty: 50 }, { sku: 'B', qty: 20 }] });
  await ledger.deductOrThrow({ requestId: 'o-1', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], buyer: 'ann' });
  await ledger.reserveOrThrow({ requestId: 'cart-done', lines: [{ sku: 'A', qty: 3 }], ttlMs: 10_000, buyer: 'ann' });
  await ledger.commitOrThrow({ reservationId: 'cart-done' });
  await ledger.revokeOrThrow({ requestId: 'x-old' });
  const held = await ledger.reserveOrThrow({ requestId: 'cart-held', lines: [{ sku: 'B', qty: 2 }], ttlMs: 3_600_000 });
  // Old too, but after the held cart's entry: the walk stops before it.
  await ledger.deductOrThrow({ requestId: 'o-2', sku: 'A', qty: 1 });
  return { pinSeq: held.entries[0]?.seq as number };
}

// ---------------------------------------------------------------------------------------------

describe('SqliteStore compaction: what goes and what stays', () => {
  it('older records, finished reservations, closed ids and entries go into checkpoint rows; the window, the held cart and what follows it stay', async () => {
    const { ledger, store, clock } = clocked({ path: freshPath() });
    const db = store.database as Database.Database;
    const { pinSeq } = await oldHistory(ledger);
    clock.now += 2 * WINDOW_MS;
    const recent = await ledger.deductOrThrow({ requestId: 'o-3', lines: [{ sku: 'A', qty: 4 }, { sku: 'B', qty: 1 }] });
    const levels = await ledger.stocks(['A', 'B']);
    const feed = await readAllEntries(ledger);

    const report = await ledger.compact();
    // po-1 (2 entries), o-1 (2), cart-done's reserve and commit: 6 entries; the held cart is entry 7.
    expect(pinSeq).toBe(7);
    expect(report).toEqual({ before: clock.now - WINDOW_MS, requests: 4, reservations: 1, entries: 6, compactedThrough: 6, steps: 1 });
    expect(rows(db, 'SELECT sku, on_hand, reserved, version FROM stock_ledger_checkpoints ORDER BY sku')).toEqual([
      { sku: 'A', on_hand: 45, reserved: 0, version: 4 },
      { sku: 'B', on_hand: 19, reserved: 0, version: 2 },
    ]);
    // cart-done held 3 and committed 3: its sum is 0, so no row; ann's totals are kept as sums.
    expect(rows(db, 'SELECT * FROM stock_ledger_checkpoint_holds')).toEqual([]);
    expect(rows(db, 'SELECT sku, buyer, taken FROM stock_ledger_checkpoint_buyers ORDER BY sku')).toEqual([
      { sku: 'A', buyer: 'ann', taken: 5 }, { sku: 'B', buyer: 'ann', taken: 1 },
    ]);
    expect(rows(db, 'SELECT compacted_through FROM stock_ledger_horizon')).toEqual([{ compacted_through: 6 }]);
    expect(rows(db, 'SELECT request_id FROM stock_ledger_requests ORDER BY request_id')).toEqual([
      { request_id: 'cart-held' }, { request_id: 'o-2' }, { request_id: 'o-3' },
    ]);
    expect(rows(db, 'SELECT id FROM stock_ledger_reservations')).toEqual([{ id: 'cart-held' }]);
    // Buyer totals are lifetime counters: never removed.
    expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 5 }, { sku: 'B', buyer: 'ann', taken: 1 }]);

    expect(await keptEntries(ledger)).toEqual(feed.filter((e) => e.seq > 6));
    expect(await ledger.stocks(['A', 'B'])).toEqual(levels);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    // Inside the window: the same outcome, levels' versions included.
    expect(await ledger.deduct({ requestId: 'o-3', lines: [{ sku: 'A', qty: 4 }, { sku: 'B', qty: 1 }] })).toEqual({ ...recent, replayed: true });
    expect(await ledger.request('o-2')).not.toBeNull();
    // Removed: a retry is a new request, a reverse finds nothing, the reservation is gone.
    const again = await ledger.deductOrThrow({ requestId: 'o-1', sku: 'A', qty: 1 });
    expect(again).toMatchObject({ replayed: false, entries: [{ seq: feed.length + 1 }], levels: [{ sku: 'A', onHand: levels[0]!.onHand - 1, version: levels[0]!.version + 1 }] });
    expect(await ledger.reverse({ requestId: 'rv-1', of: 'po-1' })).toMatchObject({ ok: false, code: 'REQUEST_NOT_FOUND' });
    expect(await ledger.commit({ reservationId: 'cart-done' })).toMatchObject({ ok: false, code: 'RESERVATION_NOT_FOUND' });
    expect(await ledger.reservation('cart-done')).toBeNull();
    // The held cart pinned its entries, and still commits.
    expect(await ledger.commitOrThrow({ reservationId: 'cart-held' })).toMatchObject({ levels: [{ sku: 'B', reserved: 0 }] });
    expect(await ledger.verify()).toMatchObject({ ok: true });

    // Once the commit is older than the window, the rest goes; the commit took the cart's record.
    clock.now += 2 * WINDOW_MS;
    const later = await ledger.compact();
    // Kept were 7 to 10; then the retry of o-1 (11) and the commit (12).
    expect(later).toMatchObject({ reservations: 1, requests: 4, entries: 6, compactedThrough: 12 });
    expect(rows(db, 'SELECT COUNT(*) AS n FROM stock_ledger_entries')).toEqual([{ n: 0 }]);
    expect(rows(db, 'SELECT COUNT(*) AS n FROM stock_ledger_requests')).toEqual([{ n: 0 }]);
    expect(rows(db, 'SELECT COUNT(*) AS n FROM stock_ledger_reservations')).toEqual([{ n: 0 }]);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await ledger.close();
  });

  it('one step is bounded by limit (entries, and closed ids apart), says more, and a partial walk leaves a consistent ledger', async () => {
    const { ledger, store, clock } = clocked({ path: freshPath() });
    for (let i = 0; i < 5; i += 1) await ledger.restockOrThrow({ requestId: `po-${i}`, sku: i % 2 === 0 ? 'A' : 'B', qty: 1 });
    for (let i = 0; i < 3; i += 1) await ledger.revokeOrThrow({ requestId: `x-${i}` });
    clock.now += 2 * WINDOW_MS;
    const query = { before: clock.now - WINDOW_MS, limit: 2, now: clock.now };
    expect(await store.compact(query)).toEqual({ requests: 4, reservations: 0, entries: 2, compactedThrough: 2, more: true });
    expect(await ledger.verify()).toMatchObject({ ok: true });
    expect(await store.compact(query)).toEqual({ requests: 3, reservations: 0, entries: 2, compactedThrough: 4, more: true });
    expect(await store.compact(query)).toEqual({ requests: 1, reservations: 0, entries: 1, compactedThrough: 5, more: false });
    expect(await store.compact(query)).toEqual({ requests: 0, reservations: 0, entries: 0, compactedThrough: 5, more: false });
    expect(await store.compactedThrough()).toBe(5);
    expect(await ledger.stocks(['A', 'B'])).toEqual([
      { sku: 'A', onHand: 3, reserved: 0, available: 3, version: 3 }, { sku: 'B', onHand: 2, reserved: 0, available: 2, version: 2 },
    ]);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await ledger.close();
  });

  it('an expired cart goes once settled: its expire entry takes the record, and a held cart past the window still pins', async () => {
    const { ledger, store, clock } = clocked({ path: freshPath() });
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 10 });
    await ledger.reserveOrThrow({ requestId: 'cart-exp', lines: [{ sku: 'A', qty: 2 }], ttlMs: 1_000 });
    await ledger.reserveOrThrow({ requestId: 'cart-long', lines: [{ sku: 'A', qty: 1 }], ttlMs: 10 * WINDOW_MS });
    clock.now += 2 * WINDOW_MS;
    // compact() sweeps first: cart-exp expires now, inside the window, so its record stays.
    expect(await ledger.compact()).toMatchObject({ entries: 2, reservations: 0, compactedThrough: 2 });
    expect(await ledger.reservation('cart-exp')).toMatchObject({ state: 'expired' });
    clock.now += 2 * WINDOW_MS;
    // The held cart (entry 3) pins itself and the expire entry after it.
    expect(await ledger.compact()).toMatchObject({ entries: 0, compactedThrough: 2 });
    await ledger.releaseOrThrow({ reservationId: 'cart-long' });
    clock.now += 2 * WINDOW_MS;
    // Both ends go (cart-exp's expire, cart-long's release), each with its reservation and reserve's record.
    expect(await ledger.compact()).toMatchObject({ entries: 3, reservations: 2, requests: 2, compactedThrough: 5 });
    expect(await store.reservation('cart-exp')).toBeNull();
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    await ledger.close();
  });
});

describe('SqliteStore compaction: verify() reads the checkpoints', () => {
  it('is ok after compaction, and reports a tampered checkpoint row as drift', async () => {
    const { ledger, store, clock } = clocked({ path: freshPath() });
    const db = store.database as Database.Database;
    await oldHistory(ledger);
    clock.now += 2 * WINDOW_MS;
    await ledger.compact();
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });

    const driftAfter = async (tamper: string, undo: string): Promise<unknown> => {
      db.exec(tamper);
      const report = await ledger.verify();
      db.exec(undo);
      return report.drift.map((d) => [d.sku, d.invariant, d.expected]);
    };
    expect(await driftAfter(
      "UPDATE stock_ledger_checkpoints SET on_hand = on_hand + 1 WHERE sku = 'A'", "UPDATE stock_ledger_checkpoints SET on_hand = on_hand - 1 WHERE sku = 'A'",
    )).toEqual([['A', 'fold', { onHand: 45, reserved: 0, version: 5 }]]);
    expect(await driftAfter(
      "UPDATE stock_ledger_checkpoints SET version = version + 1 WHERE sku = 'B'", "UPDATE stock_ledger_checkpoints SET version = version - 1 WHERE sku = 'B'",
    )).toEqual([['B', 'fold', { onHand: 19, reserved: 2, version: 4 }]]);
    expect(await driftAfter(
      "UPDATE stock_ledger_checkpoint_buyers SET taken = 7 WHERE sku = 'A'", "UPDATE stock_ledger_checkpoint_buyers SET taken = 5 WHERE sku = 'A'",
    )).toEqual([['A', 'buyerTotals', { buyer: 'ann', taken: 7 }]]);
    expect(await driftAfter(
      "INSERT INTO stock_ledger_checkpoint_holds VALUES ('B', 'ghost', 2)", "DELETE FROM stock_ledger_checkpoint_holds WHERE reservation_id = 'ghost'",
    )).toEqual([['B', 'holdEntries', { reservationId: 'ghost', qty: 2 }]]);
    // A SKU with only a checkpoint left (no level, no entry) is still walked.
    expect(await driftAfter(
      "INSERT INTO stock_ledger_checkpoints VALUES ('C', 3, 0, 1)", "DELETE FROM stock_ledger_checkpoints WHERE sku = 'C'",
    )).toEqual([['C', 'fold', { onHand: 3, reserved: 0, version: 1 }]]);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await ledger.close();
  });

  it('a hold sum left on a checkpoint (a cart whose reserve went, its end kept) adds up with the kept entries', async () => {
    const { ledger, store, clock } = clocked({ path: freshPath() });
    const db = store.database as Database.Database;
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 10 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 4 }], ttlMs: 3 * WINDOW_MS, buyer: 'bo' });
    await ledger.amendOrThrow({ requestId: 'am-1', reservationId: 'cart', lines: [{ sku: 'A', qty: 3 }] });
    clock.now += 2 * WINDOW_MS;
    await ledger.commitOrThrow({ reservationId: 'cart' });
    // Settled, but its commit is inside the window: restock, reserve and amend go, the commit and the record stay.
    expect(await ledger.compact()).toMatchObject({ entries: 3, reservations: 0, requests: 2, compactedThrough: 3 });
    expect(rows(db, 'SELECT sku, reservation_id, qty FROM stock_ledger_checkpoint_holds')).toEqual([{ sku: 'A', reservation_id: 'cart', qty: 3 }]);
    expect(await ledger.reservation('cart')).toMatchObject({ state: 'committed' });
    expect(await ledger.commit({ reservationId: 'cart' })).toMatchObject({ ok: true, replayed: true });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    clock.now += 2 * WINDOW_MS;
    expect(await ledger.compact()).toMatchObject({ entries: 1, reservations: 1, requests: 1, compactedThrough: 4 });
    expect(rows(db, 'SELECT * FROM stock_ledger_checkpoint_holds')).toEqual([]);
    expect(rows(db, 'SELECT sku, buyer, taken FROM stock_ledger_checkpoint_buyers')).toEqual([{ sku: 'A', buyer: 'bo', taken: 3 }]);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    await ledger.close();
  });
});

describe('SqliteStore compaction: the feed', () => {
  it('a cursor below the horizon throws FeedCompactedError, no cursor starts after it, and numbering goes on after it (a reopen and a batch too)', async () => {
    const path = freshPath();
    const { ledger, clock } = clocked({ path });
    await oldHistory(ledger);
    clock.now += 2 * WINDOW_MS;
    await ledger.compact();
    const thrown = await ledger.entries({ after: 0 }).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(FeedCompactedError);
    expect(thrown).toMatchObject({ code: 'FEED_COMPACTED', after: 0, compactedThrough: 6 });
    await expect(ledger.entries({ after: 5, sku: 'B' })).rejects.toBeInstanceOf(FeedCompactedError);
    expect((await ledger.entries()).entries[0]?.seq).toBe(7);
    expect((await ledger.entries({ after: 6, limit: 1 })).entries.map((e) => e.seq)).toEqual([7]);

    // Everything goes: the table is empty, and the next entry is still numbered after the horizon.
    await ledger.commitOrThrow({ reservationId: 'cart-held' });
    clock.now += 2 * WINDOW_MS;
    expect(await ledger.compact()).toMatchObject({ compactedThrough: 9 });
    expect(await ledger.entries()).toEqual({ entries: [], next: null });
    await ledger.close();

    const reopened = clocked({ path });
    reopened.clock.now = clock.now;
    // Group commit: three operations in one transaction, numbered on from the horizon.
    const batch = await Promise.all([1, 2, 3].map((i) => reopened.ledger.restockOrThrow({ requestId: `po-n${i}`, sku: 'A', qty: i })));
    expect(batch.map((r) => r.entries[0]?.seq)).toEqual([10, 11, 12]);
    expect(batch.map((r) => r.levels[0]?.version)).toEqual([6, 7, 8]);
    expect((await reopened.ledger.entries()).entries.map((e) => e.seq)).toEqual([10, 11, 12]);
    expect(await reopened.ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await reopened.ledger.close();
  });
});

describe('SqliteStore: levels()', () => {
  const skus = ['A', 'B', 'Z', 'a', 'b', 'é', 'ü', 'ｚ', '😀', 'A-1', 'z z'];

  it('pages every SKU in code-point order as stocks() reads them (due holds expired), at any page size', async () => {
    const { ledger, clock } = clocked({ path: freshPath() });
    for (const [i, sku] of skus.entries()) await ledger.restockOrThrow({ requestId: `po-${i}`, sku, qty: i + 1 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'é', qty: 3 }, { sku: 'A', qty: 1 }], ttlMs: 1_000 });
    clock.now += 5_000; // due, not yet expired in storage
    const sorted = [...skus].sort(compareCodePoints);
    const all = await ledger.stocks(sorted);
    expect(all.find((l) => l.sku === 'é')).toMatchObject({ reserved: 0, version: 3 });
    for (const limit of [1, 2, 3, 4, 11, 12, 1000]) {
      const seen: Level[] = [];
      let page = await ledger.levels({ limit });
      for (let pages = 1; ; pages += 1) {
        seen.push(...page.levels);
        expect(page.levels.length).toBeLessThanOrEqual(limit);
        if (page.next === null) break;
        expect(page.next).toBe(seen.at(-1)?.sku);
        expect(pages).toBeLessThan(20);
        page = await ledger.levels({ limit, after: page.next });
      }
      expect(seen).toEqual(all);
    }
    // A full last page says there may be more; the page after it is empty and final.
    const exact = await ledger.levels({ limit: skus.length });
    expect(exact.next).toBe(sorted.at(-1));
    expect(await ledger.levels({ limit: 5, after: exact.next as string })).toEqual({ levels: [], next: null });
    await ledger.close();
  });

  it('availableAtMost keeps exactly the low ones as of now: backorders count, due holds free units, next still walks on', async () => {
    const { ledger, clock } = clocked({ path: freshPath() });
    for (const [i, sku] of skus.entries()) await ledger.restockOrThrow({ requestId: `po-${i}`, sku, qty: i + 1 });
    // 'A' (1 on hand) with a backorder of 5: available 6, not low at 3.
    await ledger.setPolicyOrThrow({ requestId: 'pol', sku: 'A', backorderMax: 5 });
    // 'é' (6 on hand) holds 4 until due: stored available 2 (low), as of now 6 (not low).
    await ledger.reserveOrThrow({ requestId: 'cart-due', lines: [{ sku: 'é', qty: 4 }], ttlMs: 1_000 });
    // 'ü' (7 on hand) holds 5 for long: available 2 (low).
    await ledger.reserveOrThrow({ requestId: 'cart-long', lines: [{ sku: 'ü', qty: 5 }], ttlMs: 3_600_000 });
    clock.now += 5_000;
    const sorted = [...skus].sort(compareCodePoints);
    const expected = (await ledger.stocks(sorted)).filter((l) => l.available <= 3);
    expect(expected.map((l) => l.sku)).toEqual(['B', 'Z', 'ü']);
    const seen: Level[] = [];
    let page = await ledger.levels({ limit: 2, availableAtMost: 3 });
    const empties: number[] = [];
    for (;;) {
      seen.push(...page.levels);
      if (page.levels.length === 0) empties.push(seen.length);
      if (page.next === null) break;
      page = await ledger.levels({ limit: 2, availableAtMost: 3, after: page.next });
    }
    expect(seen).toEqual(expected);
    expect(empties.length).toBeGreaterThan(0); // filtered pages may be empty while next walks on
    expect((await ledger.levels({ availableAtMost: -1 })).levels).toEqual([]);
    expect((await ledger.levels({ availableAtMost: 0, limit: 1000 })).next).toBeNull();
    await ledger.close();
  });

  it('reads the same levels after compaction (versions from the checkpoint)', async () => {
    const { ledger, clock } = clocked({ path: freshPath() });
    await oldHistory(ledger);
    const before = await ledger.levels();
    clock.now += 2 * WINDOW_MS;
    await ledger.compact();
    expect(await ledger.levels()).toEqual(before);
    await ledger.close();
  });
});

// ---------------------------------------------------------------------------------------------

/** The objects schema 7 added: dropping them (and setting the version) turns a current file into a schema 6 one. */
const SCHEMA_7_OBJECTS = ['TABLE stock_ledger_checkpoints', 'TABLE stock_ledger_checkpoint_holds', 'TABLE stock_ledger_checkpoint_buyers', 'TABLE stock_ledger_horizon', 'INDEX stock_ledger_closed_ids_by_at'];

function downgrade(path: string, version: 5 | 6): void {
  const db = new Database(path);
  for (const object of SCHEMA_7_OBJECTS) db.exec(`DROP ${object}`);
  // Schema 6 gave entries reservation_id (amend entries only): none are written here for 5.
  if (version === 5) db.exec('ALTER TABLE stock_ledger_entries DROP COLUMN reservation_id');
  db.prepare("UPDATE stock_ledger_schema SET value = ? WHERE key = 'version'").run(version);
  db.close();
}

describe('SqliteStore: migration to schema 7 (retention)', () => {
  it.each([6, 5] as const)('a file at schema %i keeps its data and replays, then compacts, verifies and numbers on', async (version) => {
    expect(SCHEMA_VERSION).toBe(7);
    const path = freshPath();
    const old = clocked({ path });
    await oldHistory(old.ledger);
    if (version === 6) await old.ledger.amendOrThrow({ requestId: 'am-1', reservationId: 'cart-held', lines: [{ sku: 'B', qty: 1 }, { sku: 'A', qty: 1 }] });
    old.clock.now += 2 * WINDOW_MS;
    const recent = await old.ledger.deductOrThrow({ requestId: 'o-3', sku: 'A', qty: 1, buyer: 'ann' });
    const entries = await readAllEntries(old.ledger);
    const levels = await old.ledger.stocks(['A', 'B']);
    await old.ledger.close();
    downgrade(path, version);
    const raw = new Database(path);
    expect(schemaVersion(raw)).toBe(version);
    raw.close();

    const { ledger, store, clock } = clocked({ path });
    clock.now = old.clock.now;
    const db = store.database as Database.Database;
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    expect(rows(db, 'SELECT id, compacted_through FROM stock_ledger_horizon')).toEqual([{ id: 1, compacted_through: 0 }]);
    const sql = (rows(db, "SELECT sql FROM sqlite_master WHERE name = 'stock_ledger_closed_ids_by_at'") as { sql: string }[])[0]?.sql;
    expect(sql).toContain("WHERE kind = 'revoke'");
    expect(await readAllEntries(ledger)).toEqual(entries);
    expect(await ledger.deduct({ requestId: 'o-3', sku: 'A', qty: 1, buyer: 'ann' })).toEqual({ ...recent, replayed: true });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });

    const report = await ledger.compact();
    expect(report).toMatchObject({ entries: 6, compactedThrough: 6, reservations: 1, requests: 4 });
    expect(await ledger.stocks(['A', 'B'])).toEqual(levels);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await ledger.commitOrThrow({ reservationId: 'cart-held' });
    clock.now += 2 * WINDOW_MS;
    await ledger.compact();
    expect(await ledger.entries()).toEqual({ entries: [], next: null });
    const next = await ledger.restockOrThrow({ requestId: 'po-next', sku: 'B', qty: 1 });
    expect(next.entries[0]?.seq).toBe((await store.compactedThrough()) + 1);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await ledger.close();
  });
});

// ---------------------------------------------------------------------------------------------

/** One store for operations and reads, another connection on the same file for compaction, feed and verify. */
function twoConnections(path: string, options: Omit<SqliteStoreOptions, 'path' | 'database'>): StockStore {
  const writer = new SqliteStore({ ...options, path });
  const compactor = new SqliteStore({ path, groupCommit: false });
  return {
    capabilities: writer.capabilities,
    execute: (command, o) => writer.execute(command, o),
    stocks: (skus, now) => writer.stocks(skus, now),
    entries: (query) => compactor.entries(query),
    request: (id) => writer.request(id),
    reservation: (id) => writer.reservation(id),
    holds: (query) => writer.holds(query),
    buyerTotals: (query) => writer.buyerTotals(query),
    verifyChunk: (query) => compactor.verifyChunk(query),
    compact: (query) => compactor.compact(query),
    compactedThrough: () => compactor.compactedThrough(),
    levels: (query) => writer.levels(query),
    close: async () => {
      await writer.close();
      await compactor.close();
    },
  };
}

describe('SqliteStore compaction: a second connection on the same file', () => {
  it.each([
    ['group commit on', {}],
    ['one transaction per operation', { groupCommit: false }],
  ] as const)('compacts while the first writes, with a moving clock (%s): nothing inside the window is lost, retries replay, verify is ok', async (_, options) => {
    await compactionRaceCase(() => twoConnections(freshPath(), options), { waves: 12 });
    await compactionCase(() => twoConnections(freshPath(), options));
  });

  it('waits for the app\'s own transaction on a shared connection, then runs', async () => {
    const db = new Database(freshPath());
    const clock = { now: T0 };
    const ledger = new StockLedger({ store: new SqliteStore({ database: db }), clock: () => clock.now });
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 1 });
    clock.now += 2 * WINDOW_MS;
    db.exec('BEGIN');
    let done = false;
    const compacting = ledger.compact({ windowMs: WINDOW_MS }).then((report) => {
      done = true;
      return report;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(done).toBe(false);
    db.exec('COMMIT');
    expect(await compacting).toMatchObject({ entries: 1, compactedThrough: 1 });
    await ledger.close();
    db.close();
  });
});

// ---------------------------------------------------------------------------------------------

type Message =
  | { t: 'ready' } | { t: 'try'; id: string } | { t: 'unavailable'; id: string } | { t: 'done'; ops: number }
  | { t: 'ack'; id: string; ok: true; replayed: boolean; entries: Entry[] }
  | { t: 'ack'; id: string; ok: false; code: string };

interface Worker {
  child: ChildProcess;
  messages: Message[];
  stderr: string[];
  ready: Promise<void>;
  closed: Promise<number | null>;
}

const root = fileURLToPath(new URL('..', import.meta.url));

/** test/fixtures/sqlite-worker.ts in a child process, as test/sqlite-faults.test.ts runs it. */
function spawnWorker(config: WorkerConfig): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/sqlite-worker.ts', import.meta.url)), JSON.stringify(config)], {
    cwd: root,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const worker: Worker = { child, messages: [], stderr: [], ready: Promise.resolve(), closed: Promise.resolve(null) };
  worker.closed = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  worker.ready = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const message = JSON.parse(line) as Message;
      worker.messages.push(message);
      if (message.t === 'ready') resolve();
    });
    void worker.closed.then((code) => reject(new Error(`worker closed before ready (${code}): ${worker.stderr.join('')}`)));
  });
  worker.ready.catch(() => {});
  child.stderr?.on('data', (chunk: Buffer) => worker.stderr.push(chunk.toString('utf8')));
  return worker;
}

describe('SqliteStore compaction: other processes writing', () => {
  it('compacts a small window on the real clock while three processes deduct and restock (group commit on and off): nothing inside the window is lost', async () => {
    const path = freshPath();
    const skus = ['P', 'Q', 'R'];
    const parent = new StockLedger({ store: new SqliteStore({ path }) });
    const expected = new Map(skus.map((sku) => [sku, 0]));
    for (const sku of skus) {
      const r = await parent.restockOrThrow({ requestId: `seed-${sku}`, sku, qty: 200 });
      expected.set(sku, (expected.get(sku) ?? 0) + (r.entries[0]?.onHandDelta ?? 0));
    }
    const workers = [undefined, false, { batchWaitMs: 1 }].map((groupCommit, w) => {
      const config: WorkerConfig = { path, worker: `c${w}`, round: 0, ops: 300, seed: 4242 + w, skus, sharedIds: 6, restockShare: 0.3, durability: 'normal', lanes: 4 };
      if (groupCommit !== undefined) config.groupCommit = groupCommit;
      return spawnWorker(config);
    });
    await Promise.all(workers.map((w) => w.ready));
    for (const w of workers) w.child.stdin?.end('go\n');
    let running = true;
    const finished = Promise.all(workers.map((w) => w.closed)).finally(() => {
      running = false;
    });
    type Applied = Extract<Message, { t: 'ack'; ok: true }>;
    const applied = (): Applied[] => workers.flatMap((w) => w.messages).filter((m): m is Applied => m.t === 'ack' && m.ok && !m.replayed);
    /** Every request applied (as acknowledged so far) inside the window of the last step kept its record and its entries. */
    const checkInside = async (before: number): Promise<number> => {
      const kept = new Map((await keptEntries(parent)).map((e) => [e.seq, e]));
      const inside = applied().filter((m) => (m.entries[0]?.at ?? 0) >= before);
      for (const m of inside) {
        for (const e of m.entries) expect(kept.get(e.seq as number), `entry ${e.seq} of ${m.id}, inside the window`).toEqual(e);
        expect((await parent.request(m.id))?.entries).toEqual(m.entries);
      }
      return inside.length;
    };
    const windowMs = 40;
    let last = await parent.compact({ windowMs });
    let removed = last.entries;
    let checked = 0;
    let steps = 0;
    while (running) {
      last = await parent.compact({ windowMs });
      removed += last.entries;
      steps += 1;
      if (steps % 4 === 0) {
        checked += await checkInside(last.before);
        expect((await parent.verify()).drift).toEqual([]);
      }
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    const codes = await finished;
    workers.forEach((w, i) => expect(codes[i], w.stderr.join('')).toBe(0));
    checked += await checkInside(last.before);

    const acks = workers.flatMap((w) => w.messages).filter((m): m is Applied => m.t === 'ack' && m.ok);
    expect(workers.flatMap((w) => w.messages).filter((m) => m.t === 'unavailable')).toEqual([]);
    for (const m of applied()) for (const e of m.entries) expected.set(e.sku, (expected.get(e.sku) ?? 0) + e.onHandDelta);
    // Meaningful: compaction removed entries while writes went on, requests inside the window were checked, some replayed.
    expect(removed).toBeGreaterThan(50);
    expect(steps).toBeGreaterThan(5);
    expect(checked).toBeGreaterThan(20);
    expect(acks.length - applied().length).toBeGreaterThan(0);

    // The feed is whole from the horizon on; levels are what was applied, each once.
    const kept = (await keptEntries(parent)).map((e) => e.seq);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => last.compactedThrough + 1 + i));
    expect((await parent.stocks(skus)).map((l) => [l.sku, l.onHand])).toEqual(skus.map((sku) => [sku, expected.get(sku)]));
    expect(await parent.verify()).toEqual({ ok: true, skusChecked: 3, drift: [] });
    await parent.close();
  }, 60_000);
});
