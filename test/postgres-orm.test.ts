/**
 * PostgreSQL through query builders and ORMs: Kysely, Drizzle (node-postgres and postgres.js)
 * and Prisma (its pg driver adapter), each through the store's executor adapter, against the
 * real libraries and server. For each: the order row and the deduct commit together, a rollback
 * leaves no trace and the retry applies, a rejection leaves the app's transaction usable.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { CamelCasePlugin, Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';
import postgres from 'postgres';
import { StockLedger } from 'stock-ledger';
import { PostgresStore, drizzleExecutor, kyselyExecutor, prismaExecutor, type PostgresExecutor } from 'stock-ledger/postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { codeOf } from './support/codes.js';
import { createDatabase, describePostgres, quietPool, startPostgres, type PostgresServer } from './support/postgres-server.js';

let server: PostgresServer | undefined;
let database: { url: string; drop(): Promise<void> } | undefined;
let pool: pg.Pool;
let schemas = 0;

const orders = pgTable('orders', { id: text('id').primaryKey(), qty: integer('qty').notNull() });

/** Thrown from inside an app transaction to make the library roll it back. */
class RollBack extends Error {}

/** A ledger on a fresh schema with A at 10 on hand, and an empty orders table. */
async function setup(client: unknown = pool): Promise<StockLedger> {
  const schema = `orm_${(schemas += 1)}`;
  const ledger = new StockLedger({ store: new PostgresStore({ client: client as pg.Pool, schema }) });
  await ledger.restock({ requestId: `${schema}-stock`, sku: 'A', qty: 10 });
  await pool.query('TRUNCATE orders');
  return ledger;
}

async function orderIds(): Promise<string[]> {
  return (await pool.query('SELECT id FROM orders ORDER BY id')).rows.map((r: { id: string }) => r.id);
}

/** One library's way of running `body` in a transaction of the app's, with the executor for it. */
type InTransaction = (body: (insertOrder: (id: string, qty: number) => Promise<void>, transaction: PostgresExecutor) => Promise<void>) => Promise<void>;

/**
 * The three promises of a joined transaction, through one library: commit together, rollback
 * leaves nothing and the retry applies, a rejection leaves the transaction usable.
 */
async function provesJoinedTransactions(ledger: StockLedger, inTransaction: InTransaction): Promise<void> {
  await inTransaction(async (insertOrder, transaction) => {
    await insertOrder('o1', 3);
    const r = await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 3 }, { transaction });
    expect(r.ok && r.entries.map((e) => e.seq)).toEqual([null]);
    expect((await ledger.stock('A')).onHand).toBe(10); // not visible before the app commits
  });
  expect(await orderIds()).toEqual(['o1']);
  expect((await ledger.stock('A')).onHand).toBe(7);

  await expect(inTransaction(async (insertOrder, transaction) => {
    await insertOrder('o2', 2);
    expect((await ledger.deduct({ requestId: 'o2', sku: 'A', qty: 2 }, { transaction })).ok).toBe(true);
    throw new RollBack();
  })).rejects.toBeInstanceOf(RollBack);
  expect(await orderIds()).toEqual(['o1']);
  expect((await ledger.stock('A')).onHand).toBe(7);
  const retry = await ledger.deduct({ requestId: 'o2', sku: 'A', qty: 2 });
  expect(retry.ok && retry.replayed).toBe(false);

  await inTransaction(async (insertOrder, transaction) => {
    const sold = await ledger.deduct({ requestId: 'o3', sku: 'A', qty: 99 }, { transaction });
    expect(sold).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 5 });
    await insertOrder('o3', 1); // the app's transaction still works after the rejection
    expect((await ledger.deduct({ requestId: 'o3b', sku: 'A', qty: 1 }, { transaction })).ok).toBe(true);
  });
  expect(await orderIds()).toEqual(['o1', 'o3']);
  expect(await ledger.stock('A')).toMatchObject({ onHand: 4, reserved: 0 });
  expect(await ledger.verify()).toMatchObject({ ok: true });
}

