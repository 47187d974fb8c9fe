import { InvalidInputError, InvariantViolationError, StoreUnavailableError } from '../../src/index.js';
import { byCodeUnits, levelAsOf, withCheckpoint } from '../../src/store-kit.js';
import type { Counters, EntryKind, FeedEntry, Level, StockStore } from '../../src/index.js';
import type {
  Command, CompactQuery, CompactStep, HoldCursor, LevelsQueryOfStore, StoreOutcome, StoredHold, StoredLevelsPage, StoredRequest, StoredReservation,
  VerifyChunk, VerifyItem,
} from '../../src/store-kit.js';
import { aofInvoker, type AofWait } from './redis-aof.js';
import { ScriptBatcher } from './redis-batch.js';
import {
  buyerTotalsOf, compactStepOf, entriesOf, foldPageOf, holdsOf, integers, levelsOf, outcomeOf, requestOf, reservationOf, scriptCall, stockOf,
  verifyChunkOf, type ChunkSku,
} from './redis-codec.js';
import { redisFailure, scriptCaller, type RedisClientLike, type ScriptCaller } from './redis-client.js';
import { aofKey, checkPrefix, ledgerKeys } from './redis-keys.js';
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
   * (`WAITAOF`, Redis 7.2 or later), and optionally to the AOF of `replicas` replicas, for at
   * most `timeoutMs` (default 1000). The script, a write of the ledger's `aof` key and the
   * WAITAOF go in one pipeline on one connection, checked by CLIENT ID before and after, so
   * the wait confirms the state the script read, a replay's or a rejection's too. An operation
   * not confirmed fails with `STORE_UNAVAILABLE` (it may have been applied: retry with the same
   * id). Needs a client with one connection: an ioredis `Redis` or a node-redis client, not a
   * Cluster or a pool (`INVALID_INPUT`). Default off: Redis acknowledges a write once it is in
   * memory.
   */
  waitForAof?: boolean | { replicas?: number; timeoutMs?: number };
  /**
   * Operations submitted in the same event-loop turn go to Redis as one script call that
   * applies them in order, each with its own outcome, at most `operationsMax` (default 100,
   * 1 to 1000) per call. A lone operation goes out alone, one event-loop turn later. Default off:
   * each operation is its own call, sent at once. A call is cheap (a function, one key), so a
   * batch saves little where the server's time is each operation's own work (about 1.1x on
   * spread SKUs at 64 in flight, and slower with few in flight); turn it on for a hot SKU under
   * heavy contention (about 1.7 to 2x, most answers sold out) or with `waitForAof` (one WAITAOF
   * per batch).
   */
  batch?: boolean | { operationsMax?: number };
  /**
   * Run the scripts as Redis Functions (Redis 7.0 or later): the store loads its function library
   * (`FUNCTION LOAD`, once per server; the library's name carries its version) and calls it by
   * `FCALL`, so no call pays for running the script's body again, as every EVALSHA does. A server
   * that refuses functions (older than 7.0, or an ACL that denies `FCALL` or `FUNCTION LOAD`) gets
   * EVALSHA instead, from that call on. Default on, except on a Cluster client, which always uses
   * EVALSHA (a library would have to be loaded on every primary). `false`: EVALSHA only.
   */
  functions?: boolean;
}

const DEFAULT_BATCH_OPERATIONS_MAX = 100;

/** What a SKU's entries fold to (see `#fold`). */
interface Folded {
  folded: Counters;
  held: Map<string, number>;
  /** Per buyer, the reservedDelta - onHandDelta of the entries that name it. */
  bought: Map<string, number>;
  applied: Map<EntryKind, Map<string, number>>;
}

/** Entries summed per fold call while verifying: bounds the time one script holds the server. */
const FOLD_PAGE = 1000;
/**
 * Live holds plus buyer totals after which a verify chunk takes no further SKU: bounds the
 * time one chunk script holds the server (one SKU's are still read whole, with its level).
 */
const VERIFY_CHUNK_ROWS_MAX = 2000;
/**
 * Reads of one SKU's verify item before giving up while compaction keeps moving its entries into
 * its checkpoint (each read folds only entries compaction had not reached).
 */
const VERIFY_ITEM_ATTEMPTS_MAX = 8;

/** Index members the layout script moves per call when it brings a layout 1 ledger to layout 2. */
const LAYOUT_STEP_MEMBERS = 1000;
/** The layout this version writes (layout.lua). */
const LAYOUT = 3;
/** Layout script calls before giving up: far above what any ledger needs (a billion entries). */
const LAYOUT_STEPS_MAX = 1_000_000;

