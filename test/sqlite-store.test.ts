/**
 * What is specific to the SQLite store: who closes what, schema versions, several connections
 * on one file, locks held by others, options, odd SKUs and large quantities, buyer totals.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { LIMITS, StockLedger, isStockLedgerError, type Applied } from 'stock-ledger';
import { SCHEMA_VERSION, SqliteStore, schemaVersion, type SqliteStoreOptions } from 'stock-ledger/sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAllEntries } from 'stock-ledger/testing';
import { codeOf } from './support/codes.js';

let dir = '';
let files = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stock-ledger-sqlite-store-'));
});
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});
const freshPath = (): string => join(dir, `ledger-${(files += 1)}.db`);



const schemaOf = (db: Database.Database): unknown =>
  db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all();

/**
 * Copies rows a current store wrote (in `path`) into tables of an older schema in `db`: only the
 * columns the older table has, so data written now stands in for data written then.
 */
function copyTables(db: Database.Database, path: string, names: { from: string; to: string; tables: readonly string[] }): void {
  db.exec(`ATTACH '${path}' AS old`);
  for (const table of names.tables) {
    const columns = (db.prepare(`SELECT name FROM pragma_table_info('${names.to}${table}', 'main')`).all() as { name: string }[]).map((c) => c.name).join(', ');
    db.exec(`INSERT INTO main.${names.to}${table} (${columns}) SELECT ${columns} FROM old.${names.from}${table}`);
  }
  db.exec('DETACH old');
}

// ---------------------------------------------------------------------------------------------

describe('SqliteStore: who closes what', () => {
  it('a database handed in stays open after ledger.close(), and its own settings stay', async () => {
    const path = freshPath();
    const db = new Database(path);
    db.pragma('user_version = 42');
    const ledger = new StockLedger({ store: new SqliteStore({ database: db }) });
    expect((ledger.store as SqliteStore).database).toBe(db);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 3 });
    await ledger.close();
    await ledger.close();
    expect(db.open).toBe(true);
    // Still usable by the app, with the ledger's data in it; user_version belongs to the app.
    expect(db.prepare('SELECT on_hand FROM stock_ledger_levels WHERE sku = ?').get('A')).toEqual({ on_hand: 3 });
    expect(db.pragma('user_version', { simple: true })).toBe(42);
    // And by a new store on the same handle.
    const again = new StockLedger({ store: new SqliteStore({ database: db }) });
    expect(await again.stock('A')).toMatchObject({ onHand: 3, version: 1 });
    await again.close();
    expect(db.open).toBe(true);
    db.close();
  });

  it('a database opened from a path is closed by ledger.close(), once, and is then unavailable', async () => {
    const store = new SqliteStore({ path: freshPath() });
    const ledger = new StockLedger({ store, retry: false });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 3 });
    expect(store.database.open).toBe(true);
    await ledger.close();
    expect(store.database.open).toBe(false);
    await ledger.close(); // idempotent
    expect(await codeOf(() => ledger.deduct({ requestId: 'd1', sku: 'A', qty: 1 }))).toBe('STORE_UNAVAILABLE');
    expect(await codeOf(() => ledger.stock('A'))).toBe('STORE_UNAVAILABLE');
  });
});

describe('SqliteStore: schema', () => {
  it('records its schema version, and reopening neither re-migrates nor loses data', async () => {
    const path = freshPath();
    const raw = new Database(path);
    expect(schemaVersion(raw)).toBe(0);
    const first = new SqliteStore({ path });
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
    expect(schemaVersion(first.database)).toBe(SCHEMA_VERSION);
    expect(schemaVersion(raw)).toBe(SCHEMA_VERSION);
    const ledger = new StockLedger({ store: first });
    const applied = await ledger.restock({ requestId: 'r1', sku: 'A', qty: 7 });
    const schema = schemaOf(raw);
    await ledger.close();

    for (let reopen = 0; reopen < 3; reopen += 1) {
      const store = new SqliteStore({ path });
      expect(schemaVersion(store.database)).toBe(SCHEMA_VERSION);
      const again = new StockLedger({ store });
      expect(await again.restock({ requestId: 'r1', sku: 'A', qty: 7 })).toEqual({ ...applied, replayed: true });
      expect(await again.stock('A')).toMatchObject({ onHand: 7, version: 1 });
      await again.close();
    }
    expect(schemaOf(raw)).toEqual(schema);
    expect(raw.prepare('SELECT key, value FROM stock_ledger_schema').all()).toEqual([{ key: 'version', value: SCHEMA_VERSION }]);
    raw.close();
  });

  it('refuses a file written by a newer schema, with a StockLedgerError, and leaves it untouched', async () => {
    const path = freshPath();
    await new SqliteStore({ path }).close();
    const raw = new Database(path);
    raw.prepare("UPDATE stock_ledger_schema SET value = ? WHERE key = 'version'").run(SCHEMA_VERSION + 1);
    let thrown: unknown = null;
    try {
      new SqliteStore({ path });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as Error).message).toMatch(/upgrade stock-ledger/);
    // Every error the library throws is a StockLedgerError with a stable code (DESIGN.md section 5).
    expect(isStockLedgerError(thrown)).toBe(true);
    expect(schemaVersion(raw)).toBe(SCHEMA_VERSION + 1);
    raw.close();
  });

  it('tables carry a prefix: the app\'s own stock_levels is never touched, and two ledgers share one file', async () => {
    const path = freshPath();
    const db = new Database(path);
    db.exec("CREATE TABLE stock_levels (sku TEXT PRIMARY KEY, qty INTEGER); INSERT INTO stock_levels VALUES ('app', 1)");
    db.exec('CREATE TABLE stock_entries (id INTEGER); CREATE INDEX stock_entries_by_sku ON stock_entries (id)');
    const shop = new StockLedger({ store: new SqliteStore({ database: db }) });
    const outlet = new StockLedger({ store: new SqliteStore({ database: db, tablePrefix: 'outlet_' }) });
    await shop.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    await outlet.restock({ requestId: 'r1', sku: 'A', qty: 2 }); // the same id in another ledger is another request
    expect(await shop.stock('A')).toMatchObject({ onHand: 5 });
    expect(await outlet.stock('A')).toMatchObject({ onHand: 2 });
    expect(db.prepare('SELECT sku, qty FROM stock_levels').all()).toEqual([{ sku: 'app', qty: 1 }]);
    const names = (db.prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(names).toContain('stock_entries_by_sku'); // the app's index, on the app's table
    expect(names.filter((n) => n.startsWith('stock_ledger_')).sort()).toEqual([
      'stock_ledger_buyer_totals', 'stock_ledger_checkpoint_buyers', 'stock_ledger_checkpoint_holds', 'stock_ledger_checkpoints', 'stock_ledger_closed_ids_by_at',
      'stock_ledger_entries', 'stock_ledger_entries_by_sku', 'stock_ledger_holds', 'stock_ledger_holds_by_expiry', 'stock_ledger_holds_by_sku', 'stock_ledger_horizon',
      'stock_ledger_levels', 'stock_ledger_requests', 'stock_ledger_reservations', 'stock_ledger_reversals', 'stock_ledger_schema',
    ]);
    expect(names.filter((n) => n.startsWith('outlet_'))).toHaveLength(16);
    expect(schemaVersion(db, 'outlet_')).toBe(SCHEMA_VERSION);
    expect(await shop.verify()).toMatchObject({ ok: true });
    expect(await outlet.verify()).toMatchObject({ ok: true });
    await shop.close();
    await outlet.close();
    db.close();
  });

  it.each(['', '1abc', 'a-b', 'a b', 'x;DROP TABLE t;', 'é', 'a'.repeat(41)])('refuses the table prefix %j before the file is touched', (tablePrefix) => {
    const path = freshPath();
    let thrown: unknown = null;
    try {
      new SqliteStore({ path, tablePrefix });
    } catch (error) {
      thrown = error;
    }
    expect(isStockLedgerError(thrown) && thrown.code).toBe('INVALID_INPUT');
    expect(existsSync(path)).toBe(false);
  });

  it('a ledger file from before the prefix (tables stock_levels...) is renamed in place, data and all', async () => {
    const path = freshPath();
    const db = new Database(path);
    // What stock-ledger wrote at schema version 2, with one restock and one held reservation.
    db.exec(`
      CREATE TABLE stock_ledger_schema (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
      INSERT INTO stock_ledger_schema VALUES ('version', 2);
      CREATE TABLE stock_levels (sku TEXT PRIMARY KEY NOT NULL, on_hand INTEGER NOT NULL CHECK (on_hand >= reserved),
        reserved INTEGER NOT NULL CHECK (reserved >= 0), version INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE stock_entries (seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL, kind TEXT NOT NULL, sku TEXT NOT NULL,
        on_hand_delta INTEGER NOT NULL, reserved_delta INTEGER NOT NULL, on_hand_after INTEGER NOT NULL, reserved_after INTEGER NOT NULL,
        at INTEGER NOT NULL, meta TEXT);
      CREATE INDEX stock_entries_by_sku ON stock_entries (sku, seq);
      CREATE TABLE stock_requests (request_id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, fingerprint TEXT NOT NULL, at INTEGER NOT NULL,
        outcome TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE stock_reversals (of_request TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL CHECK (qty > 0),
        PRIMARY KEY (of_request, sku)) WITHOUT ROWID;
      CREATE TABLE stock_reservations (id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL, lines TEXT NOT NULL, expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL, committed TEXT, meta TEXT, outcome TEXT);
      CREATE TABLE stock_holds (reservation_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL CHECK (qty > 0),
        expires_at INTEGER NOT NULL, PRIMARY KEY (reservation_id, sku)) WITHOUT ROWID;
      CREATE INDEX stock_holds_by_sku ON stock_holds (sku, expires_at, reservation_id);
      CREATE INDEX stock_holds_by_expiry ON stock_holds (expires_at, reservation_id, sku);
    `);
    // Written by the store of that version into a scratch file, then copied over table by table.
    const scratchPath = freshPath();
    const scratch = new SqliteStore({ path: scratchPath });
    const before = new StockLedger({ store: scratch });
    await before.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    await before.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000 });
    copyTables(db, scratchPath, { from: 'stock_ledger_', to: 'stock_', tables: ['levels', 'entries', 'requests', 'reversals', 'reservations', 'holds'] });
    await before.close();

    const ledger = new StockLedger({ store: new SqliteStore({ database: db }) });
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 5, reserved: 2, version: 2 });
    expect(await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 })).toMatchObject({ ok: true, replayed: true });
    expect(await ledger.commit({ reservationId: 'cart' })).toMatchObject({ ok: true, replayed: false });
    expect(await ledger.verify()).toMatchObject({ ok: true });
    const names = (db.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'stock_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(names.every((n) => n.startsWith('stock_ledger_'))).toBe(true);
    expect(names).toHaveLength(16);
    await ledger.close();
    db.close();
  });

  it.each([
    ['a file that is not a database', (path: string): string => {
      writeFileSync(path, 'this is a text file, not a SQLite database. '.repeat(20));
      return path;
    }],
    ['a path in a directory that does not exist', (path: string): string => join(`${path}.missing`, 'ledger.db')],
  ])('%s: the constructor throws a StockLedgerError', async (_, setUp) => {
    const path = setUp(freshPath());
    let thrown: unknown = null;
    try {
      new SqliteStore({ path });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect(isStockLedgerError(thrown), String(thrown)).toBe(true);
  });
});

