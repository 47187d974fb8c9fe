import { StoreUnavailableError, levelAsOf } from '../../src/index.js';
import type { Command, Counters, Entry, Level, StockStore, StoreOutcome, StoredRequest, StoredReservation, VerifyChunk, VerifyItem } from '../../src/index.js';
import { entriesOf, integers, outcomeOf, requestOf, reservationOf, scriptCall } from './redis-codec.js';
import { redisFailure, scriptCaller, type RedisClientLike, type ScriptCaller } from './redis-client.js';
import { checkPrefix, ledgerKeys } from './redis-keys.js';
import { runScript, type LuaScriptName } from './redis-scripts.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * The app's own client: an ioredis `Redis` or `Cluster`, or a node-redis v5 client or cluster,
   * connected or connecting. The store only runs scripts on it: it never changes it (no
   * `defineCommand`) and never closes it.
   */
  client: RedisClientLike;
  /**
   * Names the ledger: 1 to 64 characters of `[A-Za-z0-9_.:-]`. Every key of the ledger is
   * `stock-ledger:{<prefix>}:...`, one hash tag, so one ledger lives in one Cluster slot.
   */
  prefix: string;
}

/** Entries summed per fold call while verifying: bounds the time one script holds the server. */
const FOLD_PAGE = 1000;

/**
 * A ledger in Redis (or Redis Cluster): each operation is one Lua script, run by EVALSHA, that
 * checks the request id, checks every line, and only then writes. Replies are strings only.
 *
 * Durability is Redis's: a write is acknowledged once in memory, before any fsync unless the
 * server runs `appendonly yes` with `appendfsync always`, and a failover to a replica can lose
 * acknowledged writes.
 *
 * @example
 * ```ts
 * import Redis from 'ioredis';
 * import { StockLedger } from 'stock-ledger';
 * import { RedisStore } from 'stock-ledger/redis';
 * const ledger = new StockLedger({ store: new RedisStore({ client: new Redis(), prefix: 'shop-1' }) });
 * ```
 */
export class RedisStore implements StockStore {
  readonly #caller: ScriptCaller;
  readonly #keys: readonly string[];
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.#keys = ledgerKeys(checkPrefix(options.prefix));
    this.#caller = scriptCaller(options.client);
  }

  async execute(command: Command): Promise<StoreOutcome> {
    const call = scriptCall(command);
    return outcomeOf(command, await this.#run(call.script, call.args));
  }

  async stocks(skus: readonly string[], now: number): Promise<Level[]> {
    const reply = await this.#run('stocks', [String(now), ...skus]);
    return skus.map((sku, i) => {
      const [onHand, reserved, version, dueQty, dueCount] = integers((reply as unknown[])[i], 5, 'stocks') as [number, number, number, number, number];
      return levelAsOf(sku, { onHand, reserved, version }, { qty: dueQty, count: dueCount });
    });
  }

  async entries(query: { after: number; sku: string | null; limit: number }): Promise<Entry[]> {
    return entriesOf(await this.#run('entries', [String(query.after), query.sku ?? '', String(query.limit)]));
  }

  async request(requestId: string): Promise<StoredRequest | null> {
    return requestOf(requestId, await this.#run('record', ['request', requestId]));
  }

  async reservation(reservationId: string): Promise<StoredReservation | null> {
    return reservationOf(await this.#run('record', ['reservation', reservationId]));
  }

  /**
   * Reads each SKU's level with the seq of its last entry in one script, then folds its
   * entries up to that seq in bounded pages: entries never change, so the comparison is as
   * exact as one atomic read, and no script runs long.
   */
  async verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk> {
    const reply = (await this.#run('verifyChunk', [query.cursor ?? '', String(query.limit)])) as unknown[];
    const items: Promise<VerifyItem>[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const sku = reply[i] as string;
      const level = reply[i + 1] as string;
      const stored = level === '' ? { onHand: 0, reserved: 0, version: 0 } : countersOf(level);
      items.push(this.#fold(sku, Number(reply[i + 2])).then((folded) => ({ sku, stored, folded })));
    }
    const done = await Promise.all(items);
    const last = done[done.length - 1];
    return { items: done, cursor: done.length === query.limit && last !== undefined ? last.sku : null };
  }

  /** Never closes the client: it is the app's. Later calls fail as `STORE_UNAVAILABLE`. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  async #fold(sku: string, upto: number): Promise<Counters> {
    const sum = { onHand: 0, reserved: 0, version: 0 };
    let after = 0;
    for (let page = 0; page <= upto / FOLD_PAGE + 1 && after < upto; page += 1) {
      const reply = await this.#run('verifyFold', [sku, String(after), String(upto), String(FOLD_PAGE)]);
      const [onHand, reserved, count, last] = integers(reply, 4, 'verifyFold') as [number, number, number, number];
      sum.onHand += onHand;
      sum.reserved += reserved;
      sum.version += count;
      if (last === after) break;
      after = last;
    }
    return sum;
  }

  async #run(script: LuaScriptName, args: readonly string[]): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError('the Redis store is closed');
    try {
      return await runScript(this.#caller, script, this.#keys, args);
    } catch (error) {
      throw redisFailure(error);
    }
  }
}

function countersOf(level: string): Counters {
  const [onHand, reserved, version] = integers(level, 3, 'verifyChunk') as [number, number, number];
  return { onHand, reserved, version };
}

