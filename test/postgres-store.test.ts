/**
 * What only the PostgreSQL store has: key escaping, options, the schema and its migrations,
 * the error mapping, group commit, a single shared pg Client, and the executor interface.
 */
import fc from 'fast-check';
import pg from 'pg';
import { StockLedger, isStockLedgerError } from 'stock-ledger';
import { PostgresStore, SCHEMA_VERSION, migrate, schemaVersion, type PostgresExecutor } from 'stock-ledger/postgres';
import { compareCodePoints } from 'stock-ledger/store';
import { checkInvariants, readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectorOf } from '../adapters/postgres/postgres-client.js';
import { decodeKey, encodeKey } from '../adapters/postgres/postgres-codec.js';
import { migrateWith } from '../adapters/postgres/postgres-schema.js';
import { toDeduct, toReserve, toRestock, toSetPolicy } from '../src/validate.js';
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
      const level = { sku: 'A', onHand: 10, reserved: 0, available: 15, version: 2, policy: { backorderMax: 5, lowStockAt: 3, buyerMax: null } };
      expect(set).toMatchObject({ ok: true, replayed: false, levels: [level] });
      expect(set.ok && set.entries).toMatchObject([{ kind: 'policy', onHandDelta: 0, reservedDelta: 0, policy: { backorderMax: 5, lowStockAt: 3 } }]);
      const sold = await ledger.deduct({ requestId: 'd', sku: 'A', qty: 12 });
      // A later change resets lowStockAt, then backorderMax: the level shows no policy once it is the default again.
      await ledger.setPolicy({ requestId: 'p2', sku: 'A', lowStockAt: null });
      await ledger.restock({ requestId: 'r2', sku: 'A', qty: 2 });
      const reset = await ledger.setPolicy({ requestId: 'p3', sku: 'A', backorderMax: null });
      expect(reset).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 0, reserved: 0, available: 0, version: 6 }] });
      expect(reset.ok && reset.levels[0]).not.toHaveProperty('policy');
      expect(reset.ok && reset.entries[0]?.policy).toEqual({ backorderMax: 0, lowStockAt: null, buyerMax: null });

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
      expect(await ledger.stock('B')).toEqual({ sku: 'B', onHand: 1, reserved: 0, available: 11, version: 5, policy: { backorderMax: 10, lowStockAt: null, buyerMax: null } });
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
      const level = { sku: 'C', onHand: 0, reserved: 4, available: 1, version: 2, policy: { backorderMax: 5, lowStockAt: null, buyerMax: null } };
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
      expect(feed.map((e) => [e.kind, e.policy])).toEqual([['restock', undefined], ['policy', { backorderMax: 0, lowStockAt: 2, buyerMax: null }], ['deduct', undefined]]);
      expect(feed[1]).toMatchObject({ seq: 2, requestId: 'p', meta: { by: 'ops' }, onHandAfter: 1 });
      expect((await ledger.entries({ sku: 'D', after: 1 })).entries[0]?.policy).toEqual({ backorderMax: 0, lowStockAt: 2, buyerMax: null });

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
      expect((await ledger.stock('D')).policy).toEqual({ backorderMax: 0, lowStockAt: 2, buyerMax: null });
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

  describe('purchase limits (buyerMax)', () => {
    /** The buyer totals as stored, keys decoded: `sku|buyer` would collide, so pairs. */
    const storedTotals = async (schema: string): Promise<Array<[string, string, number]>> =>
      (await pool.query(`SELECT sku, buyer, qty FROM ${schema}.buyer_totals ORDER BY sku, buyer`)).rows
        .map((r: { sku: string; buyer: string; qty: string }) => [decodeKey(r.sku), decodeKey(r.buyer), Number(r.qty)] as [string, string, number]);
    const takenOf = async (ledger: StockLedger, buyer: string, sku: string): Promise<number> =>
      (await ledger.buyerTotals({ buyer, skus: [sku] }))[0]?.taken ?? Number.NaN;

    it('buyers with odd strings (U+0000, U+0001, emoji) keep totals of their own, in their own column, escaped', async () => {
      const schema = fresh();
      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      // (SKU "x\u0000y", buyer "a") and (SKU "x", buyer "y\u0000a") share "x\u0000y\u0000a" under a separator key.
      const odd = 'x\u0000y';
      await ledger.restock({ requestId: 'r1', sku: odd, qty: 100 });
      await ledger.restock({ requestId: 'r2', sku: 'x', qty: 100 });
      await ledger.setPolicy({ requestId: 'p1', sku: odd, buyerMax: 5 });
      await ledger.setPolicy({ requestId: 'p2', sku: 'x', buyerMax: 9 });
      const first = await ledger.deduct({ requestId: 'd1', sku: odd, qty: 3, buyer: 'a\u0000b' });
      expect(first).toMatchObject({ ok: true, entries: [{ sku: odd, buyer: 'a\u0000b' }] });
      await ledger.deduct({ requestId: 'd2', sku: odd, qty: 1, buyer: 'a' });
      await ledger.deduct({ requestId: 'd3', sku: 'x', qty: 4, buyer: 'y\u0000a' });
      await ledger.reserve({ requestId: 'h1', lines: [{ sku: odd, qty: 2 }, { sku: 'x', qty: 6 }], ttlMs: 60_000, buyer: '😀\u0001' });
      await ledger.deduct({ requestId: 'd4', lines: [{ sku: odd, qty: 5 }, { sku: 'x', qty: 1 }], buyer: '\u0000' });

      expect(await ledger.buyerTotals({ buyer: 'a\u0000b', skus: [odd, 'x'] })).toEqual([{ sku: odd, buyer: 'a\u0000b', taken: 3 }, { sku: 'x', buyer: 'a\u0000b', taken: 0 }]);
      expect(await takenOf(ledger, 'a', odd)).toBe(1);
      expect(await takenOf(ledger, 'a', 'x')).toBe(0);
      expect(await takenOf(ledger, 'y\u0000a', 'x')).toBe(4);
      expect(await takenOf(ledger, 'y\u0000a', odd)).toBe(0);
      expect(await takenOf(ledger, '😀\u0001', odd)).toBe(2);
      expect(await takenOf(ledger, '😀\u0001', 'x')).toBe(6);
      expect(await takenOf(ledger, '😀', 'x')).toBe(0);
      expect(await takenOf(ledger, '\u0000', odd)).toBe(5);
      // Raw rows: one per pair, separate columns; PostgreSQL text holds no U+0000, so keys are escaped.
      const rows = await storedTotals(schema);
      expect(rows).toEqual(expect.arrayContaining([
        [odd, 'a\u0000b', 3], [odd, 'a', 1], [odd, '😀\u0001', 2], [odd, '\u0000', 5], ['x', 'y\u0000a', 4], ['x', '😀\u0001', 6], ['x', '\u0000', 1],
      ]));
      expect(rows).toHaveLength(7);
      expect((await pool.query(`SELECT buyer FROM ${schema}.buyer_totals WHERE sku = 'x' AND qty = 4`)).rows).toEqual([{ buyer: 'y\u0001\u0001a' }]);

      expect(await ledger.deduct({ requestId: 'd5', sku: odd, qty: 3, buyer: 'a\u0000b' }))
        .toEqual({ ok: false, code: 'BUYER_LIMIT', sku: odd, buyer: 'a\u0000b', limit: 5, taken: 3 });
      expect(await ledger.deduct({ requestId: 'd1', sku: odd, qty: 3, buyer: 'a\u0000b' })).toEqual({ ...first, replayed: true });
      expect(await codeOf(() => ledger.deduct({ requestId: 'd1', sku: odd, qty: 3, buyer: 'a\u0001b' }))).toBe('IDEMPOTENCY_CONFLICT');
      expect((await ledger.holds({ sku: odd })).holds.map((h) => [h.reservationId, h.buyer])).toEqual([['h1', '😀\u0001']]);
      expect((await ledger.reservation('h1'))?.buyer).toBe('😀\u0001');
      expect(await ledger.request('h1')).toMatchObject({ reservation: { id: 'h1', buyer: '😀\u0001' } });
      const feed = await readAllEntries(ledger);
      // Lines in SKU order: "x" before "x\u0000y".
      expect(feed.filter((e) => e.buyer !== undefined).map((e) => [e.requestId, e.sku, e.buyer])).toEqual([
        ['d1', odd, 'a\u0000b'], ['d2', odd, 'a'], ['d3', 'x', 'y\u0000a'], ['h1', 'x', '😀\u0001'], ['h1', odd, '😀\u0001'], ['d4', 'x', '\u0000'], ['d4', odd, '\u0000'],
      ]);
      // Releasing gives back: the rows of a buyer at 0 go.
      expect(await ledger.release({ reservationId: 'h1' })).toMatchObject({ ok: true, entries: [{ buyer: '😀\u0001' }, { buyer: '😀\u0001' }] });
      expect((await storedTotals(schema)).filter(([, buyer]) => buyer === '😀\u0001')).toEqual([]);
      expect(await ledger.verify()).toMatchObject({ ok: true });
      await checkInvariants(ledger);
    });

    it('a ledger at schema version 4 upgrades: its data, holds and replays stay, and the new limits apply', async () => {
      const schema = fresh();
      expect(await migrateWith(connectorOf(pool), schema, 4)).toBe(4);
      // What version 4 held after a restock, a policy, a deduct and a hold, as its flush wrote them.
      const now = Date.now();
      const restock = toRestock({ requestId: 'r', sku: 'A', qty: 10 }, now - 4000);
      const policy = toSetPolicy({ requestId: 'p', sku: 'A', backorderMax: 1 }, now - 3000);
      const deduct = toDeduct({ requestId: 'd', sku: 'A', qty: 2 }, now - 2000);
      const reserve = toReserve({ requestId: 'h', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000 }, now - 1000);
      await pool.query(`
        INSERT INTO ${schema}.levels (sku, on_hand, reserved, version, backorder_max, low_stock_at) VALUES ('A', 8, 2, 4, 1, NULL);
        INSERT INTO ${schema}.entries (op, pos, seq, request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, version_after, at, meta,
          backorder_max_after, low_stock_at_after) VALUES
          (1, 0, 1, 'r', 'restock', 'A', 10, 0, 10, 0, 1, ${now - 4000}, NULL, 0, NULL), (2, 0, 2, 'p', 'policy', 'A', 0, 0, 10, 0, 2, ${now - 3000}, NULL, 1, NULL),
          (3, 0, 3, 'd', 'deduct', 'A', -2, 0, 8, 0, 3, ${now - 2000}, NULL, 1, NULL), (4, 0, 4, 'h', 'reserve', 'A', 0, 2, 8, 2, 4, ${now - 1000}, NULL, 1, NULL);
        INSERT INTO ${schema}.requests (request_id, kind, fingerprint, at) VALUES ('r', 'restock', '${restock.fingerprint}', ${now - 4000}),
          ('p', 'policy', '${policy.fingerprint}', ${now - 3000}), ('d', 'deduct', '${deduct.fingerprint}', ${now - 2000}),
          ('h', 'reserve', '${reserve.fingerprint}', ${now - 1000});
        INSERT INTO ${schema}.reservations (id, state, lines, expires_at, created_at) VALUES ('h', 'held', '[{"sku":"A","qty":2}]', ${reserve.expiresAt}, ${now - 1000});
        INSERT INTO ${schema}.holds (reservation_id, sku, qty, expires_at) VALUES ('h', 'A', 2, ${reserve.expiresAt});
        SELECT setval('${schema}.ops', 4);`);

      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      const policyOfA = { backorderMax: 1, lowStockAt: null, buyerMax: null };
      expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 8, reserved: 2, available: 7, version: 4, policy: policyOfA });
      expect(await schemaVersion({ client: pool, schema })).toBe(SCHEMA_VERSION);
      expect(SCHEMA_VERSION).toBe(8);
      expect(await ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 1 })).toEqual({
        ok: true, replayed: true, levels: [{ sku: 'A', onHand: 10, reserved: 0, available: 11, version: 2, policy: policyOfA }],
        entries: [{ seq: 2, requestId: 'p', kind: 'policy', sku: 'A', onHandDelta: 0, reservedDelta: 0, onHandAfter: 10, reservedAfter: 0, at: now - 3000, policy: policyOfA }],
      });
      const held = await ledger.reserve({ requestId: 'h', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000 });
      expect(held).toMatchObject({ ok: true, replayed: true, reservation: { id: 'h', state: 'held', expiresAt: reserve.expiresAt } });
      expect(held.ok && held.reservation).not.toHaveProperty('buyer');
      expect(held.ok && held.entries[0]).not.toHaveProperty('buyer');
      expect((await ledger.holds({ sku: 'A' })).holds).toEqual([{ reservationId: 'h', sku: 'A', qty: 2, expiresAt: reserve.expiresAt }]);

      // The limits of version 5: a hold made before names no buyer, and commits as it was.
      expect(await ledger.setPolicy({ requestId: 'p2', sku: 'A', buyerMax: 2 })).toMatchObject({ ok: true, levels: [{ version: 5, policy: { buyerMax: 2 } }] });
      expect(await codeOf(() => ledger.deduct({ requestId: 'd2', sku: 'A', qty: 1 }))).toBe('INVALID_INPUT');
      expect(await ledger.commit({ reservationId: 'h' })).toMatchObject({ ok: true, entries: [{ kind: 'commit' }] });
      expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 2, buyer: 'ann' })).toMatchObject({ ok: true, entries: [{ buyer: 'ann' }] });
      expect(await ledger.deduct({ requestId: 'd3', sku: 'A', qty: 1, buyer: 'ann' })).toMatchObject({ ok: false, code: 'BUYER_LIMIT', taken: 2 });
      expect(await storedTotals(schema)).toEqual([['A', 'ann', 2]]);
      expect((await readAllEntries(ledger)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(await ledger.verify()).toMatchObject({ ok: true });
      await checkInvariants(ledger);
    });

    it('verify reports a tampered buyer total (invariant buyerTotals): changed, deleted, or made up', async () => {
      const schema = fresh();
      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      await ledger.restock({ requestId: 'r', sku: 'A', qty: 10 });
      await ledger.setPolicy({ requestId: 'p', sku: 'A', buyerMax: 4 });
      await ledger.deduct({ requestId: 'd', sku: 'A', qty: 3, buyer: 'ann' });
      await ledger.reserve({ requestId: 'h', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000, buyer: 'b\u0000b' });
      expect(await ledger.verify()).toMatchObject({ ok: true });

      await pool.query(`UPDATE ${schema}.buyer_totals SET qty = 2 WHERE buyer = 'ann'`);
      const changed = await ledger.verify();
      expect(changed.ok).toBe(false);
      expect(changed.drift).toEqual([expect.objectContaining({ sku: 'A', invariant: 'buyerTotals', expected: { buyer: 'ann', taken: 3 }, actual: { buyer: 'ann', taken: 2 } })]);
      // A tampered total also changes what the limit lets through: verify is how an operator finds out.
      expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 2, buyer: 'ann' })).toMatchObject({ ok: true });
      await pool.query(`UPDATE ${schema}.buyer_totals SET qty = 5 WHERE buyer = 'ann'`);

      await pool.query(`DELETE FROM ${schema}.buyer_totals WHERE buyer = 'b\u0001\u0001b'`);
      await pool.query(`INSERT INTO ${schema}.buyer_totals (sku, buyer, qty) VALUES ('A', 'ghost', 1)`);
      const report = await ledger.verify();
      expect(report.ok).toBe(false);
      expect(report.drift.map((d) => [d.invariant, d.expected, d.actual])).toEqual([
        ['buyerTotals', { buyer: 'b\u0000b', taken: 1 }, { buyer: 'b\u0000b', taken: 0 }],
        ['buyerTotals', { buyer: 'ghost', taken: 0 }, { buyer: 'ghost', taken: 1 }],
      ]);
      await pool.query(`INSERT INTO ${schema}.buyer_totals (sku, buyer, qty) VALUES ('A', 'b\u0001\u0001b', 1)`);
      await pool.query(`DELETE FROM ${schema}.buyer_totals WHERE buyer = 'ghost'`);
      expect(await ledger.verify()).toMatchObject({ ok: true });
    });

    it('joined: a deduct for a buyer rolled back leaves the total unchanged; one that waited for the lock then counts right', async () => {
      const schema = fresh();
      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      await ledger.restock({ requestId: 'r', sku: 'L', qty: 10 });
      await ledger.setPolicy({ requestId: 'p', sku: 'L', buyerMax: 3 });
      await ledger.deduct({ requestId: 'd0', sku: 'L', qty: 1, buyer: 'ann' });
      const app = await pool.connect();
      let waiting: ReturnType<StockLedger['deduct']> | undefined;
      try {
        await app.query('BEGIN');
        const inside = await ledger.deduct({ requestId: 'joined', sku: 'L', qty: 2, buyer: 'ann' }, { transaction: app });
        expect(inside).toMatchObject({ ok: true, entries: [{ seq: null, buyer: 'ann' }] });
        // Inside the app's transaction the total moved; outside it has not.
        expect((await app.query(`SELECT qty::int AS qty FROM ${schema}.buyer_totals WHERE buyer = 'ann'`)).rows).toEqual([{ qty: 3 }]);
        expect(await takenOf(ledger, 'ann', 'L')).toBe(1);
        // Would pass the limit if the app committed: it waits for the row lock, then reads the total as it is then.
        waiting = ledger.deduct({ requestId: 'waits', sku: 'L', qty: 2, buyer: 'ann' });
        await new Promise((resolve) => setTimeout(resolve, 100));
        await app.query('ROLLBACK');
      } finally {
        app.release();
      }
      expect(await waiting).toMatchObject({ ok: true, levels: [{ onHand: 7 }] });
      expect(await ledger.request('joined')).toBeNull();
      expect(await takenOf(ledger, 'ann', 'L')).toBe(3);
      expect(await storedTotals(schema)).toEqual([['L', 'ann', 3]]);

      // Committed, a joined take counts.
      const other = await pool.connect();
      try {
        await other.query('BEGIN');
        expect(await ledger.reserve({ requestId: 'bea-1', lines: [{ sku: 'L', qty: 3 }], ttlMs: 60_000, buyer: 'bea' }, { transaction: other }))
          .toMatchObject({ ok: true, reservation: { buyer: 'bea' } });
        await other.query('COMMIT');
      } finally {
        other.release();
      }
      expect(await takenOf(ledger, 'bea', 'L')).toBe(3);
      expect(await ledger.deduct({ requestId: 'bea-2', sku: 'L', qty: 1, buyer: 'bea' })).toMatchObject({ ok: false, code: 'BUYER_LIMIT', taken: 3 });
      expect(await ledger.verify()).toMatchObject({ ok: true });
      await checkInvariants(ledger);
    });

    it('concurrent takes by one buyer from several connections and stores never pass buyerMax, one SKU or several', async () => {
      const schema = fresh();
      const second = quietPool({ connectionString: (database as { url: string }).url, max: 6 });
      try {
        const stores = [
          new PostgresStore({ client: pool, schema, groupCommit: false }), new PostgresStore({ client: pool, schema }),
          new PostgresStore({ client: second, schema, groupCommit: false }), new PostgresStore({ client: second, schema, groupCommit: { batchesInFlightMax: 3 } }),
        ];
        const ledgers = stores.map((store) => new StockLedger({ store }));
        const [ledger] = ledgers as [StockLedger];
        await ledger.restock({ requestId: 'ra', sku: 'A', qty: 1000 });
        await ledger.restock({ requestId: 'rb', sku: 'B', qty: 1000 });
        await ledger.setPolicy({ requestId: 'pa', sku: 'A', buyerMax: 7 });
        await ledger.setPolicy({ requestId: 'pb', sku: 'B', buyerMax: 4 });
        const takes = Array.from({ length: 150 }, (_, i) => {
          const lines = i % 3 === 0 ? [{ sku: 'A', qty: 1 }] : i % 3 === 1 ? [{ sku: 'B', qty: 1 }] : [{ sku: 'B', qty: 1 }, { sku: 'A', qty: 1 }];
          const on = ledgers[i % ledgers.length] as StockLedger;
          // Some ids sent twice at once, to two stores: a replay, never a second take.
          const id = `t${i % 120}`;
          return i % 2 === 0
            ? on.deduct({ requestId: id, lines, buyer: 'whale' }).catch((e: unknown) => e)
            : on.reserve({ requestId: id, lines, ttlMs: 3_600_000, buyer: 'whale' }).catch((e: unknown) => e);
        });
        const results = await Promise.all(takes);
        expect(results.filter((r) => (r as { code?: string }).code === 'BUYER_LIMIT').length).toBeGreaterThan(0);
        for (const r of results) {
          if (isStockLedgerError(r)) expect(r.code).toBe('IDEMPOTENCY_CONFLICT');
          else expect((r as { ok: boolean; code?: string }).ok || (r as { code?: string }).code === 'BUYER_LIMIT').toBe(true);
        }
        // Single-line takes of 1 on each SKU outnumber the limits, and totals only grow here: each limit is met exactly.
        expect(await ledger.buyerTotals({ buyer: 'whale', skus: ['A', 'B'] })).toEqual([{ sku: 'A', buyer: 'whale', taken: 7 }, { sku: 'B', buyer: 'whale', taken: 4 }]);
        expect(await storedTotals(schema)).toEqual([['A', 'whale', 7], ['B', 'whale', 4]]);
        expect(await ledger.stocks(['A', 'B'])).toMatchObject([{ sku: 'A', available: 993 }, { sku: 'B', available: 996 }]);
        expect(await ledger.verify()).toMatchObject({ ok: true });
        await checkInvariants(ledger);
        await Promise.all(ledgers.map((l) => l.close()));
      } finally {
        await second.end();
      }
    });
  });

  describe('anyOf lines', () => {
    it('a ledger at schema version 5 upgrades: its requests replay without allocations; new ones keep theirs with the request, across a restart', async () => {
      const schema = fresh();
      expect(await migrateWith(connectorOf(pool), schema, 5)).toBe(5);
      // What version 5 held after a restock and a deduct, as its flush wrote them.
      const restock = toRestock({ requestId: 'r', sku: 'A', qty: 10 }, 1000);
      const deduct = toDeduct({ requestId: 'd', sku: 'A', qty: 2 }, 2000);
      await pool.query(`
        INSERT INTO ${schema}.levels (sku, on_hand, reserved, version) VALUES ('A', 8, 0, 2);
        INSERT INTO ${schema}.entries (op, pos, seq, request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, version_after, at, meta,
          backorder_max_after, low_stock_at_after, buyer_max_after, buyer)
          VALUES (1, 0, 1, 'r', 'restock', 'A', 10, 0, 10, 0, 1, 1000, NULL, 0, NULL, NULL, NULL), (2, 0, 2, 'd', 'deduct', 'A', -2, 0, 8, 0, 2, 2000, NULL, 0, NULL, NULL, NULL);
        INSERT INTO ${schema}.requests (request_id, kind, fingerprint, at) VALUES ('r', 'restock', '${restock.fingerprint}', 1000), ('d', 'deduct', '${deduct.fingerprint}', 2000);
        SELECT setval('${schema}.ops', 2);`);

      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 8, reserved: 0, available: 8, version: 2 });
      expect(await schemaVersion({ client: pool, schema })).toBe(SCHEMA_VERSION);
      expect(SCHEMA_VERSION).toBe(8);
      const old = await ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 });
      expect(old).toMatchObject({ ok: true, replayed: true, entries: [{ seq: 2, onHandDelta: -2 }] });
      expect(old).not.toHaveProperty('allocations');

      // Two lines share A: the entries show A -2, not which line took what. The SKU with U+0000 is stored escaped.
      const odd = 'b\u0000c';
      await ledger.restock({ requestId: 'r2', sku: odd, qty: 5 });
      const split = await ledger.deduct({ requestId: 'x', lines: [{ sku: 'A', qty: 1 }, { anyOf: [odd, 'A'], qty: 6, split: true }], buyer: 'ann' });
      const allocations = [{ line: 0, taken: [{ sku: 'A', qty: 1 }] }, { line: 1, taken: [{ sku: odd, qty: 5 }, { sku: 'A', qty: 1 }] }];
      expect(split).toMatchObject({ ok: true, entries: [{ sku: 'A', onHandDelta: -2 }, { sku: odd, onHandDelta: -5 }], allocations });
      const held = await ledger.reserve({ requestId: 'h', lines: [{ anyOf: [odd, 'A'], qty: 2, prefer: 'mostAvailable' }], ttlMs: 3_600_000 });
      expect(held).toMatchObject({ ok: true, allocations: [{ line: 0, taken: [{ sku: 'A', qty: 2 }] }], reservation: { lines: [{ sku: 'A', qty: 2 }] } });
      const stored = await pool.query(`SELECT request_id, allocations FROM ${schema}.requests WHERE request_id IN ('d', 'x') ORDER BY request_id`);
      expect(stored.rows.map((r: { request_id: string; allocations: string | null }) => [r.request_id, r.allocations === null ? null : JSON.parse(r.allocations)]))
        .toEqual([['d', null], ['x', allocations]]);

      // A new store over the same schema: replays and request() rebuild the allocations from the row.
      const restarted = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      expect(await restarted.deduct({ requestId: 'x', lines: [{ sku: 'A', qty: 1 }, { anyOf: [odd, 'A'], qty: 6, split: true }], buyer: 'ann' }))
        .toEqual({ ...split, replayed: true });
      expect(await restarted.reserve({ requestId: 'h', lines: [{ anyOf: [odd, 'A'], qty: 2, prefer: 'mostAvailable' }], ttlMs: 3_600_000 }))
        .toEqual({ ...held, replayed: true });
      expect(await restarted.request('x')).toMatchObject({ replayed: true, allocations });
      expect(await restarted.request('d')).not.toHaveProperty('allocations');
      expect(await restarted.verify()).toMatchObject({ ok: true });
      await checkInvariants(restarted);
    });
  });

  describe('carts that change (amend)', () => {
    it('a ledger at schema version 6 upgrades: its holds amend; amend entries name the reservation, the request keeps it as amended for replays, across a restart', async () => {
      const schema = fresh();
      expect(await migrateWith(connectorOf(pool), schema, 6)).toBe(6);
      // What version 6 held after a restock and a hold for a buyer, as its flush wrote them.
      const now = Date.now();
      const restock = toRestock({ requestId: 'r', sku: 'A', qty: 10 }, now - 2000);
      const reserveInput = { requestId: 'h', lines: [{ sku: 'A', qty: 2 }], ttlMs: 3_600_000, buyer: 'ann' };
      const reserve = toReserve(reserveInput, now - 1000);
      await pool.query(`
        INSERT INTO ${schema}.levels (sku, on_hand, reserved, version) VALUES ('A', 10, 2, 2);
        INSERT INTO ${schema}.entries (op, pos, seq, request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, version_after, at, meta,
          backorder_max_after, low_stock_at_after, buyer_max_after, buyer) VALUES
          (1, 0, 1, 'r', 'restock', 'A', 10, 0, 10, 0, 1, ${now - 2000}, NULL, 0, NULL, NULL, NULL), (2, 0, 2, 'h', 'reserve', 'A', 0, 2, 10, 2, 2, ${now - 1000}, NULL, 0, NULL, NULL, 'ann');
        INSERT INTO ${schema}.requests (request_id, kind, fingerprint, at, allocations) VALUES
          ('r', 'restock', '${restock.fingerprint}', ${now - 2000}, NULL), ('h', 'reserve', '${reserve.fingerprint}', ${now - 1000}, NULL);
        INSERT INTO ${schema}.reservations (id, state, lines, expires_at, created_at, buyer) VALUES ('h', 'held', '[{"sku":"A","qty":2}]', ${reserve.expiresAt}, ${now - 1000}, 'ann');
        INSERT INTO ${schema}.holds (reservation_id, sku, qty, expires_at) VALUES ('h', 'A', 2, ${reserve.expiresAt});
        INSERT INTO ${schema}.buyer_totals (sku, buyer, qty) VALUES ('A', 'ann', 2);
        SELECT setval('${schema}.ops', 2);`);

      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      const made = await ledger.reserve(reserveInput);
      expect(made).toMatchObject({ ok: true, replayed: true, reservation: { id: 'h', lines: [{ sku: 'A', qty: 2 }], buyer: 'ann', expiresAt: reserve.expiresAt } });
      expect(await schemaVersion({ client: pool, schema })).toBe(SCHEMA_VERSION);
      expect(SCHEMA_VERSION).toBe(8);

      // A SKU with U+0000: escaped in the entries' columns, as JSON text in the stored reservation.
      const odd = 'b\u0000c';
      await ledger.restock({ requestId: 'r2', sku: odd, qty: 5 });
      const v2Input = { requestId: 'h-v2', reservationId: 'h', lines: [{ sku: 'A', qty: 1 }, { sku: odd, qty: 2 }], meta: { step: 2 } };
      const v2 = await ledger.amend(v2Input);
      expect(v2).toMatchObject({
        ok: true,
        entries: [
          { requestId: 'h-v2', kind: 'amend', sku: 'A', reservedDelta: -1, reservationId: 'h', buyer: 'ann', meta: { step: 2 } },
          { requestId: 'h-v2', kind: 'amend', sku: odd, reservedDelta: 2, reservationId: 'h', buyer: 'ann' },
        ],
        reservation: { id: 'h', state: 'held', lines: [{ sku: 'A', qty: 1 }, { sku: odd, qty: 2 }], expiresAt: reserve.expiresAt, buyer: 'ann' },
      });
      const rows = await pool.query(`SELECT request_id, reservation_id, sku FROM ${schema}.entries WHERE reservation_id IS NOT NULL ORDER BY op, pos`);
      expect(rows.rows).toEqual([{ request_id: 'h-v2', reservation_id: 'h', sku: 'A' }, { request_id: 'h-v2', reservation_id: 'h', sku: 'b\u0001\u0001c' }]);
      const stored = await pool.query(`SELECT request_id, amended FROM ${schema}.requests WHERE request_id IN ('h', 'h-v2') ORDER BY request_id`);
      expect(stored.rows.map((r: { request_id: string; amended: string | null }) => [r.request_id, r.amended === null ? null : JSON.parse(r.amended)]))
        .toEqual([['h', null], ['h-v2', v2.ok && v2.reservation]]);
      expect((await ledger.holds({ sku: odd })).holds).toEqual([{ reservationId: 'h', sku: odd, qty: 2, expiresAt: reserve.expiresAt, buyer: 'ann' }]);

      // An anyOf line: the stock it had counts what the cart holds; the allocation is kept too.
      const v3Input = { requestId: 'h-v3', reservationId: 'h', lines: [{ anyOf: [odd, 'A'], qty: 4, split: true }] };
      const v3 = await ledger.amend(v3Input);
      expect(v3).toMatchObject({ ok: true, allocations: [{ line: 0, taken: [{ sku: odd, qty: 4 }] }], reservation: { lines: [{ sku: odd, qty: 4 }] } });
      expect(await ledger.commit({ reservationId: 'h' })).toMatchObject({ ok: true, entries: [{ sku: odd, onHandDelta: -4, reservedDelta: -4, buyer: 'ann' }] });

      // A new store over the same schema: each replay shows the reservation as its own request left it.
      const restarted = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      expect(await restarted.amend(v2Input)).toEqual({ ...v2, replayed: true });
      expect(await restarted.amend(v3Input)).toEqual({ ...v3, replayed: true });
      expect(await restarted.request('h-v2')).toEqual({ ...v2, replayed: true, requestId: 'h-v2', kind: 'amend', at: v2.ok && v2.entries[0]?.at });
      expect(await restarted.reserve(reserveInput)).toEqual(made);
      expect(await restarted.reservation('h')).toMatchObject({ state: 'committed', lines: [{ sku: odd, qty: 4 }], committed: [{ sku: odd, qty: 4 }] });
      expect(await restarted.buyerTotals({ buyer: 'ann', skus: ['A', odd] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 0 }, { sku: odd, buyer: 'ann', taken: 4 }]);
      expect(await restarted.verify()).toMatchObject({ ok: true });
      await checkInvariants(restarted);
    });

    it('one group-commit batch amends a hold again and again (drops a SKU and takes it again, extends between): each row is written once, as the last amend left it', async () => {
      const schema = fresh();
      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema, groupCommit: { batchOperationsMax: 16, batchWaitMs: 20 } }) });
      for (const sku of ['A', 'B', 'C']) await ledger.restock({ requestId: `r-${sku}`, sku, qty: 5 });
      await ledger.reserveOrThrow({ requestId: 'x', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000, buyer: 'ann' });
      // A stored hold: B taken (a new row), A dropped (deleted) and taken again (updated), B dropped again (never written).
      const stored = await Promise.all([
        ledger.amend({ requestId: 'x-2', reservationId: 'x', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }] }),
        ledger.amend({ requestId: 'x-3', reservationId: 'x', lines: [{ sku: 'B', qty: 2 }] }),
        ledger.extend({ reservationId: 'x', ttlMs: 600_000 }),
        ledger.amend({ requestId: 'x-4', reservationId: 'x', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 2 }] }),
        ledger.amend({ requestId: 'x-5', reservationId: 'x', lines: [{ sku: 'A', qty: 3 }] }),
      ]);
      expect(stored.map((r) => r.ok)).toEqual([true, true, true, true, true]);
      const ops = await pool.query(`SELECT count(DISTINCT op)::int AS n FROM ${schema}.entries WHERE kind = 'amend'`);
      expect(ops.rows).toEqual([{ n: 1 }]);
      const extendedTo = stored[2]?.ok === true && 'reservation' in stored[2] ? stored[2].reservation.expiresAt : 0;
      expect(await ledger.reservation('x')).toMatchObject({ state: 'held', lines: [{ sku: 'A', qty: 3 }], expiresAt: extendedTo });
      expect((await ledger.holds({ sku: 'A' })).holds).toEqual([{ reservationId: 'x', sku: 'A', qty: 3, expiresAt: extendedTo, buyer: 'ann' }]);
      expect((await ledger.holds({ sku: 'B' })).holds).toEqual([]);
      expect(await ledger.request('x-3')).toMatchObject({ reservation: { lines: [{ sku: 'B', qty: 2 }] } });

      // A hold made in the same batch (its buyer's totals of the SKUs the amends name come from the view): inserted once, as amended.
      const made = await Promise.all([
        ledger.reserve({ requestId: 'y', lines: [{ sku: 'C', qty: 1 }], ttlMs: 60_000, buyer: 'bob' }),
        ledger.amend({ requestId: 'y-2', reservationId: 'y', lines: [{ sku: 'B', qty: 1 }, { sku: 'C', qty: 2 }] }),
        ledger.extend({ reservationId: 'y', ttlMs: 600_000 }),
        ledger.amend({ requestId: 'y-3', reservationId: 'y', lines: [{ sku: 'B', qty: 3 }] }),
      ]);
      expect(made.map((r) => r.ok)).toEqual([true, true, true, true]);
      expect(await ledger.reserve({ requestId: 'y', lines: [{ sku: 'C', qty: 1 }], ttlMs: 60_000, buyer: 'bob' })).toMatchObject({ replayed: true, reservation: { lines: [{ sku: 'C', qty: 1 }] } });
      expect((await ledger.holds({ sku: 'B' })).holds.map((h) => [h.reservationId, h.qty])).toEqual([['y', 3]]);
      expect((await ledger.holds({ sku: 'C' })).holds).toEqual([]);
      expect(await ledger.buyerTotals({ buyer: 'bob', skus: ['B', 'C'] })).toEqual([{ sku: 'B', buyer: 'bob', taken: 3 }, { sku: 'C', buyer: 'bob', taken: 0 }]);
      expect(await ledger.verify()).toMatchObject({ ok: true });
      await checkInvariants(ledger);
    });

    it('an amend races a commit and an extend: whoever waited for its locks reads the reservation again (its level rows are rewritten) and follows the amended lines', async () => {
      const schema = fresh();
      const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
      for (const sku of ['A', 'C', 'D']) await ledger.restock({ requestId: `r-${sku}`, sku, qty: 5 });
      const cart = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
      const app = await pool.connect();
      let waiting: ReturnType<StockLedger['commit']> | undefined;
      try {
        await app.query('BEGIN');
        // A stays at 1 (no entry, no new version of A): only C's hold is new.
        const amended = await ledger.amend({ requestId: 'cart-v2', reservationId: 'cart', lines: [{ sku: 'A', qty: 1 }, { sku: 'C', qty: 2 }] }, { transaction: app });
        expect(amended).toMatchObject({ ok: true, entries: [{ sku: 'C', reservedDelta: 2 }] });
        // It reads the cart's lines (A) before the amend commits, then waits for A's lock.
        waiting = ledger.commit({ reservationId: 'cart' });
        await new Promise((resolve) => setTimeout(resolve, 150));
        await app.query('COMMIT');
      } finally {
        app.release();
      }
      expect(await waiting).toMatchObject({ ok: true, entries: [{ sku: 'A', onHandDelta: -1, reservedDelta: -1 }, { sku: 'C', onHandDelta: -2, reservedDelta: -2 }] });
      expect((await ledger.stocks(['A', 'C'])).map((l) => [l.sku, l.onHand, l.reserved])).toEqual([['A', 4, 0], ['C', 3, 0]]);

      // An extend inside the app's transaction; an amend waits for it, then holds its new SKU until the new expiry.
      await ledger.reserveOrThrow({ requestId: 'cart2', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
      const other = await pool.connect();
      let amending: ReturnType<StockLedger['amend']> | undefined;
      let extendedTo: number | undefined;
      try {
        await other.query('BEGIN');
        const extended = await ledger.extendOrThrow({ reservationId: 'cart2', ttlMs: 600_000 }, { transaction: other });
        extendedTo = extended.reservation.expiresAt;
        amending = ledger.amend({ requestId: 'cart2-v2', reservationId: 'cart2', lines: [{ sku: 'A', qty: 1 }, { sku: 'D', qty: 1 }] });
        await new Promise((resolve) => setTimeout(resolve, 150));
        await other.query('COMMIT');
      } finally {
        other.release();
      }
      expect(await amending).toMatchObject({ ok: true, reservation: { expiresAt: extendedTo } });
      expect((await ledger.holds({ sku: 'D' })).holds).toEqual([{ reservationId: 'cart2', sku: 'D', qty: 1, expiresAt: extendedTo }]);
      expect(cart.reservation.lines).toEqual([{ sku: 'A', qty: 1 }]);
      expect(await ledger.verify()).toMatchObject({ ok: true });
      await checkInvariants(ledger);
    });
  });
});
