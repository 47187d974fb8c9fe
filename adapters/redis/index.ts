/**
 * The Redis store: `import { RedisStore } from 'stock-ledger/redis'` (needs ioredis 5 or
 * node-redis 5, the app's own client).
 * @packageDocumentation
 */
export { RedisStore, type RedisStoreOptions } from './redis-store.js';
export { aofKey, layoutKey, ledgerKeys, retentionKeys } from './redis-keys.js';
export type { RedisClientLike, IoredisLike, NodeRedisLike } from './redis-client.js';
