/**
 * A batch stops at its first half-written operation. Lua has no rollback: an operation that
 * raised an error after it began writing leaves part of its writes behind, so the operations
 * after it in the same batch script must not decide on that state. The half-applied one fails
 * with INVARIANT_VIOLATION, every later one with STORE_UNAVAILABLE (it wrote nothing, a retry
 * is safe); the ones before it keep their outcomes. An operation that failed before writing
 * anything still fails alone, and the batch goes on.
 *
 * The corruption is met only after a write: the `skus` sorted set replaced by a string, so a
 * restock of a brand-new SKU writes its entry and level, then fails on ZADD to `skus`.
 */
import { type Redis } from 'ioredis';
import { StockLedger, isStockLedgerError } from 'stock-ledger';
import { RedisStore, ledgerKeys, type RedisClientLike } from 'stock-ledger/redis';
import { describe, expect, it } from 'vitest';
import { SPLIT_FROM, ScriptBatcher, batchSizeFor } from '../adapters/redis/redis-batch.js';
import type { ScriptCall } from '../adapters/redis/redis-codec.js';
import { scriptCalls, describeRedis, redisSuiteHooks, type NodeRedisClient, type RedisServer } from './support/redis-server.js';

let server: RedisServer;
let ioredis: Redis;
let nodeRedis: NodeRedisClient;
let ledgers = 0;

interface Fixture {
  ledger: StockLedger;
  keys: readonly string[];
}

/** A batched ledger with B and C stocked, no retry (a retried STORE_UNAVAILABLE would run again). */
async function stocked(client: RedisClientLike): Promise<Fixture> {
  const prefix = `batch-${process.pid}-${(ledgers += 1)}`;
  const ledger = new StockLedger({ store: new RedisStore({ client, prefix, batch: true }), retry: false });
  await ledger.restockOrThrow({ requestId: 'pb', sku: 'B', qty: 10 });
  await ledger.restockOrThrow({ requestId: 'pc', sku: 'C', qty: 10 });
  return { ledger, keys: ledgerKeys(prefix) };
}

/** How each call settled: its result, or the code and message of its error. */
async function settled(calls: ReadonlyArray<Promise<unknown>>): Promise<Array<{ ok: unknown } | { code: string; message: string }>> {
  return Promise.all(calls.map((call) => call.then(
    (value) => ({ ok: (value as { ok: unknown }).ok }),
    (error: unknown) => {
      if (!isStockLedgerError(error)) throw error;
      return { code: error.code, message: error.message };
    },
  )));
}

/** Everything the ledger stores of SKUs B and C and of the requests `ids`: a raw look at the keys. */
async function rawState(f: Fixture, ids: readonly string[]): Promise<unknown> {
  const [levels, seq, , , , requests] = f.keys as [string, string, string, string, string, string];
  return {
    levels: await ioredis.hmget(levels, 'B', 'C'),
    seq: await ioredis.get(seq),
    requests: await ioredis.hmget(requests, ...ids),
  };
}

