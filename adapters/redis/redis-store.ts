import { InvalidInputError, StoreUnavailableError } from '../../src/index.js';
import { levelAsOf } from '../../src/store-kit.js';
import type { Counters, Entry, Level, StockStore } from '../../src/index.js';
import type { Command, StoreOutcome, StoredRequest, StoredReservation, VerifyChunk, VerifyItem } from '../../src/store-kit.js';
import { ScriptBatcher } from './redis-batch.js';
import { entriesOf, integers, outcomeOf, requestOf, reservationOf, scriptCall, text, type ScriptCall } from './redis-codec.js';
import { redisFailure, scriptCaller, type RedisClientLike, type ScriptCaller } from './redis-client.js';
import { checkPrefix, ledgerKeys } from './redis-keys.js';
import { ScriptRunner, type LuaScriptName } from './redis-scripts.js';

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
  /**
   * Wait, after every operation, until the server has written it to its append-only file
   * (`WAITAOF`, Redis 7.2 or later, standalone clients only), and optionally to the AOF of
   * `replicas` replicas, for at most `timeoutMs` (default 1000). An operation not confirmed in
   * time fails with `STORE_UNAVAILABLE` (it may have been applied: retry with the same id).
   * Default off: Redis acknowledges a write once it is in memory.
   */
  waitForAof?: boolean | { replicas?: number; timeoutMs?: number };
  /**
   * Operations submitted in the same event-loop turn go to Redis as one script call that
   * applies them in order, each with its own outcome, at most `operationsMax` (default 100,
   * 1 to 1000) per call: one round of parsing per batch instead of per operation, so far more
   * operations per second under concurrency. A lone operation goes out alone, one event-loop
   * turn later. Default on; `false` sends every operation as its own script at once.
   */
  batch?: boolean | { operationsMax?: number };
}

const DEFAULT_BATCH_OPERATIONS_MAX = 100;

interface AofWait {
  replicas: number;
  timeoutMs: number;
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
  readonly #scripts: ScriptRunner;
  readonly #keys: readonly string[];
  readonly #aof: AofWait | null;
  readonly #batcher: ScriptBatcher | null;
  #aofSupported: Promise<void> | null = null;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.#keys = ledgerKeys(checkPrefix(options.prefix));
    this.#caller = scriptCaller(options.client);
    this.#scripts = new ScriptRunner(this.#caller);
    this.#aof = aofWait(options.waitForAof);
    const operationsMax = batchSize(options.batch);
    this.#batcher = operationsMax === null ? null : new ScriptBatcher((script, args) => this.#runRaw(script, args), operationsMax);
    if (this.#aof !== null && this.#caller.cluster) {
      throw new InvalidInputError('waitForAof', 'works with a standalone client only (WAITAOF cannot follow a script across a Cluster)');
    }
  }

  async execute(command: Command): Promise<StoreOutcome> {
    if (this.#aof !== null) await this.#aofReady();
    const call = scriptCall(command);
    const reply = this.#batcher === null ? await this.#run(call.script, call.args) : await this.#batched(call);
    const outcome = outcomeOf(command, reply);
    if (this.#aof !== null) await this.#waitForAof(this.#aof);
    return outcome;
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
      const sku = text(reply[i], 'verifyChunk');
      const level = text(reply[i + 1], 'verifyChunk');
      const stored = level === '' ? { onHand: 0, reserved: 0, version: 0 } : countersOf(level);
      items.push(this.#fold(sku, Number(text(reply[i + 2], 'verifyChunk'))).then((folded) => ({ sku, stored, folded })));
    }
    const done = await Promise.all(items);
    const last = done[done.length - 1];
    return { items: done, cursor: done.length === query.limit && last !== undefined ? last.sku : null };
  }

  /** Never closes the client: it is the app's. Later calls fail as `STORE_UNAVAILABLE`. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  /**
   * Checks once, before the first operation touches anything, that the server can confirm AOF
   * writes: it knows WAITAOF and runs with `appendonly yes`. A transient failure of the check is
   * not an answer: it is asked again next time.
   */
  #aofReady(): Promise<void> {
    this.#aofSupported ??= this.#checkAof().catch((error: unknown) => {
      if (!(error instanceof InvalidInputError)) this.#aofSupported = null;
      throw error;
    });
    return this.#aofSupported;
  }

  async #checkAof(): Promise<void> {
    const command = await this.#command(['COMMAND', 'INFO', 'WAITAOF']);
    if (!Array.isArray(command) || command[0] === null || command[0] === undefined) {
      throw new InvalidInputError('waitForAof', 'needs Redis 7.2 or later (WAITAOF); this server does not know the command');
    }
    const persistence = await this.#command(['INFO', 'persistence']);
    if (!/^aof_enabled:1\r?$/m.test(String(persistence))) {
      throw new InvalidInputError('waitForAof', 'needs the server to run with appendonly yes');
    }
  }

  /** WAITAOF on the connection that ran the script. */
  async #waitForAof(wait: AofWait): Promise<void> {
    const reply = await this.#command(['WAITAOF', '1', String(wait.replicas), String(wait.timeoutMs)]);
    const [local, replicas] = Array.isArray(reply) ? reply.map(Number) : [];
    if (local !== 1 || replicas === undefined || replicas < wait.replicas) {
      throw new StoreUnavailableError(`Redis: the write was not confirmed in the AOF within ${wait.timeoutMs} ms (WAITAOF replied ${JSON.stringify(reply)})`);
    }
  }

  #command(args: readonly string[]): Promise<unknown> {
    return this.#call(() => this.#caller.command(args));
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

  #batched(call: ScriptCall): Promise<unknown> {
    return this.#call(() => (this.#batcher as ScriptBatcher).submit(call));
  }

  #run(script: LuaScriptName, args: readonly string[]): Promise<unknown> {
    return this.#call(() => this.#runRaw(script, args));
  }

  /** Every trip to Redis: refused once the store is closed; driver failures mapped to the library's errors. */
  async #call(send: () => Promise<unknown>): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError('the Redis store is closed');
    try {
      return await send();
    } catch (error) {
      throw redisFailure(error);
    }
  }

  #runRaw(script: LuaScriptName, args: readonly string[]): Promise<unknown> {
    return this.#scripts.run(script, this.#keys, args);
  }
}

function batchSize(option: RedisStoreOptions['batch']): number | null {
  if (option === false) return null;
  if (option === undefined || option === true) return DEFAULT_BATCH_OPERATIONS_MAX;
  const { operationsMax = DEFAULT_BATCH_OPERATIONS_MAX } = option;
  if (!Number.isInteger(operationsMax) || operationsMax < 1 || operationsMax > 1000) {
    throw new InvalidInputError('batch.operationsMax', 'must be an integer from 1 to 1000');
  }
  return operationsMax;
}

function aofWait(option: RedisStoreOptions['waitForAof']): AofWait | null {
  if (option === undefined || option === false) return null;
  const { replicas = 0, timeoutMs = 1000 } = option === true ? {} : option;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 100) throw new InvalidInputError('waitForAof.replicas', 'must be an integer from 0 to 100');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 60_000) throw new InvalidInputError('waitForAof.timeoutMs', 'must be an integer from 1 to 60000');
  return { replicas, timeoutMs };
}

function countersOf(level: string): Counters {
  const [onHand, reserved, version] = integers(level, 3, 'verifyChunk') as [number, number, number];
  return { onHand, reserved, version };
}

