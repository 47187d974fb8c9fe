/**
 * revoke on the Redis store, compared with the memory store (the reference, which runs the
 * core's decide()): the same calls, under the same clock, give the same outcomes, one at a
 * time and all in one batch, on ioredis and node-redis. A revoked id refuses every kind of
 * operation without writing anything, due expiries included.
 */
import { type Redis } from 'ioredis';
import { type StockLedger } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { type RedisClientLike } from 'stock-ledger/redis';
import { readAllEntries } from 'stock-ledger/testing';
import { expect, it } from 'vitest';
import { T0, allAtOnce, clocked, oneByOne, outcomeWith, redisClocked, type Call, type Clocked } from './support/redis-differential.js';
import { SPLIT_FROM } from '../adapters/redis/redis-batch.js';
import { scriptCalls, describeRedis, redisSuiteHooks, writesSoFar, type NodeRedisClient, type RedisServer } from './support/redis-server.js';

let server: RedisServer;
let ioredis: Redis;
let nodeRedis: NodeRedisClient;

const redisLedger = (client: RedisClientLike, batch: boolean): Clocked => redisClocked(client, 'revoke', batch);

/** A call's outcome, or the code (and stored kind) of the error it threw. */
const outcome = outcomeWith('storedKind');

/** Every use of a revoked id and of an applied one, in an order where each depends on the ones before. */
const steps: Array<[string, (l: StockLedger) => Promise<unknown>]> = [
  ['restock p1', (l) => l.restock({ requestId: 'p1', sku: 'A', qty: 10 })],
  ['reserve cart-1', (l) => l.reserve({ requestId: 'cart-1', lines: [{ sku: 'A', qty: 2 }], ttlMs: 60_000 })],
  ['revoke r1', (l) => l.revoke({ requestId: 'r1', meta: { reason: 'cancelled' } })],
  ['revoke r1 again', (l) => l.revoke({ requestId: 'r1', meta: { reason: 'cancelled' } })],
  ['revoke r1, other meta', (l) => l.revoke({ requestId: 'r1', meta: { reason: 'other' } })],
  ['revoke r1, no meta', (l) => l.revoke({ requestId: 'r1' })],
  ['revoke a restock', (l) => l.revoke({ requestId: 'p1' })],
  ['revoke a reserve', (l) => l.revoke({ requestId: 'cart-1' })],
  ['restock r1', (l) => l.restock({ requestId: 'r1', sku: 'A', qty: 1 })],
  ['deduct r1', (l) => l.deduct({ requestId: 'r1', sku: 'A', qty: 1 })],
  ['adjust r1', (l) => l.adjust({ requestId: 'r1', sku: 'A', onHand: 3 })],
  ['reverse r1', (l) => l.reverse({ requestId: 'r1', of: 'p1' })],
  ['reserve r1', (l) => l.reserve({ requestId: 'r1', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1_000 })],
  ['reverse of r1', (l) => l.reverse({ requestId: 'v1', of: 'r1' })],
  ['commit r1', (l) => l.commit({ reservationId: 'r1' })],
  ['release r1', (l) => l.release({ reservationId: 'r1' })],
  ['deduct d1', (l) => l.deduct({ requestId: 'd1', sku: 'A', qty: 1 })],
  ['revoke d1', (l) => l.revoke({ requestId: 'd1', meta: { reason: 'late' } })],
];

/** The calls of the steps, in order. */
const stepCalls = steps.map(([, step]) => step);

/** What a ledger holds after the steps: every entry, the records, the levels. */
async function state(ledger: StockLedger): Promise<unknown> {
  return {
    entries: await readAllEntries(ledger),
    records: await Promise.all(['r1', 'p1', 'cart-1', 'd1', 'v1'].map((id) => ledger.request(id))),
    levels: await ledger.stocks(['A']),
    reservation: await ledger.reservation('r1'),
  };
}