describe('SqliteStore: two instances on one file in one process', () => {
  it('stay consistent: no oversell, each sees the other, a replay through the other instance', async () => {
    const path = freshPath();
    const one = new StockLedger({ store: new SqliteStore({ path }) });
    const two = new StockLedger({ store: new SqliteStore({ path, durability: 'normal' }) });
    await one.restock({ requestId: 'r1', sku: 'A', qty: 30 });
    await two.restock({ requestId: 'r2', sku: 'B', qty: 10 });
    const deducts = Array.from({ length: 80 }, (_, i) => {
      const ledger = i % 2 === 0 ? one : two;
      return i % 4 === 3
        ? ledger.deduct({ requestId: `d${i}`, lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }] })
        : ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 });
    });
    const results = await Promise.all(deducts);
    const applied = results.filter((r): r is Applied => r.ok);
    expect(applied.length).toBe(30);
    expect(results.filter((r) => !r.ok).every((r) => r.code === 'INSUFFICIENT_STOCK')).toBe(true);
    const tookB = applied.filter((r) => r.entries.length === 2).length;
    for (const ledger of [one, two]) {
      expect(await ledger.stocks(['A', 'B'])).toEqual([
        { sku: 'A', onHand: 0, reserved: 0, available: 0, version: 31 },
        { sku: 'B', onHand: 10 - tookB, reserved: 0, available: 10 - tookB, version: 1 + tookB },
      ]);
    }
    // The same id through both instances at once: applied once, the other gets the replay.
    await one.restock({ requestId: 'r3', sku: 'A', qty: 1 });
    const [a, b] = await Promise.all([one.deduct({ requestId: 'twice', sku: 'A', qty: 1 }), two.deduct({ requestId: 'twice', sku: 'A', qty: 1 })]);
    expect([a?.ok && a.replayed, b?.ok && b.replayed].sort()).toEqual([false, true]);
    expect((await one.entries({ sku: 'A', after: 0, limit: 1000 })).entries.filter((e) => e.requestId === 'twice')).toHaveLength(1);
    expect((await one.verify()).ok).toBe(true);
    expect((await two.verify()).ok).toBe(true);
    await Promise.all([one.close(), two.close()]);
  });
});