/**
 * A ledger in Redis (or Redis Cluster): each operation is one Lua function (FCALL) or script
 * (EVALSHA; see the `functions` option) that checks the request id, checks every line, and only
 * then writes. Replies are strings only.
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
  /** Reads. */
  readonly #scripts: ScriptRunner;
  /** Operations: the same runner, or with `waitForAof` one that confirms every call in the AOF. */
  readonly #writes: ScriptRunner;
  readonly #keys: readonly string[];
  readonly #aof: AofWait | null;
  readonly #batcher: ScriptBatcher | null;
  #aofSupported: Promise<void> | null = null;
  #layout: Promise<void> | null = null;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    const prefix = checkPrefix(options.prefix);
    // One key, the ledger's levels: the scripts derive the others from it (bind in lib.lua).
    this.#keys = Object.freeze([ledgerKeys(prefix)[0] as string]);
    this.#caller = scriptCaller(options.client);
    const functions = { functions: functionsWanted(options.functions) && !this.#caller.cluster };
    this.#scripts = new ScriptRunner(this.#caller, functions);
    this.#aof = aofWait(options.waitForAof);
    this.#writes = this.#aof === null ? this.#scripts : new ScriptRunner(aofInvoker(this.#onePipeline(), aofKey(prefix), this.#aof), functions);
    const operationsMax = batchSize(options.batch);
    this.#batcher = operationsMax === null ? null : new ScriptBatcher((script, args) => this.#writes.run(script, this.#keys, args), operationsMax);
  }

  async execute(command: Command): Promise<StoreOutcome> {
    if (this.#aof !== null) await this.#aofReady();
    const call = scriptCall(command);
    const reply = await this.#call(() =>
      this.#batcher === null ? this.#writes.run(call.script, this.#keys, call.args) : this.#batcher.submit(call));
    return outcomeOf(command, reply);
  }

  async stocks(skus: readonly string[], now: number): Promise<Level[]> {
    const reply = await this.#run('stocks', [String(now), ...skus]);
    return skus.map((sku, i) => {
      const { counters, dueQty, dueCount } = stockOf((reply as unknown[])[i]);
      return levelAsOf(sku, counters, { qty: dueQty, count: dueCount });
    });
  }

  async entries(query: { after: number; sku: string | null; limit: number }): Promise<FeedEntry[]> {
    return entriesOf(await this.#run('entries', [String(query.after), query.sku ?? '', String(query.limit)]));
  }

  async request(requestId: string): Promise<StoredRequest | null> {
    return requestOf(requestId, await this.#run('record', ['request', requestId]));
  }

  async reservation(reservationId: string): Promise<StoredReservation | null> {
    return reservationOf(await this.#run('record', ['reservation', reservationId]));
  }

  async holds(query: { sku: string; after: HoldCursor | null; limit: number; now: number }): Promise<StoredHold[]> {
    const { sku, after, limit, now } = query;
    const reply = await this.#run('holds', [sku, String(now), after === null ? '' : String(after.expiresAt), after?.reservationId ?? '', String(limit)]);
    return holdsOf(reply);
  }

  /**
   * What `buyer` holds plus has bought of each SKU, as of `now` (its due holds count as
   * expired), in one script.
   */
  async buyerTotals(query: { buyer: string; skus: readonly string[]; now: number }): Promise<number[]> {
    const { buyer, skus, now } = query;
    if (skus.length === 0) return [];
    return buyerTotalsOf(await this.#run('buyerTotals', [String(now), buyer, ...skus]), skus.length);
  }

  /**
   * Reads each SKU's level, the seq of its last entry, its buyer totals, its live holds with
   * their records and its checkpoint in one script, then folds its entries up to that seq in
   * bounded pages, each read only while the checkpoint is still the one read with the level:
   * entries never change, and only compaction removes them (into the checkpoint, which then
   * moves, and the SKU is read again), so the comparison is as exact as one atomic read, and no
   * script runs long.
   */
  async verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk> {
    const args = [query.cursor ?? '', String(query.limit), String(VERIFY_CHUNK_ROWS_MAX)];
    const chunk = verifyChunkOf(await this.#run('verifyChunk', args));
    const items = await Promise.all(chunk.skus.map((sku) => this.#verifyItem(sku)));
    const last = items[items.length - 1];
    return { items, cursor: chunk.more && last !== undefined ? last.sku : null };
  }

  /**
   * One compaction step in one script (compact.lua): entries from the horizon on, older than
   * `before` and not pinned by a reservation still in force, are folded into their SKUs'
   * checkpoints and deleted with the records they own; then closed ids older than `before`.
   * A write like an operation: with `waitForAof` it is confirmed in the AOF too.
   */
  async compact(query: CompactQuery): Promise<CompactStep> {
    if (this.#aof !== null) await this.#aofReady();
    const args = [String(query.before), String(query.limit), String(query.now)];
    return compactStepOf(await this.#call(() => this.#writes.run('compact', this.#keys, args)));
  }

  async compactedThrough(): Promise<number> {
    const [horizon] = integers(await this.#run('horizon', []), 1, 'horizon');
    return horizon ?? 0;
  }

  /**
   * A page of the SKUs that have a level, in byte (code point) order, each read as `stocks`
   * reads it, in one script; the filter applies after, so `next` follows what was looked at.
   */
  async levels(query: LevelsQueryOfStore): Promise<StoredLevelsPage> {
    const { after, limit, availableAtMost, now } = query;
    const page = levelsOf(await this.#run('levels', [after ?? '', String(limit), String(now)]));
    const levels = page.map(({ sku, stock }) => levelAsOf(sku, stock.counters, { qty: stock.dueQty, count: stock.dueCount }));
    const last = page[page.length - 1];
    return {
      levels: availableAtMost === null ? levels : levels.filter((level) => level.available <= availableAtMost),
      next: page.length === limit && last !== undefined ? last.sku : null,
    };
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

  /** The client's pipeline on one connection, which `waitForAof` needs; INVALID_INPUT without one. */
  #onePipeline(): Exclude<ScriptCaller['pipeline'], { refused: string }> {
    const { pipeline } = this.#caller;
    if ('refused' in pipeline) {
      throw new InvalidInputError('waitForAof', `needs one connection for the script and its WAITAOF: ${pipeline.refused}`);
    }
    return pipeline;
  }

  /** A command that is no script (the checks of `waitForAof`): no layout check before it. */
  #command(args: readonly string[]): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError('the Redis store is closed');
    return this.#mapped(() => this.#caller.command(args));
  }

  /**
   * The SKU's item: its kept entries folded in pages while its checkpoint stays the one read with
   * its level; when compaction moved it meanwhile (some of those entries went into it), the SKU
   * is read again, level, holds and checkpoint together.
   */
  async #verifyItem(first: ChunkSku): Promise<VerifyItem> {
    let chunk = first;
    for (let attempt = 0; attempt < VERIFY_ITEM_ATTEMPTS_MAX; attempt += 1) {
      const fold = await this.#fold(chunk.sku, chunk.lastSeq, chunk.checkpoint?.version ?? 0);
      if (fold !== null) return itemOf(chunk, fold);
      chunk = await this.#chunkOf(chunk.sku);
    }
    throw new StoreUnavailableError(`verify: SKU ${JSON.stringify(first.sku)} kept being compacted while its entries were read; retry`);
  }

  /** One SKU read again as a verify chunk reads it. */
  async #chunkOf(sku: string): Promise<ChunkSku> {
    const chunk = verifyChunkOf(await this.#run('verifyChunk', [sku, '1', String(VERIFY_CHUNK_ROWS_MAX), '1']));
    const found = chunk.skus[0];
    // Levels are never removed: a SKU once walked is always there.
    if (found?.sku !== sku) throw new InvariantViolationError(`Redis: verify lost SKU ${JSON.stringify(sku)} between two reads`);
    return found;
  }

  /**
   * The SKU's entries up to seq `upto`, folded in bounded pages: its counters, per reservation
   * its net held units, per buyer its net units taken, and per kind and request id its number
   * of entries (nested maps, so no two pairs share a key). Null when its checkpoint is no
   * longer at version `checkpointVersion` (compaction took some of those entries meanwhile).
   */
  async #fold(sku: string, upto: number, checkpointVersion: number): Promise<Folded | null> {
    const folded = { onHand: 0, reserved: 0, version: 0 };
    const held = new Map<string, number>();
    const bought = new Map<string, number>();
    const applied = new Map<EntryKind, Map<string, number>>();
    let after = 0;
    for (let page = 0; page <= upto / FOLD_PAGE + 1 && after < upto; page += 1) {
      const fold = foldPageOf(await this.#run('verifyFold', [sku, String(after), String(upto), String(FOLD_PAGE), String(checkpointVersion)]));
      if (fold === null) return null;
      folded.onHand += fold.onHand;
      folded.reserved += fold.reserved;
      folded.version += fold.count;
      for (const [id, qty] of fold.held) held.set(id, (held.get(id) ?? 0) + qty);
      for (const [buyer, taken] of fold.bought) bought.set(buyer, (bought.get(buyer) ?? 0) + taken);
      for (const [kind, id, count] of fold.applied) {
        const ofKind = applied.get(kind) ?? new Map<string, number>();
        applied.set(kind, ofKind.set(id, (ofKind.get(id) ?? 0) + count));
      }
      if (fold.lastSeq === after) break;
      after = fold.lastSeq;
    }
    return { folded, held, bought, applied };
  }

  #run(script: LuaScriptName, args: readonly string[]): Promise<unknown> {
    return this.#call(() => this.#scripts.run(script, this.#keys, args));
  }

  /**
   * Every trip to Redis: refused once the store is closed; after the layout check; driver
   * failures mapped to the library's errors.
   */
  async #call(send: () => Promise<unknown>): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError('the Redis store is closed');
    await this.#layoutReady();
    return this.#mapped(send);
  }

  async #mapped(send: () => Promise<unknown>): Promise<unknown> {
    try {
      return await send();
    } catch (error) {
      throw redisFailure(error);
    }
  }

  /**
   * Once per store, before its first call of anything else: the ledger's keys in the layout this
   * version writes (layout.lua), moved there from layout 1 in bounded steps if need be. A ledger
   * written by a newer version (a layout this one does not know) is refused, nothing touched.
   * A failure that is not an answer (the server unreachable) is asked again next time.
   */
  #layoutReady(): Promise<void> {
    this.#layout ??= this.#bringLayout().catch((error: unknown) => {
      this.#layout = null;
      throw error;
    });
    return this.#layout;
  }

  async #bringLayout(): Promise<void> {
    for (let step = 0; step < LAYOUT_STEPS_MAX; step += 1) {
      const reply = String(await this.#mapped(() => this.#scripts.run('layout', this.#keys, [String(LAYOUT_STEP_MEMBERS)])));
      if (reply === 'OK') return;
      if (reply.startsWith('V')) {
        throw new InvariantViolationError(
          `Redis: this ledger's keys are in layout ${reply.slice(1)}, written by a newer version of stock-ledger; this version reads layout ${LAYOUT} ` +
            'and changed nothing: upgrade it',
        );
      }
      if (!reply.startsWith('M')) throw new InvariantViolationError(`Redis: the layout script replied ${JSON.stringify(reply)}`);
    }
    throw new StoreUnavailableError(`Redis: the ledger's layout was still being moved after ${LAYOUT_STEPS_MAX} steps; retry`);
  }
}

/** A verify item from the SKU as read and the fold of its kept entries, with its checkpoint added. */
function itemOf(chunk: ChunkSku, fold: Folded): VerifyItem {
  const { folded, held, bought, applied } = fold;
  const foldedHolds = [...held].filter(([, qty]) => qty !== 0).map(([reservationId, qty]) => ({ reservationId, qty }));
  const repeated = [...applied].flatMap(([kind, ids]) =>
    [...ids].filter(([, count]) => count > 1).map(([requestId, count]) => ({ requestId, kind, count })));
  const buyers = [...new Set([...chunk.buyers.keys(), ...bought.keys()])]
    .map((buyer) => ({ buyer, stored: chunk.buyers.get(buyer) ?? 0, folded: bought.get(buyer) ?? 0 }))
    .filter((b) => b.stored !== 0 || b.folded !== 0);
  const total = withCheckpoint({ folded, foldedHolds, buyers }, chunk.checkpoint);
  total.buyers.sort((a, b) => byCodeUnits(a.buyer, b.buyer));
  return { sku: chunk.sku, stored: chunk.stored, holds: chunk.holds, repeated, ...total };
}

function functionsWanted(option: RedisStoreOptions['functions']): boolean {
  if (option !== undefined && typeof option !== 'boolean') throw new InvalidInputError('functions', 'must be a boolean');
  return option ?? true;
}

function batchSize(option: RedisStoreOptions['batch']): number | null {
  if (option === undefined || option === false) return null;
  if (option === true) return DEFAULT_BATCH_OPERATIONS_MAX;
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