describeRedis('Redis store: revoke', () => {
  redisSuiteHooks((started, connected) => {
    server = started;
    ioredis = connected;
  }, { nodeRedis: (client) => (nodeRedis = client) });

  it('the semantics of the core, exactly: tombstone, replay, conflict, REQUEST_APPLIED, REQUEST_REVOKED, NOT_REVERSIBLE', async () => {
    const memory = clocked(new MemoryStore());
    const expected = await oneByOne(memory.ledger, stepCalls, outcome);
    const byName = Object.fromEntries(steps.map(([name], i) => [name, expected[i]]));
    // The reference itself, spelled out, so a change in the core shows here too.
    expect(byName['revoke r1']).toEqual({ ok: true, replayed: false, entries: [], levels: [] });
    expect(byName['revoke r1 again']).toEqual({ ok: true, replayed: true, entries: [], levels: [] });
    expect(byName['revoke r1, other meta']).toEqual({ threw: 'IDEMPOTENCY_CONFLICT', storedKind: 'revoke' });
    expect(byName['revoke a restock']).toEqual({ ok: false, code: 'REQUEST_APPLIED', requestId: 'p1', kind: 'restock' });
    expect(byName['revoke a reserve']).toEqual({ ok: false, code: 'REQUEST_APPLIED', requestId: 'cart-1', kind: 'reserve' });
    for (const name of ['restock r1', 'deduct r1', 'adjust r1', 'reverse r1', 'reserve r1']) {
      expect(byName[name], name).toEqual({ ok: false, code: 'REQUEST_REVOKED', requestId: 'r1' });
    }
    expect(byName['reverse of r1']).toEqual({ ok: false, code: 'NOT_REVERSIBLE', requestId: 'r1', kind: 'revoke' });
    expect(byName['deduct d1']).toMatchObject({ ok: true, entries: [{ seq: 3 }] });

    for (const [name, client] of [['ioredis', ioredis], ['node-redis', nodeRedis]] as const) {
      const redis = redisLedger(client, false);
      expect(await oneByOne(redis.ledger, stepCalls, outcome), name).toEqual(expected);
      expect(await state(redis.ledger), name).toEqual(await state(memory.ledger));
      expect((await redis.ledger.verify()).ok).toBe(true);
    }
  });

  it('all of it at once: the same outcomes as one at a time, in as few script calls as the batcher makes', async () => {
    const memory = clocked(new MemoryStore());
    const expected = await oneByOne(memory.ledger, stepCalls, outcome);
    for (const [name, client] of [['ioredis', ioredis], ['node-redis', nodeRedis]] as const) {
      const redis = redisLedger(client, true);
      // A first read, so the store's layout check is behind it.
      await redis.ledger.stock('A');
      const before = await scriptCalls(server);
      const got = await allAtOnce(redis.ledger, stepCalls, outcome);
      // All queued in one turn: from SPLIT_FROM on they go as two calls, which run in order.
      expect(await scriptCalls(server), `${name}: batches`).toBe(before + (stepCalls.length >= SPLIT_FROM ? 2 : 1));
      expect(got, name).toEqual(expected);
      expect(await state(redis.ledger), name).toEqual(await state(memory.ledger));
    }
  });

  it('request() of a revoked id is its tombstone; a revoke consumes no seq and writes only its record', async () => {
    const { ledger } = redisLedger(ioredis, false);
    await ledger.restock({ requestId: 'p', sku: 'A', qty: 1 });
    const before = await writesSoFar(server);
    await ledger.revoke({ requestId: 'gone', meta: { why: 'x' } });
    expect(await writesSoFar(server)).toBe(before + 1);
    expect(await ledger.request('gone')).toEqual({ ok: true, replayed: true, entries: [], levels: [], requestId: 'gone', kind: 'revoke', at: T0 });
    const next = await ledger.restock({ requestId: 'q', sku: 'A', qty: 1 });
    expect(next.ok && next.entries[0]?.seq).toBe(2);
  });

  it('an operation under a revoked id writes nothing, not even the due expiry of the SKU it names', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisLedger(ioredis, false);
    for (const { ledger } of [memory, redis]) {
      await ledger.restock({ requestId: 'p', sku: 'A', qty: 5 });
      await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 100 });
      await ledger.revoke({ requestId: 'gone' });
    }
    memory.clock.now = redis.clock.now = T0 + 1_000; // the hold of cart is due
    const before = await writesSoFar(server);
    const calls: Call[] = [
      (l) => l.deduct({ requestId: 'gone', sku: 'A', qty: 1 }),
      (l) => l.reserve({ requestId: 'gone', lines: [{ sku: 'A', qty: 1 }], ttlMs: 100 }),
      (l) => l.adjust({ requestId: 'gone', sku: 'A', onHand: 1 }),
      (l) => l.restock({ requestId: 'gone', sku: 'A', qty: 1 }),
    ];
    for (const call of calls) {
      const expected = await call(memory.ledger);
      expect(expected).toEqual({ ok: false, code: 'REQUEST_REVOKED', requestId: 'gone' });
      expect(await call(redis.ledger)).toEqual(expected);
    }
    expect(await writesSoFar(server), 'no write at all').toBe(before);
    expect((await readAllEntries(redis.ledger)).map((e) => e.kind)).toEqual(['restock', 'reserve']);
    expect(await readAllEntries(redis.ledger)).toEqual(await readAllEntries(memory.ledger));
    // The next operation that is not refused applies the expiry, as on the reference.
    expect(await redis.ledger.deduct({ requestId: 'd', sku: 'A', qty: 5 })).toEqual(await memory.ledger.deduct({ requestId: 'd', sku: 'A', qty: 5 }));
    expect((await redis.ledger.verify()).ok).toBe(true);
  });
});