describe('SqliteStore: a lock held by another connection', () => {
  it('with a short busy timeout and no retry: STORE_UNAVAILABLE, nothing applied; after release the same id applies once', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path, busyTimeoutMs: 50 });
    expect(store.database.pragma('busy_timeout', { simple: true })).toBe(50);
    const ledger = new StockLedger({ store, retry: false });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });

    const raw = new Database(path);
    raw.exec('BEGIN IMMEDIATE');
    raw.prepare('UPDATE stock_ledger_levels SET on_hand = 999').run(); // uncommitted, never visible
    const started = performance.now();
    let thrown: unknown = null;
    try {
      await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2 });
    } catch (error) {
      thrown = error;
    }
    expect(performance.now() - started).toBeGreaterThanOrEqual(45); // it did wait for the lock
    expect(isStockLedgerError(thrown) ? [thrown.code, (thrown as { attempts?: number }).attempts] : thrown).toEqual(['STORE_UNAVAILABLE', 1]);
    // Readers are not blocked by the writer (WAL) and see neither the raw write nor d1.
    expect(await ledger.request('d1')).toBeNull();
    expect(await ledger.stock('A')).toMatchObject({ onHand: 5, version: 1 });

    // With retries on, the ledger tries again with the same id, then gives up, bounded.
    const retrying = new StockLedger({ store, retry: { attemptsMax: 3, baseMs: 1, capMs: 2 } });
    let exhausted: unknown = null;
    try {
      await retrying.deduct({ requestId: 'd1', sku: 'A', qty: 2 });
    } catch (error) {
      exhausted = error;
    }
    expect(isStockLedgerError(exhausted) ? [exhausted.code, (exhausted as { attempts?: number }).attempts] : exhausted).toEqual(['STORE_UNAVAILABLE', 3]);
    expect(await ledger.request('d1')).toBeNull();

    raw.exec('ROLLBACK');
    raw.close();
    const applied = await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2 });
    expect(applied).toMatchObject({ ok: true, replayed: false, levels: [{ sku: 'A', onHand: 3, version: 2 }] });
    expect(await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2 })).toEqual({ ...applied, replayed: true });
    expect((await readAllEntries(ledger)).filter((e) => e.requestId === 'd1')).toHaveLength(1);
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
  });

  it('by default waits for a lock another process holds briefly, instead of failing', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path });
    expect(store.database.pragma('busy_timeout', { simple: true })).toBeGreaterThanOrEqual(5000);
    const ledger = new StockLedger({ store, retry: false });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5 });

    const root = fileURLToPath(new URL('..', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/sqlite-lock.ts', import.meta.url)), JSON.stringify({ path, holdMs: 400 })], {
      cwd: root,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: string[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const locked = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no lock taken in time: ${stderr.join('')}`)), 20_000);
      createInterface({ input: child.stdout }).on('line', (line) => {
        if ((JSON.parse(line) as { t: string }).t === 'locked') {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('close', () => reject(new Error(`lock holder exited early: ${stderr.join('')}`)));
    });
    try {
      await locked;
      const result = await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2 });
      // Applied after the holder rolled back: its uncommitted +1000 never leaked in.
      expect(result).toMatchObject({ ok: true, replayed: false, levels: [{ sku: 'A', onHand: 3, version: 2 }] });
      // The holder exits on its own once it has rolled back: wait for it (bounded) before the
      // clean-up below, which would otherwise kill a child that is only finishing.
      const code = await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve('still running'), 20_000))]);
      expect(code, stderr.join('')).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    expect((await ledger.verify()).ok).toBe(true);
    await ledger.close();
  });
});

describe('SqliteStore: options', () => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ["durability 'fast'", { durability: 'fast' }],
    ["durability 'FULL'", { durability: 'FULL' }],
    ['busyTimeoutMs -1', { busyTimeoutMs: -1 }],
    ['busyTimeoutMs 1.5', { busyTimeoutMs: 1.5 }],
    ['busyTimeoutMs NaN', { busyTimeoutMs: Number.NaN }],
    ["busyTimeoutMs '100'", { busyTimeoutMs: '100' }],
    ['busyTimeoutMs past 10 minutes', { busyTimeoutMs: 600_001 }],
  ];
  it.each(bad)('%s throws INVALID_INPUT before creating any file', async (_, extra) => {
    const path = freshPath();
    expect(await codeOf(() => new SqliteStore({ path, ...extra } as unknown as SqliteStoreOptions))).toBe('INVALID_INPUT');
    expect(existsSync(path)).toBe(false);
  });

  it('an empty or missing path throws INVALID_INPUT', async () => {
    expect(await codeOf(() => new SqliteStore({ path: '' }))).toBe('INVALID_INPUT');
    expect(await codeOf(() => new SqliteStore({} as unknown as SqliteStoreOptions))).toBe('INVALID_INPUT');
  });

  it('the busy timeout and durability given are the ones in force', async () => {
    const store = new SqliteStore({ path: freshPath(), busyTimeoutMs: 1234, durability: 'normal' });
    expect(['busy_timeout', 'synchronous', 'journal_mode'].map((p) => store.database.pragma(p, { simple: true }))).toEqual([1234, 1, 'wal']);
    await store.close();
  });
});

describe('SqliteStore: odd SKUs and request ids', () => {
  const prefix = 'é'.repeat(100); // 200 UTF-8 bytes
  const odd = [
    '😀', 'a\nb', '{x}:y', `${prefix}a`, `${prefix}b`, 'e\u0301', '\u00e9', 'A', 'a', 'a\u0000b', ' ', '%', '_', '\\',
    "'; DROP TABLE stock_ledger_levels; --", '\uFF01', '\u{10FFFF}', `${'€'.repeat(85)}a`, // 256 bytes, the maximum
  ];

  it('round-trip exactly through entries(), stock(), request() and levels sorted by JavaScript order', async () => {
    const path = freshPath();
    expect(new Set(odd).size).toBe(odd.length);
    const ledger = new StockLedger({ store: new SqliteStore({ path, durability: 'normal' }) });
    for (const [i, sku] of odd.entries()) {
      // The request ids are the odd strings themselves: 'e\u0301' and '\u00e9', 'A' and 'a' are two ids each.
      const requestId = Buffer.byteLength(sku) <= LIMITS.requestIdBytesMax ? sku : `long-${i}`;
      const result = await ledger.restock({ requestId, sku, qty: i + 1, meta: { sku } });
      expect(result).toMatchObject({ ok: true, replayed: false, levels: [{ sku, onHand: i + 1, version: 1 }] });
      expect(await ledger.request(requestId)).toMatchObject({ requestId, entries: [{ sku, requestId, meta: { sku } }] });
    }
    await ledger.close();

    const reopened = new StockLedger({ store: new SqliteStore({ path }) });
    for (const [i, sku] of odd.entries()) {
      const { entries } = await reopened.entries({ sku });
      expect(entries.map((e) => [e.sku, e.onHandDelta, e.meta])).toEqual([[sku, i + 1, { sku }]]);
      expect(await reopened.stock(sku)).toEqual({ sku, onHand: i + 1, reserved: 0, available: i + 1, version: 1 });
    }
    expect(await reopened.stocks(odd)).toEqual(odd.map((sku, i) => ({ sku, onHand: i + 1, reserved: 0, available: i + 1, version: 1 })));

    // One deduct over every SKU: levels and entries in JavaScript string order, which is not byte order.
    const sorted = [...odd].sort();
    const deduct = await reopened.deduct({ requestId: '😀-order', lines: odd.map((sku) => ({ sku, qty: 1 })) });
    expect(deduct.ok && deduct.levels.map((l) => l.sku)).toEqual(sorted);
    expect(deduct.ok && deduct.entries.map((e) => e.sku)).toEqual(sorted);
    const seqs = deduct.ok ? deduct.entries.map((e) => e.seq) : [];
    expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] ?? 0) + i));
    expect(await reopened.verify()).toEqual({ ok: true, skusChecked: odd.length, drift: [] });
    await reopened.close();
  });

  it('verify() walks every SKU across chunks in byte order, and finds a drifted one wherever it sits', async () => {
    const path = freshPath();
    const ledger = new StockLedger({ store: new SqliteStore({ path, durability: 'normal' }) });
    const shapes = ['😀', '\uFF01', 'a', 'é', 'Z', '\u0000', '\u{10FFFF}'];
    const count = 2 * LIMITS.verifyChunkSkus + 50;
    const skus = Array.from({ length: count }, (_, i) => `${shapes[i % shapes.length] ?? ''}${i}`);
    for (const [i, sku] of skus.entries()) await ledger.restock({ requestId: `r${i}`, sku, qty: 1 });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: count, drift: [] });

    // Tamper with the cached levels behind the ledger's back, at both ends of the byte order.
    const byBytes = [...skus].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const tampered = [byBytes[0], byBytes[LIMITS.verifyChunkSkus], byBytes[count - 1]] as string[];
    const raw = new Database(path);
    for (const sku of tampered) raw.prepare('UPDATE stock_ledger_levels SET on_hand = on_hand + 1 WHERE sku = ?').run(sku);
    raw.close();
    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(report.skusChecked).toBe(count);
    expect(report.drift.map((d) => d.sku).sort()).toEqual([...tampered].sort());
    expect(report.drift[0]).toMatchObject({ invariant: 'fold', stored: { onHand: 2 }, folded: { onHand: 1 } });
    await ledger.close();
  });
});

describe('SqliteStore: verify() checks every invariant, each reported on its own', () => {
  /** A ledger with a held cart on A (2 of 8) and plain stock on B, and a raw connection to tamper with. */
  async function tamperable(): Promise<{ ledger: StockLedger; raw: Database.Database }> {
    const path = freshPath();
    const ledger = new StockLedger({ store: new SqliteStore({ path, durability: 'normal' }) });
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 8 });
    await ledger.restock({ requestId: 'r2', sku: 'B', qty: 3 });
    expect((await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000 })).ok).toBe(true);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    const raw = new Database(path);
    // The schema's CHECKs would refuse the corruption this test needs to plant.
    raw.pragma('ignore_check_constraints = ON');
    return { ledger, raw };
  }

  const invariantsOf = (report: Awaited<ReturnType<StockLedger['verify']>>): string[] => report.drift.map((d) => `${d.sku}:${d.invariant}`).sort();

  it('a negative reserved forced into the level: reservedNonNegative, with both sides, besides the fold and the holds', async () => {
    const { ledger, raw } = await tamperable();
    raw.prepare("UPDATE stock_ledger_levels SET reserved = -2 WHERE sku = 'A'").run();
    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(invariantsOf(report)).toEqual(['A:fold', 'A:holdsSum', 'A:reservedNonNegative']);
    expect(report.drift.find((d) => d.invariant === 'reservedNonNegative')).toMatchObject({ sku: 'A', expected: 0, actual: -2 });
    expect(report.drift.find((d) => d.invariant === 'holdsSum')).toMatchObject({ expected: -2, actual: 2 });
    expect(report.drift.find((d) => d.invariant === 'fold')).toMatchObject({ expected: { reserved: 2 }, actual: { reserved: -2 } });
    raw.close();
    await ledger.close();
  });

  it('reserved above onHand, in level and entries alike: reservedWithinOnHand and available, not fold', async () => {
    const { ledger, raw } = await tamperable();
    raw.prepare("UPDATE stock_ledger_levels SET on_hand = 1 WHERE sku = 'A'").run();
    raw.prepare("UPDATE stock_ledger_entries SET on_hand_delta = 1 WHERE request_id = 'r1'").run();
    const report = await ledger.verify();
    expect(invariantsOf(report)).toEqual(['A:available', 'A:reservedWithinOnHand']);
    expect(report.drift.find((d) => d.invariant === 'reservedWithinOnHand')).toMatchObject({ expected: 1, actual: 2 });
    raw.close();
    await ledger.close();
  });

  it('a hold gone from the hold table: holdsSum and holdEntries', async () => {
    const { ledger, raw } = await tamperable();
    raw.prepare("DELETE FROM stock_ledger_holds WHERE reservation_id = 'cart'").run();
    const report = await ledger.verify();
    expect(invariantsOf(report)).toEqual(['A:holdEntries', 'A:holdsSum']);
    expect(report.drift.find((d) => d.invariant === 'holdEntries')).toMatchObject({
      expected: { reservationId: 'cart', qty: 2 }, actual: { reservationId: 'cart', qty: 0 },
    });
    raw.close();
    await ledger.close();
  });

  it('a live hold whose reservation reads committed, or names another quantity: holdRecord', async () => {
    const { ledger, raw } = await tamperable();
    raw.prepare("UPDATE stock_ledger_reservations SET state = 'committed' WHERE id = 'cart'").run();
    expect(invariantsOf(await ledger.verify())).toEqual(['A:holdRecord']);
    raw.prepare("UPDATE stock_ledger_reservations SET state = 'held', lines = '[{\"sku\":\"A\",\"qty\":3}]' WHERE id = 'cart'").run();
    const report = await ledger.verify();
    expect(invariantsOf(report)).toEqual(['A:holdRecord']);
    expect(report.drift[0]).toMatchObject({ expected: { qty: 2 }, actual: { qty: 3, state: 'held' } });
    raw.prepare("DELETE FROM stock_ledger_reservations WHERE id = 'cart'").run();
    expect((await ledger.verify()).drift).toMatchObject([{ invariant: 'holdRecord', actual: { record: null } }]);
    raw.close();
    await ledger.close();
  });

  it('an entry written twice: appliedOnce (and the fold it throws off)', async () => {
    const { ledger, raw } = await tamperable();
    raw.prepare(`INSERT INTO stock_ledger_entries (request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, at, meta)
      SELECT request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, at, meta FROM stock_ledger_entries WHERE request_id = 'r2'`).run();
    const report = await ledger.verify();
    expect(invariantsOf(report)).toEqual(['B:appliedOnce', 'B:fold']);
    expect(report.drift.find((d) => d.invariant === 'appliedOnce')).toMatchObject({ actual: { requestId: 'r2', kind: 'restock', entries: 2 } });
    raw.close();
    await ledger.close();
  });

  it('a hold planted with no reserve entry behind it: holdEntries and holdsSum', async () => {
    const { ledger, raw } = await tamperable();
    raw.prepare("INSERT INTO stock_ledger_holds (reservation_id, sku, qty, expires_at) VALUES ('cart', 'B', 1, 9e15)").run();
    expect(invariantsOf(await ledger.verify())).toEqual(['B:holdEntries', 'B:holdRecord', 'B:holdsSum']);
    raw.close();
    await ledger.close();
  });
});

describe('SqliteStore: quantities near the limit', () => {
  it('stay exact through every operation, the stored outcome and a reopen', async () => {
    const path = freshPath();
    const max = LIMITS.quantityMax;
    const ledger = new StockLedger({ store: new SqliteStore({ path }) });
    expect((await ledger.restock({ requestId: 'r1', sku: 'A', qty: max })).ok).toBe(true);
    expect(await ledger.restock({ requestId: 'r2', sku: 'A', qty: 1 })).toEqual({
      ok: false, code: 'QUANTITY_LIMIT', sku: 'A', requested: 1, onHand: max, limit: max,
    });
    expect(await codeOf(() => ledger.restock({ requestId: 'r3', sku: 'A', qty: max + 1 }))).toBe('INVALID_INPUT');
    expect(await codeOf(() => ledger.deduct({ requestId: 'd0', lines: [{ sku: 'A', qty: max }, { sku: 'A', qty: 1 }] }))).toBe('INVALID_INPUT');

    const d1 = await ledger.deduct({ requestId: 'd1', lines: [{ sku: 'A', qty: max - 2 }, { sku: 'A', qty: 1 }] });
    expect(d1).toMatchObject({ ok: true, entries: [{ onHandDelta: -(max - 1), onHandAfter: 1 }] });
    expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 2 })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 1 });
    const r4 = await ledger.reverse({ requestId: 'v1', of: 'd1', lines: [{ sku: 'A', qty: max - 3 }] });
    expect(r4).toMatchObject({ ok: true, levels: [{ onHand: max - 2 }] });
    const a1 = await ledger.adjust({ requestId: 'a1', sku: 'A', onHand: 1 });
    expect(a1).toMatchObject({ ok: true, entries: [{ onHandDelta: -(max - 3), onHandAfter: 1 }] });
    const a2 = await ledger.adjust({ requestId: 'a2', sku: 'A', onHand: max, meta: { big: Number.MAX_SAFE_INTEGER } });
    expect(a2).toMatchObject({ ok: true, entries: [{ onHandDelta: max - 1, onHandAfter: max, meta: { big: Number.MAX_SAFE_INTEGER } }] });
    await ledger.restock({ requestId: 'r4', sku: 'B', qty: max - 1 });
    await ledger.restock({ requestId: 'r5', sku: 'B', qty: 1 });
    const entries = await readAllEntries(ledger);
    await ledger.close();

    const reopened = new StockLedger({ store: new SqliteStore({ path }) });
    expect(await readAllEntries(reopened)).toEqual(entries);
    expect(await reopened.stocks(['A', 'B'])).toEqual([
      { sku: 'A', onHand: max, reserved: 0, available: max, version: 5 },
      { sku: 'B', onHand: max, reserved: 0, available: max, version: 2 },
    ]);
    expect(await reopened.deduct({ requestId: 'd1', lines: [{ sku: 'A', qty: 1 }, { sku: 'A', qty: max - 2 }] })).toEqual({ ...d1, replayed: true });
    expect(await reopened.adjust({ requestId: 'a2', sku: 'A', onHand: max, meta: { big: Number.MAX_SAFE_INTEGER } })).toEqual({ ...a2, replayed: true });
    // SQL sums of the entries (verify's fold) are exact too.
    expect(await reopened.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await reopened.close();
  });
});

describe('SqliteStore: setPolicy', () => {
  const T0 = 1_700_000_000_000;
  const open = (path: string, options: Omit<SqliteStoreOptions, 'path' | 'database'> = {}): StockLedger =>
    new StockLedger({ store: new SqliteStore({ ...options, path }), clock: () => T0 });
  const levelRow = (path: string, sku: string): unknown => {
    const raw = new Database(path, { readonly: true });
    const row = raw.prepare('SELECT on_hand, reserved, version, backorder_max, low_stock_at FROM stock_ledger_levels WHERE sku = ?').get(sku);
    raw.close();
    return row;
  };

  it('applies, shows on the level and on its entry, replays exactly (after a reopen too), and a reset drops it', async () => {
    const path = freshPath();
    const ledger = open(path);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 2 });
    const input = { requestId: 'p1', sku: 'A', lowStockAt: 5, meta: { by: 'ops' } };
    const set = await ledger.setPolicy(input);
    const policy = { backorderMax: 0, lowStockAt: 5, buyerMax: null };
    expect(set).toEqual({
      ok: true, replayed: false,
      entries: [{ seq: 2, requestId: 'p1', kind: 'policy', sku: 'A', onHandDelta: 0, reservedDelta: 0, onHandAfter: 2, reservedAfter: 0, at: T0, meta: { by: 'ops' }, policy }],
      levels: [{ sku: 'A', onHand: 2, reserved: 0, available: 2, version: 2, policy }],
    });
    expect(levelRow(path, 'A')).toEqual({ on_hand: 2, reserved: 0, version: 2, backorder_max: 0, low_stock_at: 5 });
    expect(await ledger.setPolicy(input)).toEqual({ ...set, replayed: true });
    expect(await codeOf(() => ledger.setPolicy({ ...input, lowStockAt: 6 }))).toBe('IDEMPOTENCY_CONFLICT');
    expect(await ledger.request('p1')).toEqual({ ...set, replayed: true, requestId: 'p1', kind: 'policy', at: T0 });
    expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 2, reserved: 0, available: 2, version: 2, policy });
    expect((await ledger.entries({ sku: 'A' })).entries[1]).toEqual((set as Applied).entries[0]);

    // Back to the default: the level shows no policy and the columns are reset; the entry still names the whole policy.
    const reset = await ledger.setPolicy({ requestId: 'p2', sku: 'A', lowStockAt: null });
    expect(reset).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 2, reserved: 0, available: 2, version: 3 }] });
    expect((reset as Applied).levels[0]).not.toHaveProperty('policy');
    expect((reset as Applied).entries[0]?.policy).toEqual({ backorderMax: 0, lowStockAt: null, buyerMax: null });
    expect(levelRow(path, 'A')).toEqual({ on_hand: 2, reserved: 0, version: 3, backorder_max: 0, low_stock_at: null });
    const entries = await readAllEntries(ledger);
    expect(entries.map((e) => e.policy)).toEqual([undefined, policy, { backorderMax: 0, lowStockAt: null, buyerMax: null }]);
    expect(entries[0]).not.toHaveProperty('policy');
    await ledger.close();

    const reopened = open(path);
    expect(await reopened.setPolicy(input)).toEqual({ ...set, replayed: true });
    expect(await readAllEntries(reopened)).toEqual(entries);
    expect(await reopened.stock('A')).toEqual({ sku: 'A', onHand: 2, reserved: 0, available: 2, version: 3 });
    expect(await reopened.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    await reopened.close();
  });

  it.each([
    ['group commit', {}],
    ['one transaction per operation', { groupCommit: false }],
  ] as const)('a backorder lets onHand go negative, a restock fills it, and replays keep the policy of their time (%s)', async (_, options) => {
    const path = freshPath();
    const ledger = open(path, options);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 2 });
    // Issued in one turn: with group commit they share a batch, and the policy still comes first.
    const [, sold] = await Promise.all([
      ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 5 }),
      ledger.deduct({ requestId: 'd1', sku: 'A', qty: 6 }),
    ]);
    const backorder = { backorderMax: 5, lowStockAt: null, buyerMax: null };
    expect(sold).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: -4, reserved: 0, available: 1, version: 3, policy: backorder }] });
    expect(levelRow(path, 'A')).toEqual({ on_hand: -4, reserved: 0, version: 3, backorder_max: 5, low_stock_at: null });
    expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 2 })).toEqual({ ok: false, code: 'INSUFFICIENT_STOCK', sku: 'A', requested: 2, available: 1 });
    const held = await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
    expect(held).toMatchObject({ ok: true, levels: [{ onHand: -4, reserved: 1, available: 0, policy: backorder }] });

    // The policy is carried through restock and commit; the restock fills the backorder first.
    expect(await ledger.restock({ requestId: 'r2', sku: 'A', qty: 10 })).toMatchObject({
      ok: true, levels: [{ onHand: 6, reserved: 1, available: 10, version: 5, policy: backorder }],
    });
    expect(await ledger.commit({ reservationId: 'cart' })).toMatchObject({ ok: true, levels: [{ onHand: 5, reserved: 0, available: 10, policy: backorder }] });
    await ledger.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 0, lowStockAt: 3 });
    // A replay shows the levels right after the original, with the policy then in force.
    expect(await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 6 })).toEqual({ ...sold, replayed: true });
    expect(await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 })).toEqual({ ...held, replayed: true });
    expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 5, reserved: 0, available: 5, version: 7, policy: { backorderMax: 0, lowStockAt: 3, buyerMax: null } });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    await ledger.close();
  });

  it('BELOW_RESERVED when backorderMax would drop under what is held or sold: nothing recorded, and the same id applies later', async () => {
    const path = freshPath();
    const ledger = open(path);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 2 });
    await ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 5 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 6 }], ttlMs: 60_000 });
    const entriesBefore = await readAllEntries(ledger);
    const level = { sku: 'A', onHand: 2, reserved: 6, available: 1, version: 3, policy: { backorderMax: 5, lowStockAt: null, buyerMax: null } };
    expect(await ledger.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 3 })).toEqual({ ok: false, code: 'BELOW_RESERVED', sku: 'A', requested: 3, level });
    expect(await ledger.request('p2')).toBeNull();
    expect(await readAllEntries(ledger)).toEqual(entriesBefore);
    expect(await ledger.stock('A')).toEqual(level);
    // Lowering it to exactly what is promised is allowed: available 0.
    expect(await ledger.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 4 })).toMatchObject({
      ok: true, levels: [{ onHand: 2, reserved: 6, available: 0, version: 4, policy: { backorderMax: 4, lowStockAt: null, buyerMax: null } }],
    });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    await ledger.close();
  });

  it('the level CHECK refuses available below 0 (a bug would fail loudly, not write)', async () => {
    const path = freshPath();
    const ledger = open(path);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 1 });
    await ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 2 });
    await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 3 });
    await ledger.close();
    const raw = new Database(path);
    expect(() => raw.prepare("UPDATE stock_ledger_levels SET backorder_max = 1 WHERE sku = 'A'").run()).toThrow(/CHECK constraint failed/);
    expect(() => raw.prepare("UPDATE stock_ledger_levels SET reserved = 1 WHERE sku = 'A'").run()).toThrow(/CHECK constraint failed/);
    expect(raw.prepare("SELECT on_hand, backorder_max FROM stock_ledger_levels WHERE sku = 'A'").get()).toEqual({ on_hand: -2, backorder_max: 2 });
    raw.close();
  });

  it('verify() reads the policy from the level: a backorder in use is no drift, the same level without it is', async () => {
    const path = freshPath();
    const ledger = open(path);
    await ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 3 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 60_000 });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    const raw = new Database(path);
    raw.pragma('ignore_check_constraints = ON');
    raw.prepare("UPDATE stock_ledger_levels SET backorder_max = 0 WHERE sku = 'A'").run();
    const report = await ledger.verify();
    expect(report.drift.map((d) => d.invariant).sort()).toEqual(['available', 'reservedWithinOnHand']);
    raw.close();
    await ledger.close();
  });
});

/**
 * The schema stock-ledger wrote at versions 1 to 4 (what the migrations of those versions leave):
 * versions 1 and 2 under the names from before the prefix (`stock_levels`...), versions 3 and 4
 * under the prefix; version 1 had no reservations yet; version 4 (setPolicy) rebuilt the levels
 * with the policy columns and gave entries a `policy`.
 */
function oldSchema(version: 1 | 2 | 3 | 4, prefix: string): string {
  const p = version >= 3 ? prefix : 'stock_';
  const levels = version === 4
    ? `CREATE TABLE ${p}levels (sku TEXT PRIMARY KEY NOT NULL, on_hand INTEGER NOT NULL, reserved INTEGER NOT NULL CHECK (reserved >= 0),
        version INTEGER NOT NULL, backorder_max INTEGER NOT NULL DEFAULT 0 CHECK (backorder_max >= 0),
        low_stock_at INTEGER NULL CHECK (low_stock_at >= 0), CHECK (on_hand - reserved + backorder_max >= 0)) WITHOUT ROWID;`
    : `CREATE TABLE ${p}levels (sku TEXT PRIMARY KEY NOT NULL, on_hand INTEGER NOT NULL CHECK (on_hand >= reserved),
        reserved INTEGER NOT NULL CHECK (reserved >= 0), version INTEGER NOT NULL) WITHOUT ROWID;`;
  const reservations = `
    CREATE TABLE ${p}reservations (id TEXT PRIMARY KEY NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired')), lines TEXT NOT NULL,
      expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, committed TEXT, meta TEXT, outcome TEXT);
    CREATE TABLE ${p}holds (reservation_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL CHECK (qty > 0),
      expires_at INTEGER NOT NULL, PRIMARY KEY (reservation_id, sku)) WITHOUT ROWID;
    CREATE INDEX ${p}holds_by_sku ON ${p}holds (sku, expires_at, reservation_id);
    CREATE INDEX ${p}holds_by_expiry ON ${p}holds (expires_at, reservation_id, sku);`;
  return `
    CREATE TABLE ${prefix}schema (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
    INSERT INTO ${prefix}schema VALUES ('version', ${version});
    ${levels}
    CREATE TABLE ${p}entries (seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL, kind TEXT NOT NULL, sku TEXT NOT NULL,
      on_hand_delta INTEGER NOT NULL, reserved_delta INTEGER NOT NULL, on_hand_after INTEGER NOT NULL, reserved_after INTEGER NOT NULL,
      at INTEGER NOT NULL, meta TEXT${version === 4 ? ', policy TEXT' : ''});
    CREATE INDEX ${p}entries_by_sku ON ${p}entries (sku, seq);
    CREATE TABLE ${p}requests (request_id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, fingerprint TEXT NOT NULL, at INTEGER NOT NULL,
      outcome TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE ${p}reversals (of_request TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL CHECK (qty > 0),
      PRIMARY KEY (of_request, sku)) WITHOUT ROWID;
    ${version >= 2 ? reservations : ''}
  `;
}

describe('SqliteStore: migration to the current schema', () => {
  it.each([
    [1, 'stock_ledger_'],
    [2, 'stock_ledger_'],
    [3, 'stock_ledger_'],
    [3, 'shop_'],
    [4, 'stock_ledger_'],
    [4, 'shop_'],
  ] as const)('a file at schema version %i (prefix %s) keeps its data and then takes policies and a negative onHand', async (version, tablePrefix) => {
    const path = freshPath();
    const db = new Database(path);
    db.exec(oldSchema(version, tablePrefix));
    // An app table beside the ledger's stays as it is.
    db.exec("CREATE TABLE app_orders (id TEXT PRIMARY KEY); INSERT INTO app_orders VALUES ('o1')");
    // Rows written by today's store (default policies only, as then), copied into the old tables.
    const scratchPath = freshPath();
    const scratch = new StockLedger({ store: new SqliteStore({ path: scratchPath, tablePrefix }) });
    await scratch.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    await scratch.restock({ requestId: 'r2', sku: 'B', qty: 1 });
    const sold = await scratch.deduct({ requestId: 'd1', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }] });
    if (version >= 2) await scratch.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000 });
    const entries = await readAllEntries(scratch);
    await scratch.close();
    const tables = ['levels', 'entries', 'requests', 'reversals', ...(version >= 2 ? ['reservations', 'holds'] : [])];
    copyTables(db, scratchPath, { from: tablePrefix, to: version >= 3 ? tablePrefix : 'stock_', tables });

    const ledger = new StockLedger({ store: new SqliteStore({ database: db, tablePrefix }) });
    expect(schemaVersion(db, tablePrefix)).toBe(SCHEMA_VERSION);
    expect(await readAllEntries(ledger)).toEqual(entries);
    expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 4, reserved: version >= 2 ? 2 : 0, available: version >= 2 ? 2 : 4, version: version >= 2 ? 3 : 2 });
    expect(await ledger.deduct({ requestId: 'd1', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }] })).toEqual({ ...sold, replayed: true });
    expect(await ledger.verify()).toMatchObject({ ok: true });

    // The new level table: the new CHECK, no table left over, the app's table untouched.
    const levelsSql = (db.prepare("SELECT sql FROM sqlite_master WHERE name = ?").get(`${tablePrefix}levels`) as { sql: string }).sql;
    expect(levelsSql).toContain('on_hand - reserved + backorder_max >= 0');
    expect(levelsSql).not.toContain('on_hand >= reserved');
    const names = (db.prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(names.filter((n) => n.startsWith(tablePrefix))).toHaveLength(16);
    expect(names.filter((n) => !n.startsWith(tablePrefix))).toEqual(['app_orders']);
    expect(db.prepare('SELECT id FROM app_orders').all()).toEqual([{ id: 'o1' }]);

    await ledger.setPolicy({ requestId: 'p1', sku: 'B', backorderMax: 3, buyerMax: 3 });
    expect(await ledger.deduct({ requestId: 'd2', sku: 'B', qty: 3, buyer: 'ann' })).toMatchObject({
      ok: true, levels: [{ sku: 'B', onHand: -3, reserved: 0, available: 0, version: 4, policy: { backorderMax: 3, lowStockAt: null, buyerMax: 3 } }],
    });
    expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 0 }, { sku: 'B', buyer: 'ann', taken: 3 }]);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await ledger.close();
    db.close();
  });
});

describe('SqliteStore: migration from the setPolicy schema (4)', () => {
  it('keeps policies, entries and replays, reads a policy stored without buyerMax as whole, and then takes buyer limits', async () => {
    const T0 = 1_700_000_000_000;
    const path = freshPath();
    const db = new Database(path);
    db.exec(oldSchema(4, 'stock_ledger_'));
    const scratchPath = freshPath();
    const scratch = new StockLedger({ store: new SqliteStore({ path: scratchPath }), clock: () => T0 });
    await scratch.restock({ requestId: 'r1', sku: 'A', qty: 5 });
    const policy = await scratch.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 1, lowStockAt: 2 });
    const sold = await scratch.deduct({ requestId: 'd1', sku: 'A', qty: 1 });
    const held = await scratch.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000 });
    const entries = await readAllEntries(scratch);
    await scratch.close();
    copyTables(db, scratchPath, { from: 'stock_ledger_', to: 'stock_ledger_', tables: ['levels', 'entries', 'requests', 'reversals', 'reservations', 'holds'] });
    // What schema 4 wrote: policies with two fields, in the entries and in the stored outcomes.
    db.exec("UPDATE stock_ledger_entries SET policy = json_remove(policy, '$.buyerMax') WHERE policy IS NOT NULL");
    db.exec("UPDATE stock_ledger_requests SET outcome = json_remove(outcome, '$.entries[0].policy.buyerMax', '$.levels[0].policy.buyerMax')");
    expect(db.prepare("SELECT COUNT(*) AS n FROM stock_ledger_requests WHERE outcome LIKE '%buyerMax%'").get()).toEqual({ n: 0 });
    expect(db.prepare("SELECT policy FROM stock_ledger_entries WHERE kind = 'policy'").get()).toEqual({ policy: '{"backorderMax":1,"lowStockAt":2}' });

    const ledger = new StockLedger({ store: new SqliteStore({ database: db }), clock: () => T0 });
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    const whole = { backorderMax: 1, lowStockAt: 2, buyerMax: null };
    expect(await readAllEntries(ledger)).toEqual(entries);
    expect(entries[1]?.policy).toEqual(whole);
    expect(await ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 1, lowStockAt: 2 })).toEqual({ ...policy, replayed: true });
    expect(await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 1 })).toEqual({ ...sold, replayed: true });
    expect(await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000 })).toEqual({ ...held, replayed: true });
    expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 4, reserved: 2, available: 3, version: 4, policy: whole });
    expect(await ledger.reservation('cart')).not.toHaveProperty('buyer');
    expect(db.prepare("SELECT buyer_max FROM stock_ledger_levels WHERE sku = 'A'").get()).toEqual({ buyer_max: null });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });

    // Only columns and one table were added: the rebuilt level table of version 4 keeps its CHECK.
    const levelsSql = (db.prepare("SELECT sql FROM sqlite_master WHERE name = 'stock_ledger_levels'").get() as { sql: string }).sql;
    expect(levelsSql).toContain('on_hand - reserved + backorder_max >= 0');
    expect(levelsSql).toContain('buyer_max');

    // A limit on the old SKU: held units of the old cart named no buyer and count for nobody.
    await ledger.setPolicy({ requestId: 'p2', sku: 'A', buyerMax: 2 });
    expect(await codeOf(() => ledger.deduct({ requestId: 'd2', sku: 'A', qty: 1 }))).toBe('INVALID_INPUT');
    expect(await ledger.reserve({ requestId: 'c2', lines: [{ sku: 'A', qty: 2 }], ttlMs: 60_000, buyer: 'ann' })).toMatchObject({ ok: true });
    expect(await ledger.deduct({ requestId: 'd3', sku: 'A', qty: 1, buyer: 'ann' })).toEqual({ ok: false, code: 'BUYER_LIMIT', sku: 'A', buyer: 'ann', limit: 2, taken: 2 });
    expect(await ledger.commit({ reservationId: 'cart' })).toMatchObject({ ok: true, entries: [{ kind: 'commit' }] });
    expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 2 }]);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    await ledger.close();
    db.close();
  });
});

describe('SqliteStore: purchase limits (buyers)', () => {
  const T0 = 1_700_000_000_000;
  const open = (path: string, clock: { now: number }, options: Omit<SqliteStoreOptions, 'path' | 'database'> = {}): StockLedger =>
    new StockLedger({ store: new SqliteStore({ ...options, path }), clock: () => clock.now });
  type TotalRow = { sku: string; buyer: string; taken: number };
  const totalRows = (path: string): TotalRow[] => {
    const raw = new Database(path, { readonly: true });
    const rows = raw.prepare('SELECT sku, buyer, taken FROM stock_ledger_buyer_totals ORDER BY sku, buyer').all() as TotalRow[];
    raw.close();
    return rows;
  };
  /** The order of the table's primary key: SKU, then buyer, each by UTF-8 bytes. */
  const byPair = (a: TotalRow, b: TotalRow): number => Buffer.compare(Buffer.from(a.sku), Buffer.from(b.sku)) || Buffer.compare(Buffer.from(a.buyer), Buffer.from(b.buyer));

  // Pairs a key `sku + U+0000 + buyer` would merge ('a' + 'b\0c' and 'a\0b' + 'c'), and others a trimming or normalizing store would.
  const pairs: Array<[sku: string, buyer: string]> = [
    ['a', 'b\u0000c'], ['a\u0000b', 'c'], ['a', 'b'], ['a', 'b\u0000'], ['a', '\u0000'], ['a\u0000', 'b'],
    ['😀', '😀'], ['😀', '😀\u0000'], ['a', 'e\u0301'], ['a', '\u00e9'], ['a', 'B'], ['a', 'b '], ['a', '\u{10FFFF}'], ['a', '€'.repeat(42) + 'xy'], // 128 bytes
  ];

  it('odd buyers (U+0000, emoji, 128 bytes) are stored as given, each pair its own total and limit, across a reopen', async () => {
    const path = freshPath();
    const clock = { now: T0 };
    const ledger = open(path, clock);
    expect(Buffer.byteLength(pairs[pairs.length - 1]?.[1] ?? '')).toBe(128);
    const skus = [...new Set(pairs.map(([sku]) => sku))];
    for (const [i, sku] of skus.entries()) {
      await ledger.restock({ requestId: `r${i}`, sku, qty: 1000 });
      await ledger.setPolicy({ requestId: `p${i}`, sku, buyerMax: 3 });
    }
    // Each pair takes its own limit (3) in two steps; a collision would refuse the second pair of a colliding key.
    for (const [i, [sku, buyer]] of pairs.entries()) {
      const sold = await ledger.deduct({ requestId: `d${i}`, sku, qty: 1, buyer });
      expect(sold).toMatchObject({ ok: true, entries: [{ sku, buyer }] });
      expect(await ledger.reserve({ requestId: `c${i}`, lines: [{ sku, qty: 2 }], ttlMs: 60_000, buyer })).toMatchObject({ ok: true, reservation: { buyer } });
      expect(await ledger.deduct({ requestId: `x${i}`, sku, qty: 1, buyer })).toEqual({ ok: false, code: 'BUYER_LIMIT', sku, buyer, limit: 3, taken: 3 });
    }
    const expected = pairs.map(([sku, buyer]) => ({ sku, buyer, taken: 3 })).sort(byPair);
    expect(totalRows(path)).toEqual(expected);
    const entries = await readAllEntries(ledger);
    await ledger.close();

    const reopened = open(path, clock);
    expect(await readAllEntries(reopened)).toEqual(entries);
    for (const [i, [sku, buyer]] of pairs.entries()) {
      expect(await reopened.buyerTotals({ buyer, skus: [sku] })).toEqual([{ sku, buyer, taken: 3 }]);
      expect((await reopened.reservation(`c${i}`))?.buyer).toBe(buyer);
      expect((await reopened.request(`d${i}`))?.entries[0]?.buyer).toBe(buyer);
    }
    const holds = (await reopened.holds({ sku: 'a' })).holds.map((h) => h.buyer).sort();
    expect(holds).toEqual(pairs.filter(([sku]) => sku === 'a').map(([, buyer]) => buyer).sort());
    // Released, each pair gives back only its own units.
    await reopened.release({ reservationId: 'c0' });
    expect(await reopened.buyerTotals({ buyer: 'b\u0000c', skus: ['a'] })).toEqual([{ sku: 'a', buyer: 'b\u0000c', taken: 1 }]);
    expect(await reopened.buyerTotals({ buyer: 'c', skus: ['a\u0000b'] })).toEqual([{ sku: 'a\u0000b', buyer: 'c', taken: 3 }]);
    expect(await reopened.verify()).toEqual({ ok: true, skusChecked: skus.length, drift: [] });
    await reopened.close();
  });

  it.each([
    ['group commit', {}],
    ['one transaction per operation', { groupCommit: false }],
  ] as const)('raw rows of the totals table are what buyerTotals() reads and the entries fold to; a total of 0 leaves no row (%s)', async (_, options) => {
    const path = freshPath();
    const clock = { now: T0 };
    const ledger = open(path, clock, options);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 50 });
    await ledger.restock({ requestId: 'r2', sku: 'B', qty: 50 });
    await ledger.setPolicy({ requestId: 'p1', sku: 'A', buyerMax: 4 });
    // Issued in one turn: with group commit they share a batch, and the refused one (no buyer) fails alone.
    const outcomes = await Promise.allSettled([
      ledger.deduct({ requestId: 'd1', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 3 }], buyer: 'ann' }),
      ledger.deduct({ requestId: 'd2', sku: 'A', qty: 1 }),
      ledger.reserve({ requestId: 'c1', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 1000, buyer: 'ann' }),
      ledger.reserve({ requestId: 'c2', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000, buyer: 'bea' }),
      ledger.deduct({ requestId: 'd3', sku: 'A', qty: 1, buyer: 'ann' }),
    ]);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? (o.value.ok ? 'ok' : o.value.code) : isStockLedgerError(o.reason) && o.reason.code)))
      .toEqual(['ok', 'INVALID_INPUT', 'ok', 'ok', 'BUYER_LIMIT']);
    await ledger.reverse({ requestId: 'v1', of: 'd1', lines: [{ sku: 'B', qty: 3 }] }); // ann's B back to 1 (the hold)
    await ledger.commit({ reservationId: 'c2', lines: [{ sku: 'A', qty: 1 }] });
    const rowsNow = [
      { sku: 'A', buyer: 'ann', taken: 4 }, { sku: 'A', buyer: 'bea', taken: 1 }, { sku: 'B', buyer: 'ann', taken: 1 },
    ];
    expect(totalRows(path)).toEqual(rowsNow);
    const read = [...await ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] }), ...await ledger.buyerTotals({ buyer: 'bea', skus: ['A'] })];
    expect(read.sort(byPair)).toEqual(rowsNow);

    // Ann's cart falls due: reads count it as expired at once, the rows change when it is written.
    clock.now += 1000;
    expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 2 }, { sku: 'B', buyer: 'ann', taken: 0 }]);
    expect(totalRows(path)).toEqual(rowsNow);
    await ledger.sweepExpired();
    const rowsSwept = [{ sku: 'A', buyer: 'ann', taken: 2 }, { sku: 'A', buyer: 'bea', taken: 1 }];
    expect(totalRows(path)).toEqual(rowsSwept); // B fell to 0: no row
    expect([...await ledger.buyerTotals({ buyer: 'ann', skus: ['A'] }), ...await ledger.buyerTotals({ buyer: 'bea', skus: ['A'] })]).toEqual(rowsSwept);

    // The same totals, folded from the entries that name a buyer.
    const folded = new Map<string, number>();
    for (const e of await readAllEntries(ledger)) {
      if (e.buyer !== undefined) folded.set(JSON.stringify([e.sku, e.buyer]), (folded.get(JSON.stringify([e.sku, e.buyer])) ?? 0) + e.reservedDelta - e.onHandDelta);
    }
    expect([...folded].filter(([, taken]) => taken !== 0).map(([key, taken]) => {
      const [sku, buyer] = JSON.parse(key) as [string, string];
      return { sku, buyer, taken };
    })).toEqual(rowsSwept);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
    await ledger.close();
  });

  it('two stores on one file: one buyer hammering both never passes the limit', async () => {
    const path = freshPath();
    const clock = { now: T0 };
    const one = open(path, clock);
    const two = open(path, clock, { groupCommit: false });
    await one.restock({ requestId: 'r1', sku: 'A', qty: 100 });
    await two.setPolicy({ requestId: 'p1', sku: 'A', buyerMax: 5 });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => {
      const ledger = i % 2 === 0 ? one : two;
      return i % 3 === 0
        ? ledger.reserve({ requestId: `c${i}`, lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000, buyer: 'ann' })
        : ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1, buyer: 'ann' });
    }));
    expect(results.filter((r) => r.ok)).toHaveLength(5);
    expect(results.filter((r) => !r.ok).every((r) => r.code === 'BUYER_LIMIT')).toBe(true);
    expect(totalRows(path)).toEqual([{ sku: 'A', buyer: 'ann', taken: 5 }]);
    for (const ledger of [one, two]) expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 5 }]);
    expect(await one.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    await Promise.all([one.close(), two.close()]);
  });

  it('verify() reports a tampered, lost or planted buyer total as buyerTotals, with both sides', async () => {
    const path = freshPath();
    const clock = { now: T0 };
    const ledger = open(path, clock);
    await ledger.restock({ requestId: 'r1', sku: 'A', qty: 10 });
    await ledger.setPolicy({ requestId: 'p1', sku: 'A', buyerMax: 5 });
    await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2, buyer: 'ann' });
    await ledger.reserve({ requestId: 'c1', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000, buyer: 'b\u0000' });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    const raw = new Database(path);
    const drifts = async (): Promise<unknown[]> => (await ledger.verify()).drift.map(({ sku, invariant, expected, actual }) => ({ sku, invariant, expected, actual }));

    raw.prepare("UPDATE stock_ledger_buyer_totals SET taken = 4 WHERE sku = 'A' AND buyer = 'ann'").run();
    expect(await drifts()).toEqual([{ sku: 'A', invariant: 'buyerTotals', expected: { buyer: 'ann', taken: 2 }, actual: { buyer: 'ann', taken: 4 } }]);
    // The tampered total is what the limit sees, until the store is repaired: 4 + 2 > 5.
    expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 2, buyer: 'ann' })).toMatchObject({ code: 'BUYER_LIMIT', taken: 4 });
    raw.prepare("UPDATE stock_ledger_buyer_totals SET taken = 2 WHERE sku = 'A' AND buyer = 'ann'").run();

    // Bound, not inlined: SQL text ends at its first U+0000.
    raw.prepare('DELETE FROM stock_ledger_buyer_totals WHERE buyer = ?').run('b\u0000');
    expect(await drifts()).toEqual([{ sku: 'A', invariant: 'buyerTotals', expected: { buyer: 'b\u0000', taken: 1 }, actual: { buyer: 'b\u0000', taken: 0 } }]);
    raw.prepare("INSERT INTO stock_ledger_buyer_totals (sku, buyer, taken) VALUES ('A', ?, 1), ('A', 'b', 7)").run('b\u0000');
    expect(await drifts()).toEqual([{ sku: 'A', invariant: 'buyerTotals', expected: { buyer: 'b', taken: 0 }, actual: { buyer: 'b', taken: 7 } }]);
    raw.prepare("DELETE FROM stock_ledger_buyer_totals WHERE buyer = 'b'").run();

    // An entry's buyer rewritten: the fold moves, the stored totals do not.
    raw.prepare("UPDATE stock_ledger_entries SET buyer = 'bea' WHERE request_id = 'd1'").run();
    expect(await drifts()).toEqual([
      { sku: 'A', invariant: 'buyerTotals', expected: { buyer: 'ann', taken: 0 }, actual: { buyer: 'ann', taken: 2 } },
      { sku: 'A', invariant: 'buyerTotals', expected: { buyer: 'bea', taken: 2 }, actual: { buyer: 'bea', taken: 0 } },
    ]);
    raw.prepare("UPDATE stock_ledger_entries SET buyer = 'ann' WHERE request_id = 'd1'").run();
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    // The table refuses a total of 0 or less: a missing row is the only 0.
    expect(() => raw.prepare("UPDATE stock_ledger_buyer_totals SET taken = 0 WHERE buyer = 'ann'").run()).toThrow(/CHECK constraint failed/);
    raw.close();
    await ledger.close();
  });
});
