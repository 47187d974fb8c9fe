/**
 * The Redis baseline: one EVALSHA per deduct of a hand-written Lua script that does the same
 * idempotent conditional deduct as the store, in one atomic step: a replay if the request id is
 * recorded, else check the level, DECRBY, record the request, append an entry. All keys of a
 * ledger share the hash tag `{prefix}`. A rejection records nothing, as in the store.
 *
 * A deduct of several lines is one script too (all levels checked before any is taken).
 * Reservations: a SKU's level key holds the units free to take (on hand minus held), so a
 * deduct reads nothing else, and a `reserved:<sku>` key counts what is held. A reserve script
 * moves units from level to reserved and writes a reservation hash (state, expiry, lines; its
 * key is the replay check); one settle script commits (takes them off reserved: sold) or
 * releases (gives them back to the level), once, by the reservation's state, refusing a held
 * reservation past its expiry. Nothing gives an expired hold back (a sweep would; the bench's
 * holds never expire): safe, it only sells less.
 *
 * Also the Redis helpers the bench shares: connecting, a fresh prefix per measurement, and
 * deleting one prefix's keys (never FLUSHDB: the server may be shared).
 */
import { Redis } from 'ioredis';
import type { Contender, RawLine, Totals } from './contenders.js';
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

/**
 * KEYS[1] requests hash (request id -> the lines' on-hand after), KEYS[2] entries list, KEYS[3..]
 * the lines' level keys (distinct SKUs). ARGV[1] request id, ARGV[2] time in ms, ARGV[3..] the
 * lines' qty, ARGV[i] for KEYS[i]. Returns 1 applied, 0 replayed, -1 short of stock.
 */
