/**
 * setPolicy on the Redis store (policy.lua, and the policy every other script carries in the
 * level field): applied, replayed, refused as the core's decide() does; backorders let on-hand go
 * negative; level fields written before policies existed still read; policy entries carry the
 * policy everywhere entries are read; verify() sees the policy; and a seeded random mix of
 * every operation gives the memory store's outcomes exactly, one at a time and batched, on
 * ioredis and node-redis.
 */
import { type Redis } from 'ioredis';
import { type Applied, type Level, type StockLedger, type StockPolicy } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { ledgerKeys, type RedisClientLike } from 'stock-ledger/redis';
import { readAllEntries } from 'stock-ledger/testing';
import { expect, it } from 'vitest';
import {
  T0, advanceOf, allAtOnce, clocked, commitOf, drawPlan, generator, ledgerState, oneByOne, outcomeWith, play, redisClocked,
  releaseOf, restockOf, reversalOf, type Call, type Clocked, type Draws, type PlanDraft, type Step,
} from './support/redis-differential.js';
import {
  scriptCalls, describeRedis, redisSuiteHooks, writesSoFar, type NodeRedisClient, type RedisServer,
} from './support/redis-server.js';

let server: RedisServer;
let ioredis: Redis;
let nodeRedis: NodeRedisClient;

const redisLedger = (client: RedisClientLike = ioredis, batch = false): Clocked => redisClocked(client, 'policy', batch);

/** The level field of a SKU as stored (lib.lua's header). */
const rawLevel = (prefix: string, sku: string): Promise<string | null> => ioredis.hget(ledgerKeys(prefix)[0] as string, sku);

const policy = (backorderMax: number, lowStockAt: number | null, buyerMax: number | null = null): StockPolicy => ({ backorderMax, lowStockAt, buyerMax });

function level(sku: string, onHand: number, reserved: number, version: number, p: StockPolicy | null = null): Level {
  const out: Level = { sku, onHand, reserved, available: onHand - reserved + (p?.backorderMax ?? 0), version };
  if (p !== null) out.policy = p;
  return out;
}

/** A call's outcome, or the code (and stored kind) of the error it threw. */
const outcome = outcomeWith('storedKind');

