/**
 * PostgreSQL: operations inside the app's own transaction ({ transaction }), on pg and on
 * postgres.js, under READ COMMITTED, REPEATABLE READ and SERIALIZABLE.
 */
import type pg from 'pg';
import postgres from 'postgres';
import { StockLedger, type StoreUnavailableError, isStockLedgerError } from 'stock-ledger';
import { PostgresStore, postgresJsTransaction } from 'stock-ledger/postgres';
import { readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { codeOf } from './support/codes.js';
import { expectEntriesOnce } from './support/entry-checks.js';
import { createDatabase, describePostgres, startPostgres, type PostgresServer } from './support/postgres-server.js';
import { quietPool } from './support/postgres-server.js';

let server: PostgresServer | undefined;
let database: { url: string; drop(): Promise<void> } | undefined;
let pool: pg.Pool;
let sql: postgres.Sql;
let schemas = 0;

/** A ledger on a fresh schema, and the app's orders table beside it. */
async function setup(client: pg.Pool | postgres.Sql = pool, groupCommit = true): Promise<{ ledger: StockLedger; schema: string }> {
  const schema = `tx_${(schemas += 1)}`;
  const ledger = new StockLedger({ store: new PostgresStore({ client, schema, groupCommit }) });
  await ledger.restock({ requestId: `${schema}-stock-A`, sku: 'A', qty: 10 });
  await ledger.restock({ requestId: `${schema}-stock-B`, sku: 'B', qty: 1000 });
  await pool.query(`CREATE TABLE ${schema}.orders (id text PRIMARY KEY, qty int NOT NULL)`);
  return { ledger, schema };
}

async function orders(schema: string): Promise<string[]> {
  return (await pool.query(`SELECT id FROM ${schema}.orders ORDER BY id`)).rows.map((r: { id: string }) => r.id);
}

describePostgres('PostgreSQL: joining the app transaction', () => {
  beforeAll(async () => {
    server = await startPostgres();
    database = await createDatabase(server, 'transactions');
    pool = quietPool({ connectionString: database.url, max: 20 });
    sql = postgres(database.url, { max: 10, onnotice: () => {} });
  });
  afterAll(async () => {
    await pool?.end();
    await sql?.end({ timeout: 5 });
    await database?.drop();
    await server?.stop();
  });

  it('pg: the order row and the deduct commit together; the joined outcome has seq null until numbered', async () => {
    const { ledger, schema } = await setup();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${schema}.orders (id, qty) VALUES ('o1', 3)`);
      const r = await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 3 }, { transaction: client });
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.entries.map((e) => e.seq)).toEqual([null]);
      expect(r.levels).toEqual([{ sku: 'A', onHand: 7, reserved: 0, available: 7, version: 2 }]);
      // Not visible outside the app's transaction before it commits.
      expect((await ledger.stock('A')).onHand).toBe(10);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await orders(schema)).toEqual(['o1']);
    expect((await ledger.stock('A')).onHand).toBe(7);
    const entries = await readAllEntries(ledger);
    expectEntriesOnce(entries);
    expect(entries.at(-1)).toMatchObject({ seq: 3, requestId: 'o1', kind: 'deduct', onHandAfter: 7 });
    // A replay now carries the seq the feed gave it.
    const replay = await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 3 });
    expect(replay.ok && replay.replayed && replay.entries[0]?.seq).toBe(3);
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('pg: rollback leaves no trace and a retry applies; a rejection leaves the transaction usable', async () => {
    const { ledger, schema } = await setup();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${schema}.orders (id, qty) VALUES ('o2', 4)`);
      expect((await ledger.deduct({ requestId: 'o2', sku: 'A', qty: 4 }, { transaction: client })).ok).toBe(true);
      await client.query('ROLLBACK');
      expect(await orders(schema)).toEqual([]);
      expect(await ledger.request('o2')).toBeNull();
      expect((await ledger.stock('A')).onHand).toBe(10);

      await client.query('BEGIN');
      const sold = await ledger.deduct({ requestId: 'o3', sku: 'A', qty: 11 }, { transaction: client });
      expect(sold).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 10 });
      // The app's transaction goes on after the rejection: its own statements still run and commit.
      await client.query(`INSERT INTO ${schema}.orders (id, qty) VALUES ('o2', 4)`);
      expect((await ledger.deduct({ requestId: 'o2', sku: 'A', qty: 4 }, { transaction: client })).ok).toBe(true);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await orders(schema)).toEqual(['o2']);
    expect((await ledger.stock('A')).onHand).toBe(6);
    expect(await ledger.request('o3')).toBeNull();
    expectEntriesOnce(await readAllEntries(ledger));
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('pg: a client with no transaction open is INVALID_INPUT; an idempotency conflict inside leaves the transaction usable', async () => {
    const { ledger, schema } = await setup();
    const client = await pool.connect();
    try {
      expect(await codeOf(() => ledger.deduct({ requestId: 'x', sku: 'A', qty: 1 }, { transaction: client }))).toBe('INVALID_INPUT');
      await client.query('BEGIN');
      expect((await ledger.deduct({ requestId: 'c1', sku: 'A', qty: 1 }, { transaction: client })).ok).toBe(true);
      expect(await codeOf(() => ledger.deduct({ requestId: 'c1', sku: 'A', qty: 2 }, { transaction: client }))).toBe('IDEMPOTENCY_CONFLICT');
      await client.query(`INSERT INTO ${schema}.orders (id, qty) VALUES ('c1', 1)`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await orders(schema)).toEqual(['c1']);
    expect((await ledger.stock('A')).onHand).toBe(9);
  });

  it('postgres.js: sql.begin scope: commit together, a rejection leaves the scope usable, a throw rolls back both', async () => {
    const { ledger, schema } = await setup(sql);
    // postgres.js's scope is a function; the core takes objects only, so it is wrapped (see the drafts note).
    await sql.begin(async (scope) => {
      const tx = postgresJsTransaction(scope);
      await scope.unsafe(`INSERT INTO ${schema}.orders (id, qty) VALUES ('p1', 2)`);
      const r = await ledger.deduct({ requestId: 'p1', sku: 'A', qty: 2 }, { transaction: tx });
      expect(r.ok && r.entries[0]?.seq).toBe(null);
      expect(await ledger.deduct({ requestId: 'p2', sku: 'A', qty: 99 }, { transaction: tx })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
      await scope.unsafe(`INSERT INTO ${schema}.orders (id, qty) VALUES ('p3', 1)`);
    });
    expect(await orders(schema)).toEqual(['p1', 'p3']);
    expect((await ledger.stock('A')).onHand).toBe(8);
    await expect(sql.begin(async (scope) => {
      await scope.unsafe(`INSERT INTO ${schema}.orders (id, qty) VALUES ('p4', 1)`);
      await ledger.deduct({ requestId: 'p4', sku: 'A', qty: 1 }, { transaction: postgresJsTransaction(scope) });
      throw new Error('app changed its mind');
    })).rejects.toThrow('app changed its mind');
    expect(await orders(schema)).toEqual(['p1', 'p3']);
    expect(await ledger.request('p4')).toBeNull();
    expect((await ledger.deduct({ requestId: 'p4', sku: 'A', qty: 1 })).ok).toBe(true);
    expect((await ledger.stock('A')).onHand).toBe(7);
    expectEntriesOnce(await readAllEntries(ledger));
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('an open joined transaction does not stall writers of other SKUs (measured), and readers of the feed', async () => {
    const { ledger } = await setup();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      expect((await ledger.deduct({ requestId: 'slow', sku: 'A', qty: 1 }, { transaction: client })).ok).toBe(true);
      // The app now does slow work while holding A's row lock. Writers of B must not wait for it.
      const startedMs = performance.now();
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => ledger.deduct({ requestId: `b${i}`, sku: 'B', qty: 1 })));
      const page = await ledger.entries({ limit: 1000 });
      const elapsedMs = performance.now() - startedMs;
      expect(results.every((r) => r.ok)).toBe(true);
      expect(page.entries.filter((e) => e.sku === 'B' && e.kind === 'deduct')).toHaveLength(100);
      // Bound: far below the 5 s lock timeout a wait for A's lock would run into.
      expect(elapsedMs).toBeLessThan(3000);
      console.log(`100 deducts of B and a feed read while A is held by an open app transaction: ${elapsedMs.toFixed(0)} ms`);
      // A writer of A waits for the app's commit (its row lock) and then sees its deduct.
      const waiting = ledger.deduct({ requestId: 'after', sku: 'A', qty: 10 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      await client.query('COMMIT');
      expect(await waiting).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 9 });
    } finally {
      client.release();
    }
    expectEntriesOnce(await readAllEntries(ledger));
  });

  it('group commit: a batch that meets a SKU held by an open app transaction splits, so its other operations do not wait', async () => {
    const { ledger } = await setup();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      expect((await ledger.deduct({ requestId: 'held', sku: 'A', qty: 1 }, { transaction: client })).ok).toBe(true);
      const startedMs = performance.now();
      // Issued in one turn: they share a batch with the deduct of A, which must wait for the app.
      const onA = ledger.deduct({ requestId: 'on-A', sku: 'A', qty: 1 });
      const onB = await Promise.all(Array.from({ length: 50 }, (_, i) => ledger.deduct({ requestId: `on-B-${i}`, sku: 'B', qty: 1 })));
      const elapsedMs = performance.now() - startedMs;
      expect(onB.every((r) => r.ok)).toBe(true);
      // Without the split they would wait for the app's commit, which comes only after them.
      expect(elapsedMs).toBeLessThan(4000);
      console.log(`50 deducts of B batched with one of A (held open by the app): ${elapsedMs.toFixed(0)} ms`);
      await client.query('COMMIT');
      expect(await onA).toMatchObject({ ok: true, levels: [{ sku: 'A', onHand: 8 }] });
    } finally {
      client.release();
    }
    expectEntriesOnce(await readAllEntries(ledger));
  });

  for (const isolation of ['READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'] as const) {
    it(`${isolation}: two app transactions on one SKU never oversell; a lost conflict is STORE_UNAVAILABLE saying to retry the whole transaction`, async () => {
      const { ledger, schema } = await setup(pool, false);
      const t1 = await pool.connect();
      const t2 = await pool.connect();
      try {
        await t1.query(`BEGIN ISOLATION LEVEL ${isolation}`);
        await t2.query(`BEGIN ISOLATION LEVEL ${isolation}`);
        // Both take their snapshot before either deducts.
        await t1.query(`SELECT count(*) FROM ${schema}.orders`);
        await t2.query(`SELECT count(*) FROM ${schema}.orders`);
        expect((await ledger.deduct({ requestId: 'i1', sku: 'A', qty: 6 }, { transaction: t1 })).ok).toBe(true);
        const second = ledger.deduct({ requestId: 'i2', sku: 'A', qty: 6 }, { transaction: t2 }).then((r) => r, (e: unknown) => e);
        await new Promise((resolve) => setTimeout(resolve, 100));
        await t1.query(`INSERT INTO ${schema}.orders (id, qty) VALUES ('i1', 6)`);
        await t1.query('COMMIT');
        const outcome = await second;
        if (isolation === 'READ COMMITTED') {
          // It waited for t1's row lock, then saw what t1 left.
          expect(outcome).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 4 });
          await t2.query('COMMIT');
        } else {
          // Its snapshot predates t1's commit: PostgreSQL refuses (40001); the app retries its whole transaction.
          expect(isStockLedgerError(outcome) && outcome.code).toBe('STORE_UNAVAILABLE');
          expect((outcome as Error).message).toMatch(/retry the whole transaction/);
          expect((outcome as StoreUnavailableError).retry).toBe('transaction');
          expect(((outcome as Error).cause as { code?: string }).code).toBe('40001');
          await t2.query('ROLLBACK');
          await t2.query(`BEGIN ISOLATION LEVEL ${isolation}`);
          expect(await ledger.deduct({ requestId: 'i2', sku: 'A', qty: 6 }, { transaction: t2 })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 4 });
          expect((await ledger.deduct({ requestId: 'i3', sku: 'A', qty: 4 }, { transaction: t2 })).ok).toBe(true);
          await t2.query('COMMIT');
        }
      } finally {
        t1.release();
        t2.release();
      }
      const level = await ledger.stock('A');
      expect(level.onHand).toBe(isolation === 'READ COMMITTED' ? 4 : 0);
      expect(level.onHand).toBeGreaterThanOrEqual(0);
      expectEntriesOnce(await readAllEntries(ledger));
      expect(await ledger.verify()).toMatchObject({ ok: true });
    });
  }
});
