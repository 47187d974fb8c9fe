/**
 * What is specific to the Redis store: options, who owns the client, keys and odd SKUs, the
 * sold-out path writing nothing, NOSCRIPT, error mapping, batching, WAITAOF detection.
 */
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { IdempotencyConflictError, LIMITS, StockLedger, type Applied } from 'stock-ledger';
import { RedisStore, layoutKey, ledgerKeys, type RedisStoreOptions } from 'stock-ledger/redis';
import { readAllEntries } from 'stock-ledger/testing';
import { expect, it } from 'vitest';
import { commandCalls, describeRedis, scriptCalls, rawCommand, redisSuiteHooks, writesSoFar as writesOn, type RedisServer } from './support/redis-server.js';
import { codeOf } from './support/codes.js';

let server: RedisServer;
let client: Redis;
let ledgers = 0;
const freshPrefix = (): string => `store-${process.pid}-${(ledgers += 1)}`;
const ledgerOn = (options: Partial<RedisStoreOptions> = {}): { ledger: StockLedger; prefix: string } => {
  const prefix = options.prefix ?? freshPrefix();
  return { ledger: new StockLedger({ store: new RedisStore({ client, prefix, ...options }) }), prefix };
};

/** Writes the server has applied since it started. */
const writesSoFar = (): Promise<number> => writesOn(server);

/** How many times a command ran. */
const calls = (command: string): Promise<number> => commandCalls(server, command);

