/**
 * The Redis store contender: `StockLedger` + `RedisStore` from `stock-ledger/redis` on an
 * ioredis client. The module is imported at run time, so the bench runs (and skips this row
 * with a note) in a tree that does not have the Redis store yet.
 */
import { StockLedger, type StockStore } from 'stock-ledger';
import type { Redis } from 'ioredis';
import { NAMES, ledgerRunner, seedLedger, type Contender } from './contenders.js';
import { connectRedis, deleteKeysOf, freshPrefix } from './raw-redis.js';

interface RedisStoreModule {
  RedisStore: new (options: { client: Redis; prefix: string }) => StockStore;
}

/** A variable, so the type checker does not require the module to exist. */
const REDIS_STORE_MODULE = 'stock-ledger/redis';

/** The Redis store's module, or why it could not be loaded. */
async function loadRedisStore(): Promise<RedisStoreModule | string> {
  try {
    const loaded = (await import(REDIS_STORE_MODULE)) as Partial<RedisStoreModule>;
    if (typeof loaded.RedisStore !== 'function') return `${REDIS_STORE_MODULE} exports no RedisStore`;
    return loaded as RedisStoreModule;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const why = typeof code === 'string' ? code : error instanceof Error ? error.message.split('\n')[0] : String(error);
    return `${REDIS_STORE_MODULE} could not be loaded (${why})`;
  }
}

/** The contender, or why it is skipped. */
export async function redisStoreContender(url: string): Promise<Contender | string> {
  const loaded = await loadRedisStore();
  if (typeof loaded === 'string') return loaded;
  return {
    name: NAMES.redisStore,
    group: 'redis',
    baseline: NAMES.rawRedis,
    async open(workload) {
      const client = await connectRedis(url);
      const prefix = freshPrefix();
      const ledger = await seedLedger(new StockLedger({ store: new loaded.RedisStore({ client, prefix }) }), workload);
      return ledgerRunner(ledger, async () => {
        await deleteKeysOf(client, prefix);
        await client.quit();
      });
    },
  };
}