describeRedis('Redis store: setPolicy', () => {
  redisSuiteHooks((started, connected) => {
    server = started;
    ioredis = connected;
  }, { nodeRedis: (client) => (nodeRedis = client) });

  it('applies with one policy entry, shows the policy in levels, and replays the original outcome after later changes', async () => {
    const { ledger, prefix } = redisLedger();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    const first = (await ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 3, lowStockAt: 2, meta: { by: 'ops' } })) as Applied;
    expect(first).toEqual({
      ok: true, replayed: false, levels: [level('A', 5, 0, 2, policy(3, 2))],
      entries: [{
        seq: 2, requestId: 'p', kind: 'policy', sku: 'A', onHandDelta: 0, reservedDelta: 0, onHandAfter: 5, reservedAfter: 0, at: T0,
        meta: { by: 'ops' }, policy: policy(3, 2),
      }],
    });
    expect(await rawLevel(prefix, 'A')).toBe('5,0,2,3,2');
    await ledger.deduct({ requestId: 'd', sku: 'A', qty: 7 });
    await ledger.setPolicy({ requestId: 'p2', sku: 'A', lowStockAt: null });
    // The replay is the outcome as it was, levels with the policy of then included.
    expect(await ledger.setPolicy({ requestId: 'p', sku: 'A', lowStockAt: 2, backorderMax: 3, meta: { by: 'ops' } })).toEqual({ ...first, replayed: true });
    expect(await outcome(() => ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 3, meta: { by: 'ops' } })))
      .toEqual({ threw: 'IDEMPOTENCY_CONFLICT', storedKind: 'policy' });
    expect(await outcome(() => ledger.restock({ requestId: 'p', sku: 'A', qty: 1 }))).toEqual({ threw: 'IDEMPOTENCY_CONFLICT', storedKind: 'policy' });
    expect(await ledger.request('p')).toEqual({ ...first, replayed: true, requestId: 'p', kind: 'policy', at: T0 });
    expect(await ledger.reverse({ requestId: 'v', of: 'p' })).toEqual({ ok: false, code: 'NOT_REVERSIBLE', requestId: 'p', kind: 'policy' });
    expect(await ledger.stock('A')).toEqual(level('A', -2, 0, 4, policy(3, null)));
    expect(await rawLevel(prefix, 'A')).toBe('-2,0,4,3,');
  });

  it('a backorder lets on-hand go negative, never past the allowance; a restock fills it first', async () => {
    const { ledger } = redisLedger();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 2 });
    await ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 4 });
    expect(await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 5 })).toMatchObject({ ok: true, levels: [level('A', -3, 0, 3, policy(4, null))] });
    expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 2 })).toEqual({ ok: false, code: 'INSUFFICIENT_STOCK', sku: 'A', requested: 2, available: 1 });
    expect(await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000 })).toMatchObject({ ok: true, levels: [level('A', -3, 1, 4, policy(4, null))] });
    expect(await ledger.commit({ reservationId: 'cart' })).toMatchObject({ ok: true, levels: [level('A', -4, 0, 5, policy(4, null))] });
    expect(await ledger.restock({ requestId: 'r2', sku: 'A', qty: 6 })).toMatchObject({ ok: true, levels: [level('A', 2, 0, 6, policy(4, null))] });
    expect(await ledger.adjust({ requestId: 'a', sku: 'A', onHand: 0 })).toMatchObject({ ok: true, levels: [level('A', 0, 0, 7, policy(4, null))] });
    expect((await ledger.verify()).ok).toBe(true);
  });

  it('BELOW_RESERVED: a smaller allowance, or an adjust, that would leave available negative; nothing is written', async () => {
    const { ledger, prefix } = redisLedger();
    await ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 5, lowStockAt: 1 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 1000 });
    const before = await writesSoFar(server);
    const held = level('A', 0, 3, 2, policy(5, 1));
    expect(await ledger.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 2 })).toEqual({ ok: false, code: 'BELOW_RESERVED', sku: 'A', requested: 2, level: held });
    expect(await ledger.setPolicy({ requestId: 'p3', sku: 'A', backorderMax: null })).toEqual({ ok: false, code: 'BELOW_RESERVED', sku: 'A', requested: 0, level: held });
    expect(await writesSoFar(server), 'a rejection writes nothing').toBe(before);
    expect(await ledger.request('p2')).toBeNull();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 1 });
    // An adjust may take on-hand below reserved, by no more than the allowance.
    expect(await ledger.adjust({ requestId: 'a', sku: 'A', onHand: 0 })).toMatchObject({ ok: true, levels: [level('A', 0, 3, 4, policy(5, 1))] });
    await ledger.setPolicy({ requestId: 'p4', sku: 'A', backorderMax: 3 });
    expect(await ledger.adjust({ requestId: 'a2', sku: 'A', onHand: 0 })).toMatchObject({ ok: true });
    expect(await ledger.setPolicy({ requestId: 'p5', sku: 'A', backorderMax: 2 })).toMatchObject({ code: 'BELOW_RESERVED', requested: 2 });
    // A rejected id is free: the same id with a payload that fits applies.
    expect(await ledger.setPolicy({ requestId: 'p2', sku: 'A', lowStockAt: 0 })).toMatchObject({ ok: true, levels: [level('A', 0, 3, 7, policy(3, 0))] });
    expect(await rawLevel(prefix, 'A')).toBe('0,3,7,3,0');
  });

  it('expires the due holds of the SKU first, as restock does', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisLedger();
    for (const { ledger, clock } of [memory, redis]) {
      await ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 2 });
      await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 100 });
      clock.now = T0 + 100;
    }
    const expected = await memory.ledger.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 0 });
    expect(expected).toMatchObject({ ok: true, entries: [{ kind: 'policy', policy: policy(0, null) }], levels: [level('A', 0, 0, 4)] });
    expect(await redis.ledger.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 0 })).toEqual(expected);
    expect((await readAllEntries(redis.ledger)).map((e) => e.kind)).toEqual(['policy', 'reserve', 'expire', 'policy']);
    expect(await readAllEntries(redis.ledger)).toEqual(await readAllEntries(memory.ledger));
    // Back to the default: the short level field again.
    expect(await rawLevel(redis.prefix, 'A')).toBe('0,0,4');
  });

  it('a level field in the form written before policies ("onHand,reserved,version") reads as the default policy', async () => {
    const { ledger, prefix } = redisLedger();
    await ioredis.hset(ledgerKeys(prefix)[0] as string, 'OLD', '7,0,1');
    expect(await ledger.stock('OLD')).toEqual(level('OLD', 7, 0, 1));
    expect(await ledger.deduct({ requestId: 'd', sku: 'OLD', qty: 2 })).toMatchObject({ ok: true, levels: [level('OLD', 5, 0, 2)] });
    expect(await rawLevel(prefix, 'OLD')).toBe('5,0,2');
    expect(await ledger.setPolicy({ requestId: 'p', sku: 'OLD', lowStockAt: 3 })).toMatchObject({ ok: true, levels: [level('OLD', 5, 0, 3, policy(0, 3))] });
    expect(await rawLevel(prefix, 'OLD')).toBe('5,0,3,0,3');
    expect(await ledger.stock('OLD')).toEqual(level('OLD', 5, 0, 3, policy(0, 3)));
    await ioredis.hset(ledgerKeys(prefix)[0] as string, 'BAD', '7,0,1,2');
    expect(await outcome(() => ledger.deduct({ requestId: 'd2', sku: 'BAD', qty: 1 }))).toMatchObject({ threw: 'INVARIANT_VIOLATION' });
    expect(await outcome(() => ledger.stock('BAD'))).toMatchObject({ threw: 'INVARIANT_VIOLATION' });
  });

  it('policy entries carry the whole policy in the feed, per SKU and in request records; a sweep carries the policy on', async () => {
    const { ledger, clock } = redisLedger();
    await ledger.setPolicy({ requestId: 'p1', sku: 'A', lowStockAt: 4 });
    await ledger.setPolicy({ requestId: 'p2', sku: 'B', backorderMax: 2 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'B', qty: 2 }], ttlMs: 10 });
    await ledger.setPolicy({ requestId: 'p3', sku: 'A', lowStockAt: null, backorderMax: 0 });
    clock.now += 10;
    const sweep = await ledger.sweepExpired();
    expect(sweep).toMatchObject({ expired: 1, entries: [{ kind: 'expire', sku: 'B' }] });
    expect(await ledger.stock('B')).toEqual(level('B', 0, 0, 3, policy(2, null)));
    const feed = (await ledger.entries()).entries;
    expect(feed.map((e) => [e.kind, e.policy])).toEqual([
      ['policy', policy(0, 4)], ['policy', policy(2, null)], ['reserve', undefined], ['policy', policy(0, null)], ['expire', undefined],
    ]);
    expect(feed.filter((e) => e.kind !== 'policy').every((e) => !('policy' in e))).toBe(true);
    expect((await ledger.entries({ sku: 'A' })).entries.map((e) => e.policy)).toEqual([policy(0, 4), policy(0, null)]);
    expect((await ledger.request('p3'))?.entries[0]?.policy).toEqual(policy(0, null));
    expect((await ledger.request('p3'))?.levels).toEqual([level('A', 0, 0, 2)]);
  });

  it('verify() reads each SKU\'s policy: a backorder is no drift, a reserved beyond on-hand plus the allowance is', async () => {
    const { ledger, prefix } = redisLedger();
    await ledger.setPolicy({ requestId: 'p', sku: 'A', backorderMax: 3 });
    await ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
    expect(await ledger.stock('A')).toEqual(level('A', -2, 1, 3, policy(3, null)));
    expect(await ledger.verify()).toMatchObject({ ok: true });
    // The same counters with the allowance lowered behind the ledger's back.
    await ioredis.hset(ledgerKeys(prefix)[0] as string, 'A', '-2,1,3,2,');
    const report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(JSON.stringify(report)).toContain('reservedWithinOnHand');
  });

  it('a seeded mix of setPolicy, deducts, reserves, commits, releases, adjusts, reversals and replays: the memory store\'s outcomes', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const plan = randomPlan(seed, 160);
      const memory = clocked(new MemoryStore());
      const expected = await play(memory, plan, { batch: false, outcome });
      expect(expected.filter((o) => (o as { ok?: unknown }).ok === true).length, 'the plan applies things').toBeGreaterThan(40);
      expect(JSON.stringify(expected), 'and backorders happen').toMatch(/"onHandAfter":-\d/);
      for (const [name, client, batch] of [['ioredis', ioredis, false], ['node-redis', nodeRedis, false], ['ioredis batched', ioredis, true]] as const) {
        const redis = redisLedger(client, batch);
        expect(await play(redis, plan, { batch, outcome }), `${name}, seed ${seed}`).toEqual(expected);
        expect(await state(redis.ledger), `${name}, seed ${seed}`).toEqual(await state(memory.ledger));
        expect((await redis.ledger.verify()).ok, `${name}, seed ${seed}`).toBe(true);
      }
    }
  });

  it('a batch of setPolicy calls goes out as one script call with its own outcome each', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisLedger(ioredis, true);
    const calls: Call[] = [
      (l) => l.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 2 }),
      (l) => l.deduct({ requestId: 'd1', sku: 'A', qty: 2 }),
      (l) => l.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 1 }),
      (l) => l.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 2 }),
      (l) => l.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 3 }),
      (l) => l.restock({ requestId: 'r1', sku: 'A', qty: 2 }),
      (l) => l.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 1 }),
    ];
    const expected = await oneByOne(memory.ledger, calls, outcome);
    // A first read, so the store's layout check is behind it.
    await redis.ledger.stock('A');
    const before = await scriptCalls(server);
    const got = await allAtOnce(redis.ledger, calls, outcome);
    expect(await scriptCalls(server)).toBe(before + 1);
    expect(got).toEqual(expected);
    expect(expected[2]).toMatchObject({ ok: false, code: 'BELOW_RESERVED', requested: 1 });
    expect(expected[6]).toMatchObject({ ok: true, levels: [level('A', 0, 0, 4, policy(1, null))] });
  });
});

