/**
 * The Redis store contenders: `StockLedger` + `RedisStore` on an ioredis client, batched
 * (`batch: true`) and with one script call per operation (the default).
 */
import { StockLedger } from 'stock-ledger';
import { RedisStore } from 'stock-ledger/redis';
import { NAMES, ledgerRunner, seedLedger, withPolicyName, type Contender } from './contenders.js';
import { connectRedis, deleteKeysOf, freshPrefix } from './raw-redis.js';

function contender(url: string, name: string, batch: boolean, policed = false): Contender {
  return {
    name: policed ? withPolicyName(name) : name,
    group: 'redis',
    twin: policed,
    baseline: policed ? name : NAMES.rawRedis,
    async open(workload) {
      const client = await connectRedis(url);
      const prefix = freshPrefix();
      const ledger = await seedLedger(new StockLedger({ store: new RedisStore({ client, prefix, batch }) }), workload, policed);
      return ledgerRunner(ledger, async () => {
        await deleteKeysOf(client, prefix);
        await client.quit();
      }, policed);
    },
  };
}

/** Both Redis store contenders. */
export function redisStoreContenders(url: string): Contender[] {
  return [contender(url, NAMES.redisStore, true), contender(url, NAMES.redisStoreUnbatched, false), contender(url, NAMES.redisStore, true, true)];
}
