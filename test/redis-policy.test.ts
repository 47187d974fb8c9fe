/**
 * setPolicy on the Redis store (policy.lua, and the policy every other script carries in the
 * level field): applied, replayed, refused as the core's decide() does; backorders let on-hand go
 * negative; level fields written before policies existed still read; policy entries carry the
 * policy everywhere entries are read; verify() sees the policy; and a seeded random mix of
 * every operation gives the memory store's outcomes exactly, one at a time and batched, on
 * ioredis and node-redis.
 */
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { StockLedger, isStockLedgerError, type Applied, type Level, type StockPolicy } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { RedisStore, ledgerKeys, type RedisClientLike } from 'stock-ledger/redis';
import { readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { commandCalls, describeRedis, startRedis, writesSoFar, type RedisServer } from './support/redis-server.js';

const T0 = 1_700_000_000_000;

let server: RedisServer;
let ioredis: Redis;
let nodeRedis: ReturnType<typeof createClient>;
let ledgers = 0;

/** A ledger, its prefix (none for memory) and a clock the test moves. */
interface Clocked {
  ledger: StockLedger;
  prefix: string;
  clock: { now: number };
}

function clocked(store: MemoryStore | RedisStore, prefix = ''): Clocked {
  const clock = { now: T0 };
  return { ledger: new StockLedger({ store, clock: () => clock.now, retry: false }), prefix, clock };
}

function redisLedger(client: RedisClientLike = ioredis, batch = false): Clocked {
  const prefix = `policy-${process.pid}-${(ledgers += 1)}`;
  return clocked(new RedisStore({ client, prefix, batch }), prefix);
}

/** The level field of a SKU as stored (lib.lua's header). */
const rawLevel = (prefix: string, sku: string): Promise<string | null> => ioredis.hget(ledgerKeys(prefix)[0] as string, sku);

const policy = (backorderMax: number, lowStockAt: number | null, buyerMax: number | null = null): StockPolicy => ({ backorderMax, lowStockAt, buyerMax });

function level(sku: string, onHand: number, reserved: number, version: number, p: StockPolicy | null = null): Level {
  const out: Level = { sku, onHand, reserved, available: onHand - reserved + (p?.backorderMax ?? 0), version };
  if (p !== null) out.policy = p;
  return out;
}

/** A call's outcome, or the code (and stored kind) of the error it threw. */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return await call();
  } catch (error) {
    if (!isStockLedgerError(error)) throw error;
    return { threw: error.code, storedKind: (error as { storedKind?: unknown }).storedKind };
  }
}

describeRedis('Redis store: setPolicy', () => {
  beforeAll(async () => {
    server = await startRedis();
    ioredis = new Redis(server.url);
    nodeRedis = createClient({ url: server.url });
    await nodeRedis.connect();
  });
  afterAll(async () => {
    ioredis?.disconnect();
    await nodeRedis?.close();
    await server?.stop();
  });

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
      const expected = await play(memory, plan, false);
      expect(expected.filter((o) => (o as { ok?: unknown }).ok === true).length, 'the plan applies things').toBeGreaterThan(40);
      expect(JSON.stringify(expected), 'and backorders happen').toMatch(/"onHandAfter":-\d/);
      for (const [name, client, batch] of [['ioredis', ioredis, false], ['node-redis', nodeRedis, false], ['ioredis batched', ioredis, true]] as const) {
        const redis = redisLedger(client, batch);
        expect(await play(redis, plan, batch), `${name}, seed ${seed}`).toEqual(expected);
        expect(await state(redis.ledger), `${name}, seed ${seed}`).toEqual(await state(memory.ledger));
        expect((await redis.ledger.verify()).ok, `${name}, seed ${seed}`).toBe(true);
      }
    }
  });

  it('a batch of setPolicy calls goes out as one script call with its own outcome each', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisLedger(ioredis, true);
    const calls: Array<(l: StockLedger) => Promise<unknown>> = [
      (l) => l.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 2 }),
      (l) => l.deduct({ requestId: 'd1', sku: 'A', qty: 2 }),
      (l) => l.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 1 }),
      (l) => l.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 2 }),
      (l) => l.setPolicy({ requestId: 'p1', sku: 'A', backorderMax: 3 }),
      (l) => l.restock({ requestId: 'r1', sku: 'A', qty: 2 }),
      (l) => l.setPolicy({ requestId: 'p2', sku: 'A', backorderMax: 1 }),
    ];
    const expected: unknown[] = [];
    for (const call of calls) expected.push(await outcome(() => call(memory.ledger)));
    const before = await commandCalls(server, 'evalsha');
    const got = await Promise.all(calls.map((call) => outcome(() => call(redis.ledger))));
    expect(await commandCalls(server, 'evalsha')).toBe(before + 1);
    expect(got).toEqual(expected);
    expect(expected[2]).toMatchObject({ ok: false, code: 'BELOW_RESERVED', requested: 1 });
    expect(expected[6]).toMatchObject({ ok: true, levels: [level('A', 0, 0, 4, policy(1, null))] });
  });
});

// ---------------------------------------------------------------------------------------------
// The differential plan

/** One step: a call on a ledger, or a move of the clock. */
type Step = { call: (l: StockLedger) => Promise<unknown> } | { advanceMs: number };

