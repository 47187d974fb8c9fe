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
import { decodeKey, encodeKey } from '../adapters/postgres/postgres-codec.js';
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
});