/** Generates the Prisma client of test/fixtures/prisma into .tmp (no engine binary is needed for it). */
async function prismaClient(url: string): Promise<{ client: PrismaTx & { $disconnect(): Promise<void> } }> {
  const cli = join(process.cwd(), 'node_modules', '.bin', 'prisma');
  const generated = spawnSync(cli, ['generate', '--schema', 'test/fixtures/prisma/schema.prisma'], {
    encoding: 'utf8',
    timeout: 120_000,
    // generate itself needs no schema engine; pointing the CLI at a stand-in keeps it from downloading one.
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true', PRISMA_HIDE_UPDATE_MESSAGE: '1' },
  });
  if (generated.status !== 0) throw new Error(`prisma generate failed: ${generated.stderr}${generated.stdout}`);
  const path = join(process.cwd(), '.tmp', 'prisma-client', 'client.ts');
  const { PrismaClient } = (await import(path)) as { PrismaClient: new (options: unknown) => PrismaTx & { $disconnect(): Promise<void> } };
  return { client: new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) }) };
}

interface PrismaTx {
  $queryRawUnsafe(text: string, ...values: unknown[]): Promise<unknown>;
  $transaction<T>(fn: (tx: PrismaTx & { order: { create(args: { data: { id: string; qty: number } }): Promise<unknown> } }) => Promise<T>): Promise<T>;
}

describePostgres('PostgreSQL through Kysely, Drizzle and Prisma', () => {
  beforeAll(async () => {
    server = await startPostgres();
    database = await createDatabase(server, 'orm');
    pool = quietPool({ connectionString: database.url, max: 10 });
    await pool.query('CREATE TABLE orders (id text PRIMARY KEY, qty int NOT NULL)');
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
    await server?.stop();
  });

  it('Kysely: a Transaction joined through kyselyExecutor, with a result-rewriting plugin on the instance', async () => {
    const db = new Kysely<{ orders: { id: string; qty: number } }>({
      dialect: new PostgresDialect({ pool: quietPool({ connectionString: database?.url, max: 4 }) }),
      plugins: [new CamelCasePlugin()], // would rename the store's on_hand columns if the adapter let it
    });
    try {
      await provesJoinedTransactions(await setup(), (body) => db.transaction().execute((trx) =>
        body(async (id, qty) => { await trx.insertInto('orders').values({ id, qty }).execute(); }, kyselyExecutor(trx))));
    } finally {
      await db.destroy();
    }
  });

  it('Kysely: the instance as the store\'s client, borrowing one connection per store transaction', async () => {
    const db = new Kysely<Record<string, never>>({
      dialect: new PostgresDialect({ pool: quietPool({ connectionString: database?.url, max: 4 }) }),
      plugins: [new CamelCasePlugin()],
    });
    try {
      const ledger = await setup(kyselyExecutor(db));
      const results = await Promise.all(Array.from({ length: 14 }, (_, i) => ledger.deduct({ requestId: `k-${i}`, sku: 'A', qty: 1 })));
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.code === 'INSUFFICIENT_STOCK')).toBe(true);
      expect(await ledger.stock('A')).toMatchObject({ onHand: 0 });
      expect(await ledger.verify()).toMatchObject({ ok: true });
    } finally {
      await db.destroy();
    }
  });

  it('Drizzle on node-postgres: the tx of db.transaction() joined through drizzleExecutor', async () => {
    const db = drizzlePg(pool);
    await provesJoinedTransactions(await setup(db.$client), (body) => db.transaction((tx) =>
      body(async (id, qty) => { await tx.insert(orders).values({ id, qty }); }, drizzleExecutor(tx))));
  });

  it('Drizzle on postgres.js: the tx of db.transaction() joined through drizzleExecutor', async () => {
    const sql = postgres(database?.url ?? '', { max: 4, onnotice: () => {} });
    try {
      const db = drizzlePostgresJs(sql);
      await provesJoinedTransactions(await setup(sql), (body) => db.transaction((tx) =>
        body(async (id, qty) => { await tx.insert(orders).values({ id, qty }); }, drizzleExecutor(tx))));
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it('Prisma with its pg adapter: the tx of an interactive $transaction joined through prismaExecutor', async () => {
    const { client } = await prismaClient(database?.url ?? '');
    try {
      await provesJoinedTransactions(await setup(), (body) => client.$transaction((tx) =>
        body(async (id, qty) => { await tx.order.create({ data: { id, qty } }); }, prismaExecutor(tx))));
    } finally {
      await client.$disconnect();
    }
  }, 60_000);

  it('each adapter refuses a handle that is not its library\'s, before any store access', async () => {
    for (const make of [kyselyExecutor, drizzleExecutor, prismaExecutor] as ((h: unknown) => unknown)[]) {
      expect(await codeOf(() => make({}))).toBe('INVALID_INPUT');
      expect(await codeOf(() => make(null))).toBe('INVALID_INPUT');
    }
  });
});
