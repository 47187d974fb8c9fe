/**
 * Store URLs: `sqlite:<path>`, `redis://...?prefix=<p>`, `postgres://...?schema=<s>`.
 * Parsing is pure; {@link openStore} loads only the driver of the scheme used, so a user of one
 * store never needs the others installed.
 */
import { existsSync } from 'node:fs';
import type { StockStore } from '../src/index.js';
import { UsageError } from './args.js';

/** A store URL, parsed and checked. */
export type StoreSpec =
  | { kind: 'sqlite'; path: string }
  | { kind: 'redis'; url: string; prefix: string }
  | { kind: 'postgres'; url: string; schema: string | undefined };

/** A store and the client the CLI opened for it; `close` closes both. */
export interface OpenedStore {
  store: StockStore;
  close(): Promise<void>;
}

/** Connecting to a server that is not there should fail fast in a CLI, not hang. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Parses a store URL. Throws {@link UsageError} for an unknown scheme or a missing part.
 *
 * @example
 * parseStoreUrl('redis://127.0.0.1:6379/2?prefix=shop'); // { kind: 'redis', url: 'redis://127.0.0.1:6379/2', prefix: 'shop' }
 */
export function parseStoreUrl(text: string): StoreSpec {
  if (text.startsWith('sqlite:')) return sqliteSpec(text.slice('sqlite:'.length));
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`bad store URL "${text}": expected sqlite:<path>, redis://... or postgres://...`);
  }
  if (url.protocol === 'redis:' || url.protocol === 'rediss:') return redisSpec(url);
  if (url.protocol === 'postgres:' || url.protocol === 'postgresql:') return postgresSpec(url);
  throw new UsageError(`unknown store scheme "${url.protocol}": expected sqlite:, redis:// or postgres://`);
}

function sqliteSpec(rest: string): StoreSpec {
  // sqlite:///abs/path is the URL spelling of sqlite:/abs/path.
  const path = rest.startsWith('//') ? rest.slice(2) : rest;
  if (path === '') throw new UsageError('bad store URL: sqlite: needs a path, as in sqlite:stock.db');
  return { kind: 'sqlite', path };
}

function redisSpec(url: URL): StoreSpec {
  const prefix = url.searchParams.get('prefix');
  if (prefix === null || prefix === '') throw new UsageError('bad store URL: a redis:// store needs ?prefix=<ledger prefix>');
  // ioredis reads query parameters as client options: the prefix is ours, not its.
  url.searchParams.delete('prefix');
  return { kind: 'redis', url: url.toString(), prefix };
}

function postgresSpec(url: URL): StoreSpec {
  const schema = url.searchParams.get('schema') ?? undefined;
  // pg would pass an unknown parameter on to the server as a setting: strip ours first.
  url.searchParams.delete('schema');
  return { kind: 'postgres', url: url.toString(), schema: schema === '' ? undefined : schema };
}

/**
 * Opens the store of a parsed URL, loading its driver on demand and checking the connection
 * so a bad host fails here (exit 2), not in the middle of a command.
 *
 * @example
 * const { store, close } = await openStore(parseStoreUrl('sqlite:stock.db'));
 */
export async function openStore(spec: StoreSpec): Promise<OpenedStore> {
  switch (spec.kind) {
    case 'sqlite':
      return openSqlite(spec.path);
    case 'redis':
      return openRedis(spec.url, spec.prefix);
    case 'postgres':
      return openPostgres(spec.url, spec.schema);
  }
}

/** Imports an optional peer dependency, or explains how to install it (a usage error). */
async function loadDriver<T>(name: string, load: () => Promise<T>, scheme: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new UsageError(`the ${scheme} store needs the ${name} package: npm install ${name}`);
    }
    throw error;
  }
}

async function openSqlite(path: string): Promise<OpenedStore> {
  // A reading tool must not leave an empty ledger behind when the path has a typo.
  if (!existsSync(path)) throw new UsageError(`no SQLite file at "${path}"`);
  await loadDriver('better-sqlite3', () => import('better-sqlite3'), 'sqlite:');
  const { SqliteStore } = await import('../adapters/sqlite/index.js');
  const store = new SqliteStore({ path });
  return { store, close: () => store.close() };
}

async function openRedis(url: string, prefix: string): Promise<OpenedStore> {
  const { Redis } = await loadDriver('ioredis', () => import('ioredis'), 'redis://');
  const { RedisStore } = await import('../adapters/redis/index.js');
  const client = new Redis(url, {
    lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 1,
    // One attempt: a CLI reports a down server instead of reconnecting forever.
    retryStrategy: () => null,
  });
  client.on('error', () => {}); // reported by connect() or the failing command, not as an unhandled event
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw connectionError('Redis', error);
  }
  const store = new RedisStore({ client, prefix });
  return { store, close: async () => { await store.close(); await client.quit(); } };
}

async function openPostgres(url: string, schema: string | undefined): Promise<OpenedStore> {
  const pg = await loadDriver('pg', () => import('pg'), 'postgres://');
  const { PostgresStore } = await import('../adapters/postgres/index.js');
  const pool = new pg.default.Pool({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, max: 2 });
  pool.on('error', () => {}); // an idle client's error; the next query reports it
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => {});
    throw connectionError('PostgreSQL', error);
  }
  const store = new PostgresStore(schema === undefined ? { client: pool } : { client: pool, schema });
  return { store, close: async () => { await store.close(); await pool.end(); } };
}

/** A server that cannot be reached: exit code 2, like a usage error. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
}

function connectionError(what: string, error: unknown): ConnectionError {
  const detail = error instanceof Error ? error.message : String(error);
  return new ConnectionError(`cannot connect to ${what}: ${detail}`, { cause: error });
}
