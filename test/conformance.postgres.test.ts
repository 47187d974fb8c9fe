import pg from 'pg';
import postgres from 'postgres';
import type { PostgresClient, PostgresStoreOptions } from 'stock-ledger/postgres';
import { conformanceCases } from 'stock-ledger/testing';
import { afterAll, beforeAll, it } from 'vitest';
import { createDatabase, describePostgres, startPostgres, type PostgresServer } from './support/postgres-server.js';
import { quietPool } from './support/postgres-server.js';
import { RecycledSchemas } from './support/postgres-schemas.js';

// The same suite, unchanged, on pg (a Pool) and on postgres.js, with group commit on (the
// default) and off. Every store is an empty ledger in a schema of its own, in a database of
// this run's own, dropped at the end.
let server: PostgresServer | undefined;
let database: { name: string; url: string; drop(): Promise<void> } | undefined;
const clients: { pool?: pg.Pool; sql?: postgres.Sql } = {};
let schemas: RecycledSchemas | undefined;

// runsScale: the whole suite runs four times over; the first variant (the default setup) gets
// the most property runs, and the file stays near three minutes on a 2-core machine.
function suite(name: string, client: () => PostgresClient, options: Omit<PostgresStoreOptions, 'client' | 'schema'>, runsScale: number): void {
  const createStore = async (): Promise<PostgresStore> => (schemas as RecycledSchemas).store({ ...options, client: client() });
  for (const c of conformanceCases({ name, createStore, runsScale })) it(c.name, c.run, c.timeoutMs);
}
type PostgresStore = Awaited<ReturnType<RecycledSchemas['store']>>;

describePostgres('PostgreSQL store conformance', () => {
  beforeAll(async () => {
    server = await startPostgres();
    database = await createDatabase(server, 'conformance');
    // The suite proves rules, not durability (the fault tests do, with synchronous commit):
    // commits that do not wait for the disk keep its hundreds of short ledgers fast.
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query(`ALTER DATABASE ${database.name} SET synchronous_commit = off`);
    await admin.end();
    clients.pool = quietPool({ connectionString: database.url, max: 8 });
    clients.sql = postgres(database.url, { max: 8, onnotice: () => {} });
    schemas = new RecycledSchemas(clients.pool, 'conf');
  });
  afterAll(async () => {
    await clients.pool?.end();
    await clients.sql?.end({ timeout: 5 });
    await database?.drop();
    await server?.stop();
  });
  suite('postgres (pg Pool, group commit)', () => clients.pool as pg.Pool, {}, 0.3);
  suite('postgres (pg Pool, one transaction per operation)', () => clients.pool as pg.Pool, { groupCommit: false }, 0.15);
  suite('postgres (postgres.js, group commit)', () => clients.sql as postgres.Sql, {}, 0.15);
  suite('postgres (postgres.js, one transaction per operation)', () => clients.sql as postgres.Sql, { groupCommit: false }, 0.15);
});