describeRedis('Redis store: a batch stops at the first half-written operation', () => {
  redisSuiteHooks((started, connected) => {
    server = started;
    ioredis = connected;
  }, { nodeRedis: (client) => (nodeRedis = client) });

  it('by default each operation is its own call, sent at once: three at once are three calls, each with its own outcome', async () => {
    const prefix = `batch-${process.pid}-${(ledgers += 1)}`;
    const ledger = new StockLedger({ store: new RedisStore({ client: ioredis, prefix }), retry: false });
    await ledger.restockOrThrow({ requestId: 'p', sku: 'B', qty: 2 });
    const calls = await scriptCalls(server);
    const outcomes = await Promise.all([
      ledger.deduct({ requestId: 'd1', sku: 'B', qty: 1 }),
      ledger.deduct({ requestId: 'd2', sku: 'B', qty: 1 }),
      ledger.deduct({ requestId: 'd3', sku: 'B', qty: 1 }),
    ]);
    expect(await scriptCalls(server), 'three calls, no batch').toBe(calls + 3);
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, false]);
  });

  for (const [name, client] of [['ioredis', () => ioredis], ['node-redis', () => nodeRedis]] as const) {
    it(`${name}: the half-applied restock is INVARIANT_VIOLATION, the deduct and restock after it STORE_UNAVAILABLE and untouched`, async () => {
      const f = await stocked(client());
      const before = await rawState(f, ['n', 'd', 'r']);
      expect(before).toMatchObject({ levels: ['10,0,1', '10,0,1'], seq: '2', requests: [null, null, null] });
      await ioredis.set(f.keys[4] as string, 'not a sorted set');

      const calls = await scriptCalls(server);
      const [restock, deduct, other] = await settled([
        f.ledger.restock({ requestId: 'n', sku: 'NEW', qty: 5 }),
        f.ledger.deduct({ requestId: 'd', sku: 'B', qty: 1 }),
        f.ledger.restock({ requestId: 'r', sku: 'C', qty: 2 }),
      ]);
      expect(await scriptCalls(server), 'all three went out in one batch call').toBe(calls + 1);

      expect(restock).toMatchObject({ code: 'INVARIANT_VIOLATION', message: expect.stringMatching(/half-applied: restock failed after it began writing.*WRONGTYPE/) });
      for (const later of [deduct, other]) {
        expect(later).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringMatching(/operation 1 of this batch \(restock\) was half-applied.*did not run/) });
      }
      // The later operations wrote nothing: B and C, the seq and their request records are as before,
      // but for the one entry the half-applied restock wrote (its level too, and no request record).
      expect(await rawState(f, ['n', 'd', 'r'])).toEqual({ ...before as object, seq: '3' });
      expect(await ioredis.hget(f.keys[0] as string, 'NEW')).toBe('5,0,1');
    });
  }

  it('operations before the half-applied one keep their outcomes; a later batch runs again', async () => {
    const f = await stocked(ioredis);
    await ioredis.set(f.keys[4] as string, 'not a sorted set');
    const results = await settled([
      f.ledger.deduct({ requestId: 'd1', sku: 'B', qty: 1 }),
      f.ledger.restock({ requestId: 'n', sku: 'NEW', qty: 5 }),
      f.ledger.deduct({ requestId: 'd2', sku: 'B', qty: 1 }),
    ]);
    expect(results.map((r) => ('code' in r ? r.code : r.ok))).toEqual([true, 'INVARIANT_VIOLATION', 'STORE_UNAVAILABLE']);
    expect(await f.ledger.stock('B')).toMatchObject({ onHand: 9, version: 2 });
    // Retried with its id, the operation that did not run now runs (B is no new SKU: no ZADD to skus).
    expect(await f.ledger.deduct({ requestId: 'd2', sku: 'B', qty: 1 })).toMatchObject({ ok: true, replayed: false });
    expect(await f.ledger.stock('B')).toMatchObject({ onHand: 8, version: 3 });
  });

  it('an operation that failed before its first write fails alone, and the batch goes on', async () => {
    const f = await stocked(ioredis);
    // A level that cannot be parsed: the restock of A fails while it reads, before any write.
    await ioredis.hset(f.keys[0] as string, 'A', 'garbage');
    const calls = await scriptCalls(server);
    const results = await settled([
      f.ledger.deduct({ requestId: 'd1', sku: 'B', qty: 1 }),
      f.ledger.restock({ requestId: 'ra', sku: 'A', qty: 1 }),
      f.ledger.deduct({ requestId: 'd2', sku: 'B', qty: 1 }),
      f.ledger.restock({ requestId: 'rc', sku: 'C', qty: 1 }),
    ]);
    expect(await scriptCalls(server)).toBe(calls + 1);
    expect(results.map((r) => ('code' in r ? r.code : r.ok))).toEqual([true, 'INVARIANT_VIOLATION', true, true]);
    expect(results[1]).toMatchObject({ message: expect.not.stringMatching(/half-applied/) });
    expect(await f.ledger.stocks(['B', 'C'])).toMatchObject([{ onHand: 8 }, { onHand: 11 }]);
    expect(await f.ledger.request('ra')).toBeNull();
  });
});

describe('ScriptBatcher: a call it cannot read', () => {
  // What a command without a script case gave: no call at all. Reading it throws inside the batcher.
  const bad = undefined as unknown as ScriptCall;
  const good: ScriptCall = { script: 'restock', args: ['r', 'f', '1', '', '1', 'A', '1'] };

  /** How each submission settled, or "pending" if it had not after the batch went out. */
  async function outcomes(batcher: ScriptBatcher, calls: readonly ScriptCall[]): Promise<string[]> {
    const states = calls.map(() => 'pending');
    const settling = calls.map((call, i) => batcher.submit(call).then(() => (states[i] = 'resolved'), () => (states[i] = 'rejected')));
    await Promise.race([Promise.all(settling), new Promise((resolve) => setTimeout(resolve, 200))]);
    return states;
  }

  it('alone: it rejects instead of hanging', async () => {
    const sent: string[] = [];
    const batcher = new ScriptBatcher(async (script) => sent.push(script), 100);
    expect(await outcomes(batcher, [bad])).toEqual(['rejected']);
    expect(sent).toEqual([]);
  });

  it('in a batch: every operation of the batch rejects, none is sent, and the next batch goes out', async () => {
    const sent: string[] = [];
    const batcher = new ScriptBatcher(async (script) => sent.push(script), 100);
    expect(await outcomes(batcher, [good, bad, good])).toEqual(['rejected', 'rejected', 'rejected']);
    expect(sent).toEqual([]);
    expect(await outcomes(batcher, [good])).toEqual(['resolved']);
    expect(sent).toEqual(['restock']);
  });
});

describe('batchSizeFor: operations per batch call', () => {
  it('one call below SPLIT_FROM, at least two from it on, never above operationsMax, sizes even', () => {
    expect(batchSizeFor(1, 100)).toBe(1);
    expect(batchSizeFor(SPLIT_FROM - 1, 100)).toBe(SPLIT_FROM - 1);
    expect(batchSizeFor(SPLIT_FROM, 100)).toBe(SPLIT_FROM / 2);
    expect(batchSizeFor(64, 100)).toBe(32);
    expect(batchSizeFor(65, 100)).toBe(33);
    expect(batchSizeFor(250, 100)).toBe(84);
    expect(batchSizeFor(50, 7)).toBe(7);
    expect(batchSizeFor(10, 3)).toBe(3);
    for (let queued = 1; queued <= 1200; queued += 1) {
      for (const max of [1, 2, 7, 100, 1000]) {
        const size = batchSizeFor(queued, max);
        const calls = Math.ceil(queued / size);
        expect(size).toBeGreaterThanOrEqual(1);
        expect(size).toBeLessThanOrEqual(max);
        expect(calls).toBe(Math.max(Math.ceil(queued / max), queued >= SPLIT_FROM ? 2 : 1));
      }
    }
  });
});