// ---------------------------------------------------------------------------------------------
// The differential plan

const SKUS = ['A', 'B', 'C'] as const;

/** What a policy plan draws from beside the requests: the deducts (to reverse) and the carts. */
interface Drawn {
  deducts: string[];
  carts: string[];
}

function randomPlan(seed: number, length: number): Step[] {
  const draws = generator(seed);
  const drawn: Drawn = { deducts: [], carts: [] };
  const { steps } = drawPlan(length, (id, draft) => drawCall(draws, id, draft, drawn));
  steps.push({ call: (l) => l.sweepExpired() });
  return steps;
}

/** The call of request `id`: an operation of any kind, a reversal, a replay; or a clock move. */
function drawCall(draws: Draws, id: string, draft: PlanDraft, { deducts, carts }: Drawn): Call | null {
  const { int, pick } = draws;
  const lines = (): Array<{ sku: string; qty: number }> => Array.from({ length: int(1, 2) }, () => ({ sku: pick(SKUS), qty: int(1, 4) }));
  const field = (max: number): number | null | undefined => pick([undefined, null, int(0, max), int(0, max)]);
  switch (int(0, 11)) {
    case 0:
      return restockOf(draws, id, SKUS);
    case 1:
    case 2: {
      const input = { requestId: id, lines: lines().concat({ sku: pick(SKUS), qty: int(1, 5) }) };
      deducts.push(id);
      return (l) => l.deduct(input);
    }
    case 3: {
      const [ls, ttlMs] = [lines(), int(20, 200)];
      carts.push(id);
      return (l) => l.reserve({ requestId: id, lines: ls, ttlMs });
    }
    case 4:
      return commitOf(draws, carts, SKUS);
    case 5:
      return releaseOf(draws, carts);
    case 6: {
      const [sku, onHand] = [pick(SKUS), int(0, 6)];
      return (l) => l.adjust({ requestId: id, sku, onHand });
    }
    case 7:
    case 8: {
      const sku = pick(SKUS);
      const lowStockAt = field(5);
      // At least one field: a setPolicy that sets nothing is INVALID_INPUT.
      const backorderMax = lowStockAt === undefined ? (field(6) ?? int(0, 6)) : field(6);
      const input = { requestId: id, sku, ...(backorderMax === undefined ? {} : { backorderMax }), ...(lowStockAt === undefined ? {} : { lowStockAt }) };
      return (l) => l.setPolicy(input);
    }
    case 9: {
      // Mostly of a deduct, with a part of it now and then; else of anything (mostly refused).
      if (draft.ids.length === 0) return null;
      const of = deducts.length > 0 && int(0, 2) > 0 ? pick(deducts) : pick(draft.ids);
      return reversalOf(draws, id, of, SKUS);
    }
    case 10:
      return replayOf(draws, draft);
    default:
      return advanceOf(draws, draft);
  }
}

/** A replay of an earlier request with the same payload, or (one time in three) the same id with another one. */
function replayOf({ int, pick }: Draws, { requests, ids }: PlanDraft): Call | null {
  if (requests.length === 0) return null;
  const again = pick(requests);
  if (int(0, 2) !== 0) return again;
  const taken = pick(ids);
  return (l) => l.setPolicy({ requestId: taken, sku: 'A', lowStockAt: 99 });
}

/** What a ledger holds: every entry, every request record, the levels. */
function state(ledger: StockLedger): Promise<unknown> {
  return ledgerState(ledger, SKUS);
}