/** A small seeded generator (mulberry32): the plan is the same on every run. */
function generator(seed: number): { int: (min: number, max: number) => number; pick: <T>(xs: readonly T[]) => T } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return { int, pick: (xs) => xs[int(0, xs.length - 1)] as (typeof xs)[number] };
}

const SKUS = ['A', 'B', 'C'] as const;

function randomPlan(seed: number, length: number): Step[] {
  const { int, pick } = generator(seed);
  const requests: Array<(l: StockLedger) => Promise<unknown>> = [];
  const ids: string[] = [];
  const deducts: string[] = [];
  const carts: string[] = [];
  const steps: Step[] = [];
  const lines = (): Array<{ sku: string; qty: number }> => Array.from({ length: int(1, 2) }, () => ({ sku: pick(SKUS), qty: int(1, 4) }));
  const field = (max: number): number | null | undefined => pick([undefined, null, int(0, max), int(0, max)]);
  for (let i = 0; i < length; i += 1) {
    const id = `q${i}`;
    let call: ((l: StockLedger) => Promise<unknown>) | null = null;
    switch (int(0, 11)) {
      case 0: {
        const input = { requestId: id, sku: pick(SKUS), qty: int(1, 4) };
        call = (l) => l.restock(input);
        break;
      }
      case 1:
      case 2: {
        const input = { requestId: id, lines: lines().concat({ sku: pick(SKUS), qty: int(1, 5) }) };
        call = (l) => l.deduct(input);
        deducts.push(id);
        break;
      }
      case 3: {
        const [ls, ttlMs] = [lines(), int(20, 200)];
        call = (l) => l.reserve({ requestId: id, lines: ls, ttlMs });
        carts.push(id);
        break;
      }
      case 4:
        if (carts.length > 0) {
          const cart = pick(carts);
          const input = int(0, 1) === 0 ? { reservationId: cart } : { reservationId: cart, lines: [{ sku: pick(SKUS), qty: 1 }] };
          call = (l) => l.commit(input);
        }
        break;
      case 5:
        if (carts.length > 0) {
          const cart = pick(carts);
          call = (l) => l.release({ reservationId: cart });
        }
        break;
      case 6: {
        const [sku, onHand] = [pick(SKUS), int(0, 6)];
        call = (l) => l.adjust({ requestId: id, sku, onHand });
        break;
      }
      case 7:
      case 8: {
        const sku = pick(SKUS);
        const lowStockAt = field(5);
        // At least one field: a setPolicy that sets nothing is INVALID_INPUT.
        const backorderMax = lowStockAt === undefined ? (field(6) ?? int(0, 6)) : field(6);
        const input = { requestId: id, sku, ...(backorderMax === undefined ? {} : { backorderMax }), ...(lowStockAt === undefined ? {} : { lowStockAt }) };
        call = (l) => l.setPolicy(input);
        break;
      }
      case 9:
        // Mostly of a deduct, with a part of it now and then; else of anything (mostly refused).
        if (ids.length > 0) {
          const of = deducts.length > 0 && int(0, 2) > 0 ? pick(deducts) : pick(ids);
          const input = int(0, 1) === 0 ? { requestId: id, of } : { requestId: id, of, lines: [{ sku: pick(SKUS), qty: 1 }] };
          call = (l) => l.reverse(input);
        }
        break;
      case 10:
        // A replay of an earlier request with the same payload, or the same id with another one.
        if (requests.length > 0) {
          const again = pick(requests);
          call = again;
          if (int(0, 2) === 0) {
            const taken = pick(ids);
            call = (l) => l.setPolicy({ requestId: taken, sku: 'A', lowStockAt: 99 });
          }
        }
        break;
      default:
        steps.push({ advanceMs: int(0, 120) });
        break;
    }
    if (call !== null) {
      steps.push({ call });
      requests.push(call);
      ids.push(id);
    }
  }
  steps.push({ call: (l) => l.sweepExpired() });
  return steps;
}

/**
 * Runs the plan. Batched, the calls between two clock moves are submitted in one event-loop
 * turn (one batch script, applied in order); the outcomes are those of running them one by one.
 */
async function play({ ledger, clock }: Clocked, plan: Step[], batch: boolean): Promise<unknown[]> {
  const out: unknown[] = [];
  let round: Array<Promise<unknown>> = [];
  const flush = async (): Promise<void> => {
    out.push(...(await Promise.all(round)));
    round = [];
  };
  for (const step of plan) {
    if ('advanceMs' in step) {
      await flush();
      clock.now += step.advanceMs;
      continue;
    }
    const pending = outcome(() => step.call(ledger));
    if (batch) round.push(pending);
    else out.push(await pending);
  }
  await flush();
  return out;
}

/** What a ledger holds: every entry, every request record, the levels. */
async function state(ledger: StockLedger): Promise<unknown> {
  const entries = await readAllEntries(ledger);
  const ids = [...new Set(entries.map((e) => e.requestId))].sort();
  return {
    entries,
    records: await Promise.all(ids.map((id) => ledger.request(id))),
    reservations: await Promise.all(ids.map((id) => ledger.reservation(id))),
    levels: await ledger.stocks([...SKUS]),
  };
}
