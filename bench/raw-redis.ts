/**
 * The Redis baseline: one EVALSHA per deduct of a hand-written Lua script that does the same
 * idempotent conditional deduct as the store, in one atomic step: a replay if the request id is
 * recorded, else check the level, DECRBY, record the request, append an entry. All keys of a
 * ledger share the hash tag `{prefix}`. A rejection records nothing, as in the store.
 *
 * Also the Redis helpers the bench shares: connecting, a fresh prefix per measurement, and
 * deleting one prefix's keys (never FLUSHDB: the server may be shared).
 */
import { Redis } from 'ioredis';
import type { Contender } from './contenders.js';
import { NAMES, rawRunner } from './contenders.js';
import type { Workload } from './workloads.js';

/**
 * KEYS[1] requests hash (request id -> on-hand after), KEYS[2] the SKU's level, KEYS[3] entries list.
 * ARGV[1] request id, ARGV[2] qty, ARGV[3] time in ms.
 * Returns 1 applied, 0 replayed, -1 short of stock.
 */
const DEDUCT_LUA = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local qty = tonumber(ARGV[2])
local level = tonumber(redis.call('GET', KEYS[2]) or '0')
if level < qty then return -1 end
local after = redis.call('DECRBY', KEYS[2], qty)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', after))
redis.call('RPUSH', KEYS[3], string.format('%s %s %d %d %s', ARGV[1], KEYS[2], -qty, after, ARGV[3]))
return 1
`;

/** Keys per MSET while stocking, and per UNLINK while cleaning up. */
const KEYS_PER_CALL = 1000;
/** SCAN calls while deleting one prefix's keys; far above what a run leaves. */
const SCAN_CALLS_MAX = 100_000;
const CONNECT_TIMEOUT_MS = 2000;

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** A client that fails fast instead of reconnecting: the bench wants an error, not a stall. */
export async function connectRedis(url: string): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => {}); // each failed command rejects with its own error
  await client.connect();
  return client;
}

/** The server's version if Redis answers at `url`, else why not. */
export async function probeRedis(url: string): Promise<{ version: string } | { error: string }> {
  try {
    const client = await connectRedis(url);
    const info = await client.info('server');
    await client.quit();
    return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown version' };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

let prefixCounter = 0;
/** A prefix no earlier run used, so runs on a shared server never meet. */
export function freshPrefix(): string {
  return `slbench-${process.pid}-${Date.now().toString(36)}-${(prefixCounter += 1)}`;
}

/** Deletes every key containing `{prefix}`: a bounded SCAN, UNLINK per page. */
export async function deleteKeysOf(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  for (let call = 0; call < SCAN_CALLS_MAX; call += 1) {
    const [next, keys] = await client.scan(cursor, 'MATCH', `*{${prefix}}*`, 'COUNT', KEYS_PER_CALL);
    if (keys.length > 0) await client.unlink(...keys);
    cursor = next;
    if (cursor === '0') return;
  }
  throw new Error(`keys of ${prefix} still there after ${SCAN_CALLS_MAX} SCAN calls`);
}

export class RawRedisStock {
  readonly #client: Redis;
  readonly #prefix: string;
  #sha = '';

  constructor(options: { client: Redis; prefix: string }) {
    this.#client = options.client;
    this.#prefix = options.prefix;
  }

  #key(name: string): string {
    return `{${this.#prefix}}:${name}`;
  }

  async restockAll(skus: readonly string[], qty: number): Promise<void> {
    for (let from = 0; from < skus.length; from += KEYS_PER_CALL) {
      const pairs = skus.slice(from, from + KEYS_PER_CALL).flatMap((sku) => [this.#key(`level:${sku}`), String(qty)]);
      await this.#client.mset(...pairs);
    }
    this.#sha = (await this.#client.script('LOAD', DEDUCT_LUA)) as string;
  }

  async deduct(options: { requestId: string; sku: string; qty: number }): Promise<{ ok: boolean; replayed: boolean }> {
    const args = [this.#key('requests'), this.#key(`level:${options.sku}`), this.#key('entries'), options.requestId, options.qty, Date.now()];
    let reply: unknown;
    try {
      reply = await this.#client.evalsha(this.#sha, 3, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      this.#sha = (await this.#client.script('LOAD', DEDUCT_LUA)) as string;
      reply = await this.#client.evalsha(this.#sha, 3, ...args);
    }
    return { ok: reply !== -1, replayed: reply === 0 };
  }

  async onHand(sku: string): Promise<number> {
    return Number((await this.#client.get(this.#key(`level:${sku}`))) ?? 0);
  }
}

export function rawRedisContender(url: string): Contender {
  return {
    name: NAMES.rawRedis,
    group: 'redis',
    async open(workload: Workload) {
      const client = await connectRedis(url);
      const prefix = freshPrefix();
      const stock = new RawRedisStock({ client, prefix });
      await stock.restockAll(workload.skus, workload.unitsPerSku);
      return rawRunner(stock, async () => {
        await deleteKeysOf(client, prefix);
        await client.quit();
      });
    },
  };
}
