/**
 * The service's store from a URL: `sqlite:<path>` (the embedded default, no server),
 * `redis://host:port?prefix=<ledger>` or `postgres://...`. Each driver is loaded only when its
 * scheme is used.
 */
import type { StockStore } from 'stock-ledger';

export interface OpenedStore {
  store: StockStore;
  /** What the store is, for the start-up line. */
  label: string;
  /** Closes the store's client once the ledger (which closes the store) is closed. */
  disconnect(): Promise<void>;
}

/**
 * Opens the store a URL names.
 *
 * @example
 * const { store, disconnect } = await openStore('sqlite:flash-sale.db');
 */
export async function openStore(url: string): Promise<OpenedStore> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (path === '') throw new Error('sqlite: needs a path, as in sqlite:flash-sale.db');
    const { SqliteStore } = await import('stock-ledger/sqlite');
    const store = new SqliteStore({ path });
    return { store, label: `SQLite ${path}`, disconnect: async () => {} };
  }
  const parsed = new URL(url);
  if (parsed.protocol === 'redis:' || parsed.protocol === 'rediss:') {
    const prefix = parsed.searchParams.get('prefix') ?? 'flash-sale';
    parsed.searchParams.delete('prefix');
    const [{ Redis }, { RedisStore }] = await Promise.all([import('ioredis'), import('stock-ledger/redis')]);
    const client = new Redis(parsed.toString());
    const store = new RedisStore({ client, prefix });
    return { store, label: `Redis ${parsed.host}, ledger ${prefix}`, disconnect: async () => { await client.quit(); } };
  }
  if (parsed.protocol === 'postgres:' || parsed.protocol === 'postgresql:') {
    const [pg, { PostgresStore }] = await Promise.all([import('pg'), import('stock-ledger/postgres')]);
    const pool = new pg.default.Pool({ connectionString: url, max: 8 });
    const store = new PostgresStore({ client: pool });
    return { store, label: `PostgreSQL ${parsed.host}${parsed.pathname}`, disconnect: () => pool.end() };
  }
  throw new Error(`unknown store URL ${url}: expected sqlite:<path>, redis://... or postgres://...`);
}
