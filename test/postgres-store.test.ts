/**
 * What only the PostgreSQL store has: key escaping, options, the schema and its migrations,
 * the error mapping, group commit, a single shared pg Client, and the executor interface.
 */
import fc from 'fast-check';
import pg from 'pg';
import { StockLedger, isStockLedgerError } from 'stock-ledger';
import { PostgresStore, SCHEMA_VERSION, migrate, schemaVersion, type PostgresExecutor } from 'stock-ledger/postgres';
import { compareCodePoints } from 'stock-ledger/store';
import { readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectorOf } from '../adapters/postgres/postgres-client.js';
import { decodeKey, encodeKey } from '../adapters/postgres/postgres-codec.js';
import { migrateWith } from '../adapters/postgres/postgres-schema.js';
import { toDeduct, toRestock } from '../src/validate.js';
import { codeOf } from './support/codes.js';
import { expectEntriesOnce } from './support/entry-checks.js';
import { createDatabase, describePostgres, startPostgres, type PostgresServer } from './support/postgres-server.js';
import { quietPool } from './support/postgres-server.js';

describe('PostgreSQL key escaping (text cannot hold U+0000)', () => {
  it('round-trips, keeps code-point order, and never stores U+0000', () => {
    const seed = Number(process.env['STOCK_LEDGER_SEED'] ?? Date.now() % 1_000_000);
    console.log(`key escaping: seed ${seed}`);
    const key = fc.string({ unit: fc.constantFrom('\u0000', '\u0001', '\u0002', 'a', '\uffff', '😀'), maxLength: 8 });
    fc.assert(fc.property(key, key, (a, b) => {
      expect(decodeKey(encodeKey(a))).toBe(a);
      expect(encodeKey(a).includes('\u0000')).toBe(false);
      expect(Math.sign(compareCodePoints(encodeKey(a), encodeKey(b)))).toBe(Math.sign(compareCodePoints(a, b)));
    }), { seed, numRuns: 2000 });
    expect(encodeKey('a\u0000b')).toBe('a\u0001\u0001b');
    expect(encodeKey('a\u0001b')).toBe('a\u0001\u0002b');
  });
});

let server: PostgresServer | undefined;
let database: { name: string; url: string; drop(): Promise<void> } | undefined;
let pool: pg.Pool;
let schemas = 0;
const fresh = (): string => `st_${(schemas += 1)}`;

