/**
 * The PostgreSQL store: `import { PostgresStore } from 'stock-ledger/postgres'` (with pg 8 or
 * postgres.js 3, both optional peers: the store recognises the client by its shape and loads
 * no driver itself).
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { PostgresStore } from 'stock-ledger/postgres';
 * const store = new PostgresStore({ client: new pg.Pool({ connectionString: process.env.DATABASE_URL }) });
 * ```
 * @packageDocumentation
 */
export { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';
export type { PostgresGroupCommitOptions } from './postgres-batch.js';
export { migrate, schemaVersion, SCHEMA_VERSION, DEFAULT_SCHEMA } from './postgres-schema.js';
export { postgresJsTransaction } from './postgres-client.js';
export type { PostgresClient, PostgresExecutor, PostgresRow, PgClientLike, PgPoolLike, PostgresJsLike } from './postgres-client.js';
export { kyselyExecutor, drizzleExecutor, prismaExecutor } from './postgres-executors.js';
export type { KyselyLike, DrizzleLike, PrismaLike } from './postgres-executors.js';