const DEDUCT_LINES_LUA = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
for i = 3, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[i]) then return -1 end
end
local afters, entries = {}, {}
for i = 3, #KEYS do
  local qty = tonumber(ARGV[i])
  local after = redis.call('DECRBY', KEYS[i], qty)
  afters[#afters + 1] = after
  entries[#entries + 1] = string.format('%s %s %d %d %s', ARGV[1], KEYS[i], -qty, after, ARGV[2])
end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(afters, ' '))
redis.call('RPUSH', KEYS[2], unpack(entries))
return 1
`;

/**
 * KEYS[1] the reservation hash, KEYS[2] entries list, then per line its level key and its
 * reserved key (distinct SKUs). ARGV[1] reservation (request) id, ARGV[2] time in ms, ARGV[3]
 * expiry in ms, ARGV[4..] the lines' qty. Returns 1 applied, 0 replayed, -1 short of stock.
 */
const RESERVE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local lines = (#KEYS - 2) / 2
for i = 1, lines do
  if tonumber(redis.call('GET', KEYS[2 * i + 1]) or '0') < tonumber(ARGV[i + 3]) then return -1 end
end
local held, entries = {}, {}
for i = 1, lines do
  local level, reserved, qty = KEYS[2 * i + 1], KEYS[2 * i + 2], tonumber(ARGV[i + 3])
  redis.call('DECRBY', level, qty)
  redis.call('INCRBY', reserved, qty)
  held[#held + 1] = string.format('%s %s %d', level, reserved, qty)
  entries[#entries + 1] = string.format('reserve %s %s %d %s', ARGV[1], level, qty, ARGV[2])
end
redis.call('HSET', KEYS[1], 'state', 'held', 'expires', ARGV[3], 'lines', table.concat(held, ' '))
redis.call('RPUSH', KEYS[2], unpack(entries))
return 1
`;

/**
 * KEYS[1] the reservation hash, KEYS[2] entries list; the level and reserved keys come from the
 * reservation's lines (same hash tag). ARGV[1] reservation id, ARGV[2] 'committed' or
 * 'released', ARGV[3] time in ms. Returns 1 applied, 0 replayed, -1 not held (unknown,
 * expired, or settled the other way).
 */
const SETTLE_LUA = `
local r = redis.call('HMGET', KEYS[1], 'state', 'expires', 'lines')
if r[1] == ARGV[2] then return 0 end
if r[1] ~= 'held' or tonumber(ARGV[3]) >= tonumber(r[2]) then return -1 end
local sell = ARGV[2] == 'committed'
local entries = {}
for level, reserved, qty in string.gmatch(r[3], '(%S+) (%S+) (%S+)') do
  redis.call('DECRBY', reserved, qty)
  if not sell then redis.call('INCRBY', level, qty) end
  entries[#entries + 1] = string.format('%s %s %s %s %s', sell and 'commit' or 'release', ARGV[1], level, qty, ARGV[3])
end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
redis.call('RPUSH', KEYS[2], unpack(entries))
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

/** A script run by EVALSHA, loaded again if the server lost it (NOSCRIPT). */
class Script {
  #sha = '';
  constructor(readonly lua: string) {}

  async load(client: Redis): Promise<void> {
    this.#sha = (await client.script('LOAD', this.lua)) as string;
  }

  async run(client: Redis, keyCount: number, args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keyCount, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      await this.load(client);
      return client.evalsha(this.#sha, keyCount, ...args);
    }
  }
}

const outcomeOf = (reply: unknown): { ok: boolean; replayed: boolean } => ({ ok: reply !== -1, replayed: reply === 0 });

export class RawRedisStock {
  readonly #client: Redis;
  readonly #prefix: string;
  readonly #scripts = { deduct: new Script(DEDUCT_LUA), deductLines: new Script(DEDUCT_LINES_LUA), reserve: new Script(RESERVE_LUA), settle: new Script(SETTLE_LUA) };

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
    for (const script of Object.values(this.#scripts)) await script.load(this.#client);
  }

  async deduct(options: { requestId: string; sku: string; qty: number }): Promise<{ ok: boolean; replayed: boolean }> {
    const args = [this.#key('requests'), this.#key(`level:${options.sku}`), this.#key('entries'), options.requestId, options.qty, Date.now()];
    return outcomeOf(await this.#scripts.deduct.run(this.#client, 3, args));
  }

  async deductLines(options: { requestId: string; lines: readonly RawLine[] }): Promise<{ ok: boolean; replayed: boolean }> {
    const { requestId, lines } = options;
    const args = [this.#key('requests'), this.#key('entries'), ...lines.map((l) => this.#key(`level:${l.sku}`)), requestId, Date.now(), ...lines.map((l) => l.qty)];
    return outcomeOf(await this.#scripts.deductLines.run(this.#client, 2 + lines.length, args));
  }

  async reserve(options: { requestId: string; lines: readonly RawLine[]; ttlMs: number }): Promise<{ ok: boolean; replayed: boolean }> {
    const { requestId, lines } = options;
    const now = Date.now();
    const keys = [this.#key(`reservation:${requestId}`), this.#key('entries'), ...lines.flatMap((l) => [this.#key(`level:${l.sku}`), this.#key(`reserved:${l.sku}`)])];
    const reply = await this.#scripts.reserve.run(this.#client, keys.length, [...keys, requestId, now, now + options.ttlMs, ...lines.map((l) => l.qty)]);
    return outcomeOf(reply);
  }

  commit(reservationId: string): Promise<{ ok: boolean; replayed: boolean }> {
    return this.#settle(reservationId, 'committed');
  }

  release(reservationId: string): Promise<{ ok: boolean; replayed: boolean }> {
    return this.#settle(reservationId, 'released');
  }

  async totals(skus: readonly string[]): Promise<Totals> {
    const totals: Totals = { onHand: 0, reserved: 0 };
    for (let from = 0; from < skus.length; from += KEYS_PER_CALL) {
      const part = skus.slice(from, from + KEYS_PER_CALL);
      const free = await this.#client.mget(...part.map((sku) => this.#key(`level:${sku}`)));
      const held = await this.#client.mget(...part.map((sku) => this.#key(`reserved:${sku}`)));
      part.forEach((_, i) => {
        totals.onHand += Number(free[i] ?? 0) + Number(held[i] ?? 0);
        totals.reserved += Number(held[i] ?? 0);
      });
    }
    return totals;
  }

  async #settle(reservationId: string, to: 'committed' | 'released'): Promise<{ ok: boolean; replayed: boolean }> {
    const args = [this.#key(`reservation:${reservationId}`), this.#key('entries'), reservationId, to, Date.now()];
    return outcomeOf(await this.#scripts.settle.run(this.#client, 2, args));
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
