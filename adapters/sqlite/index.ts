/**
 * The SQLite store: `import { SqliteStore } from 'stock-ledger/sqlite'` (needs better-sqlite3 12).
 * @packageDocumentation
 */
export { SqliteStore, type SqliteStoreOptions, type SqliteDurability } from './sqlite-store.js';
export type { GroupCommitOptions } from './sqlite-batch.js';
export { SCHEMA_VERSION, DEFAULT_TABLE_PREFIX, schemaVersion } from './sqlite-schema.js';
export type { SqliteDatabase, SqliteStatement, SqliteTransaction } from './sqlite-database.js';