describePostgres('PostgreSQL store', () => {
  beforeAll(async () => {
    server = await startPostgres();
    database = await createDatabase(server, 'store');
    pool = quietPool({ connectionString: database.url, max: 10 });
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
    await server?.stop();
  });

  it('options are checked: schema name, group commit bounds, lock timeout, client shape', () => {
    for (const schema of ['', 'Has-Caps', '1abc', 'pg_x', 'a;drop', 'x'.repeat(64)]) {
      expect(() => new PostgresStore({ client: pool, schema }), schema).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    }
    expect(() => new PostgresStore({ client: pool, groupCommit: { batchOperationsMax: 0 } })).toThrow(/batchOperationsMax/);
    expect(() => new PostgresStore({ client: pool, groupCommit: { batchWaitMs: 101 } })).toThrow(/batchWaitMs/);
    expect(() => new PostgresStore({ client: pool, groupCommit: { batchesInFlightMax: 17 } })).toThrow(/batchesInFlightMax/);
    expect(() => new PostgresStore({ client: pool, groupCommit: { batchSize: 3 } as never })).toThrow(/not an option/);
    expect(() => new PostgresStore({ client: pool, lockTimeoutMs: 0 })).toThrow(/lockTimeoutMs/);
    expect(() => new PostgresStore({ client: {} as never })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(new PostgresStore({ client: pool }).schema).toBe('stock_ledger');
  });

  it('migrate() creates the schema (version table included); a store with migrate: false uses it; a newer schema is refused', async () => {
    const schema = fresh();
    expect(await schemaVersion({ client: pool, schema })).toBe(0);
    expect(await migrate({ client: pool, schema })).toBe(SCHEMA_VERSION);
    expect(await migrate({ client: pool, schema })).toBe(SCHEMA_VERSION);
    expect(await schemaVersion({ client: pool, schema })).toBe(SCHEMA_VERSION);
    const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema, migrate: false }) });
    expect((await ledger.restock({ requestId: 'r', sku: 'A', qty: 1 })).ok).toBe(true);
    // App tables with the usual names live elsewhere: nothing collides with them.
    await pool.query('CREATE TABLE IF NOT EXISTS public.stock_levels (sku text)');
    expect((await ledger.stock('A')).onHand).toBe(1);

    const newer = fresh();
    await migrate({ client: pool, schema: newer });
    await pool.query(`UPDATE ${newer}.schema_version SET version = ${SCHEMA_VERSION + 1}`);
    const refused = new StockLedger({ store: new PostgresStore({ client: pool, schema: newer }), retry: false });
    expect(await codeOf(() => refused.restock({ requestId: 'r', sku: 'A', qty: 1 }))).toBe('INVALID_INPUT');
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${newer}.entries`)).rows[0]).toEqual({ n: 0 });
  });

  it('a lock held past lockTimeoutMs, a statement timeout, a pool that cannot lend a connection, an ended pool, a refused connection: STORE_UNAVAILABLE', async () => {
    const schema = fresh();
    const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema, lockTimeoutMs: 200, groupCommit: false }), retry: false });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    const app = await pool.connect();
    try {
      await app.query('BEGIN');
      await ledger.deduct({ requestId: 'held', sku: 'A', qty: 1 }, { transaction: app });
      const startedMs = performance.now();
      const error = await ledger.deduct({ requestId: 'waits', sku: 'A', qty: 1 }).catch((e: unknown) => e);
      expect(isStockLedgerError(error) && error.code).toBe('STORE_UNAVAILABLE');
      expect(((error as Error).cause as { code?: string }).code).toBe('55P03');
      expect(performance.now() - startedMs).toBeLessThan(3000);
      await app.query('COMMIT');
    } finally {
      app.release();
    }
    expect(await ledger.request('waits')).toBeNull();
    expect((await ledger.deduct({ requestId: 'waits', sku: 'A', qty: 1 })).ok).toBe(true);

    // A statement timeout (57014) is STORE_UNAVAILABLE too: here it fires before the lock timeout.
    const impatient = quietPool({ connectionString: (database as { url: string }).url, max: 2, statement_timeout: 150 });
    const impatientLedger = new StockLedger({ store: new PostgresStore({ client: impatient, schema, groupCommit: false }), retry: false });
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await ledger.deduct({ requestId: 'held-2', sku: 'A', qty: 1 }, { transaction: holder });
      const timedOut = await impatientLedger.deduct({ requestId: 'times-out', sku: 'A', qty: 1 }).catch((e: unknown) => e);
      expect(isStockLedgerError(timedOut) && timedOut.code).toBe('STORE_UNAVAILABLE');
      expect(((timedOut as Error).cause as { code?: string }).code).toBe('57014');
      await holder.query('COMMIT');
    } finally {
      holder.release();
      await impatient.end();
    }
    expect(await ledger.request('times-out')).toBeNull();

    const tiny = quietPool({ connectionString: (database as { url: string }).url, max: 1, connectionTimeoutMillis: 100 });
    const tinyLedger = new StockLedger({ store: new PostgresStore({ client: tiny, schema }), retry: false });
    await tinyLedger.stock('A');
    const hog = await tiny.connect();
    expect(await codeOf(() => tinyLedger.deduct({ requestId: 'pool-timeout', sku: 'A', qty: 1 }))).toBe('STORE_UNAVAILABLE');
    hog.release();
    await tiny.end();
    expect(await codeOf(() => tinyLedger.deduct({ requestId: 'ended', sku: 'A', qty: 1 }))).toBe('STORE_UNAVAILABLE');

    const nowhere = quietPool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMillis: 500 });
    const lost = new StockLedger({ store: new PostgresStore({ client: nowhere }), retry: false });
    expect(await codeOf(() => lost.stock('A'))).toBe('STORE_UNAVAILABLE');
    await nowhere.end();
  });

  it('group commit: 100 concurrent operations share few transactions, each with its own outcome', async () => {
    const schema = fresh();
    const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema, groupCommit: { batchesInFlightMax: 2 } }) });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 60 });
    // Every write of the store takes one op from the ledger's sequence: the count of writes.
    const writes = async (): Promise<number> => Number((await pool.query(`SELECT last_value FROM ${schema}.ops`)).rows[0].last_value);
    const before = await writes();
    const results = await Promise.all([
      ...Array.from({ length: 80 }, (_, i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })),
      ledger.deduct({ requestId: 'd0', sku: 'A', qty: 1 }), // a replay of one in the same batch
      ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2 }).catch((e: unknown) => e), // a conflict
      ...Array.from({ length: 18 }, (_, i) => ledger.restock({ requestId: `s${i}`, sku: `S${i}`, qty: 1 })),
    ]);
    const after = await writes();
    const applied = results.slice(0, 80).filter((r) => 'ok' in (r as object) && (r as { ok: boolean }).ok);
    expect(applied).toHaveLength(60);
    expect(results.slice(0, 80).filter((r) => (r as { code?: string }).code === 'INSUFFICIENT_STOCK')).toHaveLength(20);
    expect(results[80]).toMatchObject({ ok: true, replayed: true });
    expect(isStockLedgerError(results[81]) && (results[81] as { code: string }).code).toBe('IDEMPOTENCY_CONFLICT');
    expect((await ledger.stock('A')).onHand).toBe(0);
    // One write per batch (a sold-out deduct writes nothing): far fewer than the 79 that wrote.
    console.log(`group commit: 100 operations, ${after - before} writing transactions`);
    expect(after - before).toBeGreaterThanOrEqual(1);
    expect(after - before).toBeLessThan(20);
    expectEntriesOnce(await readAllEntries(ledger));
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('opposite-order carts never deadlock: rows are locked in one global order (with and without group commit)', async () => {
    for (const groupCommit of [false, true]) {
      const schema = fresh();
      const states: string[] = [];
      // The pool as an executor that records every SQLSTATE a statement failed with.
      const watch = (run: (text: string, values: unknown[]) => Promise<pg.QueryResult>) => async (text: string, values: readonly unknown[]) => {
        try {
          return { rows: (await run(text, [...values])).rows };
        } catch (error) {
          states.push(String((error as { code?: unknown }).code));
          throw error;
        }
      };
      const executor: PostgresExecutor = {
        query: watch((text, values) => pool.query(text, values)),
        connection: async (fn) => {
          const c = await pool.connect();
          try {
            return await fn({ query: watch((text, values) => c.query(text, values)) });
          } finally {
            c.release();
          }
        },
      };
      const ledger = new StockLedger({ store: new PostgresStore({ client: executor, schema, groupCommit, lockTimeoutMs: 20_000 }) });
      const skus = ['A', 'B', 'C', 'D'];
      for (const sku of skus) await ledger.restock({ requestId: `r-${sku}`, sku, qty: 10_000 });
      const carts = Array.from({ length: 200 }, (_, i) => {
        const lines = [0, 1, 2, 3].map((k) => ({ sku: skus[(i + k) % 4] as string, qty: 1 }));
        return ledger.deduct({ requestId: `cart-${i}`, lines: i % 2 === 0 ? lines : lines.reverse() });
      });
      expect((await Promise.all(carts)).every((r) => r.ok)).toBe(true);
      expect(states.filter((s) => s === '40P01'), `groupCommit ${groupCommit}`).toEqual([]);
      for (const sku of skus) expect((await ledger.stock(sku)).onHand).toBe(10_000 - 200);
    }
  });

  it('a single pg Client: operations not handed its transaction wait for the app to end it and never run inside it', async () => {
    const schema = fresh();
    const client = new pg.Client({ connectionString: (database as { url: string }).url });
    await client.connect();
    try {
      const ledger = new StockLedger({ store: new PostgresStore({ client, schema }) });
      await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
      await client.query('BEGIN');
      expect((await ledger.deduct({ requestId: 'inside', sku: 'A', qty: 1 }, { transaction: client })).ok).toBe(true);
      let settled = false;
      const outside = ledger.deduct({ requestId: 'outside', sku: 'A', qty: 1 }).finally(() => {
        settled = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(settled).toBe(false);
      await client.query('ROLLBACK');
      expect(await outside).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 4 }] });
      // The app's rollback undid its own deduct only.
      expect(await ledger.request('inside')).toBeNull();
      expect((await ledger.stock('A')).onHand).toBe(4);
    } finally {
      await client.end();
    }
  });

  it('an executor { query, connection } (the shape Kysely and Drizzle adapters take) runs the store and joins a transaction', async () => {
    const schema = fresh();
    const asExecutor = (c: pg.PoolClient): PostgresExecutor => ({ query: async (text, values) => ({ rows: (await c.query(text, [...values])).rows }) });
    const executor: PostgresExecutor = {
      query: async (text, values) => ({ rows: (await pool.query(text, [...values])).rows }),
      connection: async (fn) => {
        const c = await pool.connect();
        try {
          return await fn(asExecutor(c));
        } finally {
          c.release();
        }
      },
    };
    const ledger = new StockLedger({ store: new PostgresStore({ client: executor, schema }) });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    expect(await Promise.all([1, 2, 3].map((i) => ledger.deduct({ requestId: `e${i}`, sku: 'A', qty: 1 })))).toMatchObject([{ ok: true }, { ok: true }, { ok: true }]);
    const app = await pool.connect();
    try {
      await app.query('BEGIN');
      expect((await ledger.deduct({ requestId: 'joined', sku: 'A', qty: 2 }, { transaction: asExecutor(app) })).ok).toBe(true);
      await app.query('ROLLBACK');
    } finally {
      app.release();
    }
    expect(await ledger.request('joined')).toBeNull();
    expect((await ledger.stock('A')).onHand).toBe(2);
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  describe('setPolicy', () => {
    const policyLedger = (options: { groupCommit?: boolean } = {}): StockLedger =>
      new StockLedger({ store: new PostgresStore({ client: pool, schema: fresh(), ...options }) });

    it('applies, shows the policy on levels and on its entry, and every replay rebuilds the levels of its moment', async () => {
      const ledger = policyLedger();
      await ledger.restock({ requestId: 'r', sku: 'A', qty: 10 });
      const set = await ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 5, lowStockAt: 3 });
      const level = { sku: 'A', onHand: 10, reserved: 0, available: 15, version: 2, policy: { backorderMax: 5, lowStockAt: 3 } };
      expect(set).toMatchObject({ ok: true, replayed: false, levels: [level] });
      expect(set.ok && set.entries).toMatchObject([{ kind: 'policy', onHandDelta: 0, reservedDelta: 0, policy: { backorderMax: 5, lowStockAt: 3 } }]);
      const sold = await ledger.deduct({ requestId: 'd', sku: 'A', qty: 12 });
      // A later change resets lowStockAt, then backorderMax: the level shows no policy once it is the default again.
      await ledger.setPolicy({ requestId: 'p2', sku: 'A', lowStockAt: null });
      await ledger.restock({ requestId: 'r2', sku: 'A', qty: 2 });
      const reset = await ledger.setPolicy({ requestId: 'p3', sku: 'A', backorderMax: null });
      expect(reset).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 0, reserved: 0, available: 0, version: 6 }] });
      expect(reset.ok && reset.levels[0]).not.toHaveProperty('policy');
      expect(reset.ok && reset.entries[0]?.policy).toEqual({ backorderMax: 0, lowStockAt: null });

      const again = await ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 5, lowStockAt: 3 });
      expect(again).toEqual({ ...set, replayed: true });
      expect(await ledger.deduct({ requestId: 'd', sku: 'A', qty: 12 })).toEqual({ ...sold, replayed: true });
      expect(sold).toMatchObject({ ok: true, levels: [{ onHand: -2, available: 3, policy: { backorderMax: 5, lowStockAt: 3 } }] });
      expect(await ledger.setPolicy({ requestId: 'p3', sku: 'A', backorderMax: null })).toEqual({ ...reset, replayed: true });
      expect(await ledger.request('p1')).toMatchObject({ requestId: 'p1', kind: 'policy', entries: set.ok && set.entries, levels: set.ok && set.levels });
      expect(await codeOf(() => ledger.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 6 }))).toBe('IDEMPOTENCY_CONFLICT');
      expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 0, reserved: 0, available: 0, version: 6 });
      expect(await ledger.verify()).toMatchObject({ ok: true });
    });

    it('a backorder lets onHand go negative, up to backorderMax; a restock fills it', async () => {
      const ledger = policyLedger();
      // A SKU never seen: its level row is made by the policy.
      expect(await ledger.setPolicy({ requestId: 'open', sku: 'B', backorderMax: 10 })).toMatchObject({ ok: true, levels: [{ onHand: 0, available: 10, version: 1 }] });
      expect(await ledger.deduct({ requestId: 'd1', sku: 'B', qty: 7 })).toMatchObject({ ok: true, levels: [{ onHand: -7, available: 3 }] });
      expect(await ledger.reserve({ requestId: 'h1', lines: [{ sku: 'B', qty: 2 }], ttlMs: 60_000 })).toMatchObject({ ok: true });
      expect(await ledger.deduct({ requestId: 'd2', sku: 'B', qty: 2 })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 1 });
      expect(await ledger.restock({ requestId: 'r1', sku: 'B', qty: 10 })).toMatchObject({ ok: true, levels: [{ onHand: 3, reserved: 2, available: 11 }] });
      expect(await ledger.commit({ reservationId: 'h1' })).toMatchObject({ ok: true, levels: [{ onHand: 1, reserved: 0, available: 11 }] });
      expect(await ledger.stock('B')).toEqual({ sku: 'B', onHand: 1, reserved: 0, available: 11, version: 5, policy: { backorderMax: 10, lowStockAt: null } });
      expect(await ledger.verify()).toMatchObject({ ok: true });
    });

    it('one group-commit batch: a deduct queued right after a setPolicy sees the backorder', async () => {
      const ledger = policyLedger();
      const [set, sold] = await Promise.all([
        ledger.setPolicy({ requestId: 'p', sku: 'C', backorderMax: 3 }),
        ledger.deduct({ requestId: 'd', sku: 'C', qty: 3 }),
      ]);
      expect(set).toMatchObject({ ok: true });
      expect(sold).toMatchObject({ ok: true, levels: [{ onHand: -3, available: 0, policy: { backorderMax: 3, lowStockAt: null } }] });
      expect(await ledger.deduct({ requestId: 'd', sku: 'C', qty: 3 })).toEqual({ ...sold, replayed: true });
    });

    it('BELOW_RESERVED when backorderMax would fall under what is held; the table refuses it too', async () => {
      const schema = fresh();
      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      await ledger.setPolicy({ requestId: 'p1', sku: 'C', backorderMax: 5 });
      await ledger.reserve({ requestId: 'h', lines: [{ sku: 'C', qty: 4 }], ttlMs: 60_000 });
      const level = { sku: 'C', onHand: 0, reserved: 4, available: 1, version: 2, policy: { backorderMax: 5, lowStockAt: null } };
      expect(await ledger.setPolicy({ requestId: 'p2', sku: 'C', backorderMax: 3 })).toEqual({ ok: false, code: 'BELOW_RESERVED', sku: 'C', requested: 3, level });
      // A rejection records nothing: the same id may try again, with another payload.
      expect(await ledger.request('p2')).toBeNull();
      expect(await ledger.setPolicy({ requestId: 'p2', sku: 'C', backorderMax: 4 })).toMatchObject({ ok: true, levels: [{ available: 0, version: 3 }] });
      const broken = await pool.query(`UPDATE ${schema}.levels SET backorder_max = 3 WHERE sku = 'C'`).catch((e: unknown) => e);
      expect((broken as { code?: string; constraint?: string })).toMatchObject({ code: '23514', constraint: 'levels_available' });
      expect(await ledger.verify()).toMatchObject({ ok: true });
    });

    it('the feed carries the policy on policy entries only; joined and rolled back, a policy leaves nothing', async () => {
      const ledger = policyLedger();
      await ledger.restock({ requestId: 'r', sku: 'D', qty: 1 });
      await ledger.setPolicy({ requestId: 'p', sku: 'D', lowStockAt: 2, meta: { by: 'ops' } });
      await ledger.deduct({ requestId: 'd', sku: 'D', qty: 1 });
      const feed = await readAllEntries(ledger);
      expect(feed.map((e) => [e.kind, e.policy])).toEqual([['restock', undefined], ['policy', { backorderMax: 0, lowStockAt: 2 }], ['deduct', undefined]]);
      expect(feed[1]).toMatchObject({ seq: 2, requestId: 'p', meta: { by: 'ops' }, onHandAfter: 1 });
      expect((await ledger.entries({ sku: 'D', after: 1 })).entries[0]?.policy).toEqual({ backorderMax: 0, lowStockAt: 2 });

      const app = await pool.connect();
      try {
        await app.query('BEGIN');
        const joined = await ledger.setPolicy({ requestId: 'j', sku: 'D', backorderMax: 9 }, { transaction: app });
        expect(joined).toMatchObject({ ok: true, entries: [{ seq: null, policy: { backorderMax: 9, lowStockAt: 2 } }] });
        await app.query('ROLLBACK');
      } finally {
        app.release();
      }
      expect(await ledger.request('j')).toBeNull();
      expect((await ledger.stock('D')).policy).toEqual({ backorderMax: 0, lowStockAt: 2 });
      expect(await ledger.verify()).toMatchObject({ ok: true });
    });

    it('a ledger at schema version 3 upgrades: its data and replays stay, and onHand may then go negative', async () => {
      const schema = fresh();
      expect(await migrateWith(connectorOf(pool), schema, 3)).toBe(3);
      // What version 3 held after a restock of 5 and a deduct of 2, as its flush wrote them.
      const restock = toRestock({ requestId: 'r', sku: 'A', qty: 5 }, 1000);
      const deduct = toDeduct({ requestId: 'd', sku: 'A', qty: 2 }, 2000);
      await pool.query(`
        INSERT INTO ${schema}.levels (sku, on_hand, reserved, version) VALUES ('A', 3, 0, 2);
        INSERT INTO ${schema}.entries (op, pos, seq, request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, version_after, at, meta)
          VALUES (1, 0, 1, 'r', 'restock', 'A', 5, 0, 5, 0, 1, 1000, NULL), (2, 0, 2, 'd', 'deduct', 'A', -2, 0, 3, 0, 2, 2000, NULL);
        INSERT INTO ${schema}.requests (request_id, kind, fingerprint, at) VALUES ('r', 'restock', '${restock.fingerprint}', 1000), ('d', 'deduct', '${deduct.fingerprint}', 2000);
        SELECT setval('${schema}.ops', 2);`);
      expect(await schemaVersion({ client: pool, schema })).toBe(3);

      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 3, reserved: 0, available: 3, version: 2 });
      expect(await schemaVersion({ client: pool, schema })).toBe(SCHEMA_VERSION);
      expect(await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 })).toEqual({
        ok: true, replayed: true, levels: [{ sku: 'A', onHand: 5, reserved: 0, available: 5, version: 1 }],
        entries: [{ seq: 1, requestId: 'r', kind: 'restock', sku: 'A', onHandDelta: 5, reservedDelta: 0, onHandAfter: 5, reservedAfter: 0, at: 1000 }],
      });
      expect(await ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 4 })).toMatchObject({ ok: true, levels: [{ version: 3, available: 7 }] });
      expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 7 })).toMatchObject({ ok: true, levels: [{ onHand: -4, available: 0, version: 4 }] });
      expect((await readAllEntries(ledger)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      expect(await ledger.verify()).toMatchObject({ ok: true });
    });
  });
});