describeRedis('Redis store', () => {
  redisSuiteHooks((started, connected) => {
    server = started;
    client = connected;
  });

  it('refuses bad prefixes, clients and options with INVALID_INPUT', async () => {
    for (const prefix of ['', 'x'.repeat(65), 'a{b', 'a}b', 'a b', 'é', 'a\nb', 42]) {
      expect(await codeOf(() => new RedisStore({ client, prefix: prefix as string }))).toBe('INVALID_INPUT');
    }
    expect(await codeOf(() => new RedisStore({ client: {} as Redis, prefix: 'ok' }))).toBe('INVALID_INPUT');
    expect(await codeOf(() => new RedisStore({ client, prefix: 'ok', batch: { operationsMax: 0 } }))).toBe('INVALID_INPUT');
    expect(await codeOf(() => new RedisStore({ client, prefix: 'ok', waitForAof: { timeoutMs: 0 } }))).toBe('INVALID_INPUT');
    expect(await codeOf(() => new RedisStore({ client, prefix: 'ok', functions: 'yes' as unknown as boolean }))).toBe('INVALID_INPUT');
    expect(await codeOf(() => new RedisStore({ client, prefix: 'x'.repeat(64) }))).toBe('no error');
  });

  it('every key carries the ledger hash tag, and only the documented keys exist', async () => {
    const { ledger, prefix } = ledgerOn();
    await ledger.restock({ requestId: 'r', sku: '{other}', qty: 5 });
    await ledger.reserve({ requestId: 'h', lines: [{ sku: '{other}', qty: 1 }], ttlMs: 1000 });
    await ledger.deduct({ requestId: 'd', sku: '{other}', qty: 1 });
    await ledger.reverse({ requestId: 'v', of: 'd' });
    const keys = (await client.keys(`*${prefix}*`)).sort();
    expect(keys.length).toBeGreaterThan(5);
    // The twelve, the layout stamp, and since layout 2 one entry index per SKU: by-sku, a colon, the SKU.
    const documented = [...ledgerKeys(prefix), layoutKey(prefix), `stock-ledger:{${prefix}}:by-sku:{other}`];
    for (const key of keys) {
      expect(key.startsWith(`stock-ledger:{${prefix}}:`)).toBe(true);
      expect(documented).toContain(key);
    }
  });

  it('SKUs with braces, colons, spaces, newlines, NUL and any Unicode stay apart', async () => {
    const { ledger } = ledgerOn();
    const skus = ['a', 'a\u0000', 'a\u0000b', '\u0000', 'a:b', 'a b', '{a}', '}{', 'a\nb', '😀', '\uffff', 'ｘ', 'a\u00ff'];
    for (const [i, sku] of skus.entries()) await ledger.restock({ requestId: `r${i}`, sku, qty: i + 1 });
    await ledger.deduct({ requestId: 'd', lines: skus.map((sku) => ({ sku, qty: 1 })) });
    const levels = await ledger.stocks(skus);
    expect(levels.map((l) => l.onHand)).toEqual(skus.map((_, i) => i));
    for (const sku of skus) {
      const page = await ledger.entries({ sku, limit: 1000 });
      expect(page.entries.map((e) => e.sku)).toEqual([sku, sku]);
    }
    expect((await ledger.verify()).ok).toBe(true);
  });

  it('quantities are exact up to the limit', async () => {
    const { ledger } = ledgerOn();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: LIMITS.quantityMax - 1 });
    await ledger.restock({ requestId: 'r2', sku: 'A', qty: 1 });
    const d = (await ledger.deduct({ requestId: 'd', sku: 'A', qty: LIMITS.quantityMax - 3 })) as Applied;
    expect(d.levels[0]).toMatchObject({ onHand: 3, available: 3, version: 3 });
    expect((await ledger.request('r'))?.entries[0]?.onHandAfter).toBe(LIMITS.quantityMax - 1);
  });

  it('a sold-out deduct is rejected without a single write', async () => {
    const { ledger } = ledgerOn();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 1 });
    await ledger.deduct({ requestId: 'd', sku: 'A', qty: 1 });
    const before = await writesSoFar();
    for (let i = 0; i < 20; i += 1) expect((await ledger.deduct({ requestId: `x${i}`, sku: 'A', qty: 1 })).ok).toBe(false);
    expect(await writesSoFar()).toBe(before);
  });

  it('never changes or closes the client it was given', async () => {
    const own = new Redis(server.url);
    await own.ping();
    const before = Object.keys(own).sort();
    const scripts = Object.keys(own.scriptsSet);
    const ledger = new StockLedger({ store: new RedisStore({ client: own, prefix: freshPrefix() }) });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 1 });
    await ledger.close();
    expect(Object.keys(own).sort()).toEqual(before);
    expect(Object.keys(own.scriptsSet)).toEqual(scripts);
    expect(await own.ping()).toBe('PONG');
    expect(await codeOf(() => ledger.stock('A'))).toBe('STORE_UNAVAILABLE');
    own.disconnect();
  });

  it('after SCRIPT FLUSH the script is sent once by EVAL, then EVALSHA again', async () => {
    const { ledger } = ledgerOn({ batch: false, functions: false });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 10 });
    await rawCommand(server, ['SCRIPT', 'FLUSH']);
    const evals = await calls('eval');
    for (let i = 0; i < 3; i += 1) expect((await ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })).ok).toBe(true);
    expect(await calls('eval')).toBe(evals + 1);
  });

  it('foreign data under a ledger key is INVARIANT_VIOLATION; an unreachable server is STORE_UNAVAILABLE', async () => {
    const { ledger, prefix } = ledgerOn();
    await client.set(ledgerKeys(prefix)[0] as string, 'not a hash');
    expect(await codeOf(() => ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }))).toBe('INVARIANT_VIOLATION');
    const dead = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const offline = new StockLedger({ store: new RedisStore({ client: dead, prefix: 'p' }), retry: false });
    expect(await codeOf(() => offline.restock({ requestId: 'r', sku: 'A', qty: 1 }))).toBe('STORE_UNAVAILABLE');
    dead.disconnect();
  });

  it('one batch holding a success, its replay, a conflict and a rejection of one SKU: each its own sequential outcome', async () => {
    const { ledger } = ledgerOn({ batch: true });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 2 });
    const before = await scriptCalls(server);
    const results = await Promise.allSettled([
      ledger.deduct({ requestId: 'buy', sku: 'A', qty: 2 }),
      ledger.deduct({ requestId: 'buy', sku: 'A', qty: 2 }),
      ledger.deduct({ requestId: 'buy', sku: 'A', qty: 1 }),
      ledger.deduct({ requestId: 'late', sku: 'A', qty: 1 }),
    ]);
    expect(await scriptCalls(server)).toBe(before + 1);
    const [first, replay, conflict, late] = results;
    expect(first).toMatchObject({ status: 'fulfilled', value: { ok: true, replayed: false } });
    expect(replay).toMatchObject({ status: 'fulfilled', value: { ok: true, replayed: true } });
    expect(replay.status === 'fulfilled' && first.status === 'fulfilled' && replay.value.ok && first.value.ok && replay.value.entries).toEqual(
      first.status === 'fulfilled' && first.value.ok && first.value.entries,
    );
    expect(conflict.status === 'rejected' && conflict.reason instanceof IdempotencyConflictError).toBe(true);
    expect(late).toMatchObject({ status: 'fulfilled', value: { ok: false, code: 'INSUFFICIENT_STOCK', available: 0 } });
    expect((await readAllEntries(ledger)).filter((e) => e.requestId === 'buy')).toHaveLength(1);
  });

  it('a batch is bounded by operationsMax', async () => {
    const { ledger } = ledgerOn({ batch: { operationsMax: 7 } });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 100 });
    const before = await scriptCalls(server);
    await Promise.all(Array.from({ length: 50 }, (_, i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })));
    expect(await scriptCalls(server)).toBe(before + Math.ceil(50 / 7));
    expect((await ledger.stock('A')).onHand).toBe(50);
  });

  it('waitForAof is refused before anything is written where the server cannot confirm AOF writes', async () => {
    const { ledger } = ledgerOn({ waitForAof: true });
    // The harness runs without appendonly, so even a server that knows WAITAOF is refused.
    expect(await codeOf(() => ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }))).toBe('INVALID_INPUT');
    expect(await ledger.request('r')).toBeNull();
    expect((await ledger.stock('A')).onHand).toBe(0);
  });

  it('a Lua error inside a batch is INVARIANT_VIOLATION, as it is alone, and fails only its own operation', async () => {
    const { ledger, prefix } = ledgerOn();
    await client.hset(ledgerKeys(prefix)[0] as string, 'A', 'garbage');
    const [broken, fine] = await Promise.allSettled([
      ledger.restock({ requestId: 'r-a', sku: 'A', qty: 1 }),
      ledger.restock({ requestId: 'r-b', sku: 'B', qty: 1 }),
    ]);
    expect(broken.status === 'rejected' && (broken.reason as { code?: unknown }).code).toBe('INVARIANT_VIOLATION');
    expect(fine).toMatchObject({ status: 'fulfilled', value: { ok: true } });
    const alone = new StockLedger({ store: new RedisStore({ client, prefix, batch: false }), retry: false });
    expect(await codeOf(() => alone.restock({ requestId: 'r-a2', sku: 'A', qty: 1 }))).toBe('INVARIANT_VIOLATION');
  });

  it('after SCRIPT FLUSH, many calls in flight send the script body once', async () => {
    const { ledger } = ledgerOn({ batch: false, functions: false });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 100 });
    await rawCommand(server, ['SCRIPT', 'FLUSH']);
    const evals = await calls('eval');
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(await calls('eval')).toBe(evals + 1);
    expect((await ledger.stock('A')).onHand).toBe(50);
  });

  it('the embedded scripts match adapters/redis/lua', () => {
    expect(() => execFileSync(process.execPath, ['scripts/embed-lua.mjs', '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
