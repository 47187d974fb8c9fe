/**
 * Purchase limits on the Redis store (buyerMax in the level field, the buyer on deduct and
 * reserve, per-buyer totals in the ledger's `buyers` hash and its per-SKU index, the
 * buyerTotals read, verify's buyer check): buyers with NUL and astral characters stay apart;
 * level fields in the forms written before buyerMax (and before policies) still read; a deduct
 * without a buyer on a limited SKU is INVALID_INPUT and writes nothing, not even due expiries;
 * verify reports a tampered total; and seeded random mixes of every operation give the memory
 * store's outcomes, reads and records exactly, one at a time and batched, on ioredis and
 * node-redis.
 */
import { type Redis } from 'ioredis';
import { type StockLedger, type StockPolicy } from 'stock-ledger';
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

/** Indexes in `ledgerKeys()` (lib.lua's header). */
const KEY = { levels: 0, buyers: 10, buyersBySku: 11 } as const;

let server: RedisServer;
let ioredis: Redis;
let nodeRedis: NodeRedisClient;

const redisLedger = (client: RedisClientLike = ioredis, batch = false): Clocked => redisClocked(client, 'buyers', batch);

const key = (prefix: string, name: keyof typeof KEY): string => ledgerKeys(prefix)[KEY[name]] as string;

/** enc() of lib.lua: NUL escaped as NUL 0xFF, then a NUL ends the string. */
function enc(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (const b of bytes) out.push(...(b === 0 ? [0, 0xff] : [b]));
  return Buffer.from([...out, 0]);
}

/** The stored buyer totals of a ledger, field bytes (hex) -> value. */
async function rawBuyers(prefix: string): Promise<Record<string, string>> {
  // As Buffers both: a field holds 0xFF bytes (enc of a NUL), which no string decoding keeps.
  const raw = (await ioredis.callBuffer('HGETALL', key(prefix, 'buyers'))) as Buffer[];
  const out: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) out[(raw[i] as Buffer).toString('hex')] = (raw[i + 1] as Buffer).toString();
  return out;
}

const policy = (p: Partial<StockPolicy>): StockPolicy => ({ backorderMax: 0, lowStockAt: null, buyerMax: null, ...p });

/** A call's outcome, or the code (and message) of the error it threw. */
const outcome = outcomeWith('message');

describeRedis('Redis store: purchase limits (buyerMax, buyers, buyerTotals)', () => {
  redisSuiteHooks((started, connected) => {
    server = started;
    ioredis = connected;
  }, { nodeRedis: (client) => (nodeRedis = client) });

  it('buyers with NUL and emoji are stored apart: (A, "\\0a") and ("A\\0", "a") never share a field', async () => {
    for (const batch of [false, true]) {
      const memory = clocked(new MemoryStore());
      const redis = redisLedger(ioredis, batch);
      const skus = ['A', 'A\u0000', '\u0000', '😀'];
      const buyers = ['\u0000a', 'a', 'a\u0000', '\u0000', '😀', '😀\u0000😀'];
      const calls: Call[] = [];
      for (const [i, sku] of skus.entries()) {
        calls.push((l) => l.restock({ requestId: `stock-${i}`, sku, qty: 50 }));
        calls.push((l) => l.setPolicy({ requestId: `limit-${i}`, sku, buyerMax: 3 + i }));
      }
      let n = 0;
      for (const sku of skus) {
        for (const [j, buyer] of buyers.entries()) {
          const id = (n += 1);
          const qty = 1 + (id % 3);
          if (j % 2 === 0) calls.push((l) => l.deduct({ requestId: `d-${id}`, sku, qty, buyer }));
          else calls.push((l) => l.reserve({ requestId: `r-${id}`, lines: [{ sku, qty }], ttlMs: 10_000, buyer }));
        }
      }
      const expected = await oneByOne(memory.ledger, calls, outcome);
      // Batched: all submitted in one turn (one batch script, applied in order); else one by one.
      const got = await (batch ? allAtOnce : oneByOne)(redis.ledger, calls, outcome);
      expect(got).toEqual(expected);
      for (const buyer of buyers) {
        const totals = await redis.ledger.buyerTotals({ buyer, skus });
        expect(totals, JSON.stringify(buyer)).toEqual(await memory.ledger.buyerTotals({ buyer, skus }));
        expect(totals.every((t) => t.taken > 0)).toBe(true);
      }
      // One field per (SKU, buyer) pair, enc(sku) .. buyer: 24 pairs, 24 distinct fields.
      const stored = await rawBuyers(redis.prefix);
      expect(Object.keys(stored)).toHaveLength(skus.length * buyers.length);
      expect(stored[Buffer.concat([enc('A'), Buffer.from('\u0000a')]).toString('hex')]).toBe('2'); // d-1
      expect(stored[Buffer.concat([enc('A\u0000'), Buffer.from('a')]).toString('hex')]).toBe('3'); // r-8
      expect(await ioredis.zcard(key(redis.prefix, 'buyersBySku'))).toBe(skus.length * buyers.length);
      expect((await redis.ledger.holds({ sku: '😀' })).holds.map((h) => h.buyer)).toEqual(['a', '\u0000', '😀\u0000😀']);
      expect(await readAllEntries(redis.ledger)).toEqual(await readAllEntries(memory.ledger));
      expect(await redis.ledger.verify()).toMatchObject({ ok: true, drift: [] });
    }
  });

  it('a level field without buyerMax (either older form) still reads; buyerMax adds a sixth field, and goes away with it', async () => {
    const { ledger, prefix } = redisLedger();
    const levels = key(prefix, 'levels');
    await ioredis.hset(levels, 'OLD', '7,0,1');
    await ioredis.hset(levels, 'POL', '5,0,3,2,4');
    expect(await ledger.stocks(['OLD', 'POL'])).toEqual([
      { sku: 'OLD', onHand: 7, reserved: 0, available: 7, version: 1 },
      { sku: 'POL', onHand: 5, reserved: 0, available: 7, version: 3, policy: policy({ backorderMax: 2, lowStockAt: 4 }) },
    ]);
    // No buyerMax: no buyer needed, and none is stored without one.
    expect(await ledger.deduct({ requestId: 'd1', sku: 'POL', qty: 6 })).toMatchObject({ ok: true, levels: [{ onHand: -1, version: 4 }] });
    expect(await ioredis.hget(levels, 'POL')).toBe('-1,0,4,2,4');
    expect(await ledger.deduct({ requestId: 'd2', sku: 'OLD', qty: 1, buyer: 'ann' })).toMatchObject({ ok: true, entries: [{ buyer: 'ann' }] });
    expect(await ioredis.hget(levels, 'OLD')).toBe('6,0,2');
    expect((await ledger.buyerTotals({ buyer: 'ann', skus: ['OLD'] }))[0]?.taken).toBe(1);

    const set = await ledger.setPolicy({ requestId: 'p1', sku: 'OLD', buyerMax: 2 });
    expect(set).toMatchObject({ ok: true, entries: [{ kind: 'policy', policy: policy({ buyerMax: 2 }) }], levels: [{ policy: policy({ buyerMax: 2 }) }] });
    expect(await ioredis.hget(levels, 'OLD')).toBe('6,0,3,0,,2');
    expect(await ledger.setPolicy({ requestId: 'p2', sku: 'POL', buyerMax: 0 })).toMatchObject({ ok: true });
    expect(await ioredis.hget(levels, 'POL')).toBe('-1,0,5,2,4,0');
    expect(await ledger.stock('POL')).toMatchObject({ policy: policy({ backorderMax: 2, lowStockAt: 4, buyerMax: 0 }) });
    expect(await ledger.deduct({ requestId: 'd3', sku: 'POL', qty: 1, buyer: 'ann' }))
      .toEqual({ ok: false, code: 'BUYER_LIMIT', sku: 'POL', buyer: 'ann', limit: 0, taken: 0 });
    expect(await ledger.deduct({ requestId: 'd4', sku: 'OLD', qty: 2, buyer: 'ann' }))
      .toEqual({ ok: false, code: 'BUYER_LIMIT', sku: 'OLD', buyer: 'ann', limit: 2, taken: 1 });
    // Limits lifted: the forms without buyerMax again.
    await ledger.setPolicy({ requestId: 'p3', sku: 'OLD', buyerMax: null });
    await ledger.setPolicy({ requestId: 'p4', sku: 'POL', buyerMax: null });
    expect(await ioredis.hget(levels, 'OLD')).toBe('6,0,4');
    expect(await ioredis.hget(levels, 'POL')).toBe('-1,0,6,2,4');
    // A sixth field that is not a number is foreign data, as any other malformed level.
    await ioredis.hset(levels, 'BAD', '5,0,3,0,,');
    expect(await outcome(() => ledger.stock('BAD'))).toMatchObject({ threw: 'INVARIANT_VIOLATION' });
    expect(await outcome(() => ledger.deduct({ requestId: 'd5', sku: 'BAD', qty: 1, buyer: 'ann' }))).toMatchObject({ threw: 'INVARIANT_VIOLATION' });
  });

  it('no buyer on a SKU with a buyerMax: INVALID_INPUT as the core words it, before anything, due expiries included', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisLedger();
    for (const { ledger, clock } of [memory, redis]) {
      await ledger.restock({ requestId: 'r', sku: 'L', qty: 10 });
      await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'L', qty: 2 }], ttlMs: 100, buyer: 'ann' });
      await ledger.setPolicy({ requestId: 'p', sku: 'L', buyerMax: 2 });
      clock.now = T0 + 100; // cart is due
    }
    const before = await writesSoFar(server);
    const expected = await outcome(() => memory.ledger.deduct({ requestId: 'anon', lines: [{ sku: 'K', qty: 1 }, { sku: 'L', qty: 1 }] }));
    expect(expected).toEqual({ threw: 'INVALID_INPUT', message: 'buyer: is required: SKU "L" has a buyerMax (a limit per buyer)' });
    expect(await outcome(() => redis.ledger.deduct({ requestId: 'anon', lines: [{ sku: 'K', qty: 1 }, { sku: 'L', qty: 1 }] }))).toEqual(expected);
    expect(await outcome(() => redis.ledger.reserve({ requestId: 'anon', lines: [{ sku: 'L', qty: 1 }], ttlMs: 10 }))).toEqual(expected);
    expect(await writesSoFar(server), 'nothing written, not even the due expiry').toBe(before);
    expect(await redis.ledger.request('anon')).toBeNull();
    expect((await readAllEntries(redis.ledger)).map((e) => e.kind), 'no expire entry').toEqual(['restock', 'reserve', 'policy']);
    expect(await redis.ledger.reservation('cart')).toMatchObject({ state: 'expired', buyer: 'ann' }); // as read: it is due
    // Reads count the due hold as expired: ann is back at 0.
    expect(await redis.ledger.buyerTotals({ buyer: 'ann', skus: ['L'] })).toEqual([{ sku: 'L', buyer: 'ann', taken: 0 }]);
    // With a buyer: the expiry (which gives ann her units back) comes first, then the limit, then the stock.
    for (const { ledger } of [memory, redis]) await ledger.restock({ requestId: 'r2', sku: 'K', qty: 1 });
    const take = (l: StockLedger): Promise<unknown> => l.deduct({ requestId: 'ann-1', lines: [{ sku: 'K', qty: 1 }, { sku: 'L', qty: 2 }], buyer: 'ann' });
    const applied = await outcome(() => take(memory.ledger));
    expect(applied).toMatchObject({ ok: true, entries: [{ sku: 'K', buyer: 'ann' }, { sku: 'L', buyer: 'ann' }] });
    expect(await outcome(() => take(redis.ledger))).toEqual(applied);
    expect(await readAllEntries(redis.ledger)).toEqual(await readAllEntries(memory.ledger));
    expect((await readAllEntries(redis.ledger)).map((e) => `${e.kind}:${e.buyer ?? '-'}`)).toEqual(
      ['restock:-', 'reserve:ann', 'policy:-', 'restock:-', 'expire:ann', 'deduct:ann', 'deduct:ann']);
    expect(await rawBuyers(redis.prefix)).toEqual({
      [Buffer.concat([enc('K'), Buffer.from('ann')]).toString('hex')]: '1',
      [Buffer.concat([enc('L'), Buffer.from('ann')]).toString('hex')]: '2',
    });
    // The limit before the stock: the first line past the limit, in SKU order, is named.
    for (const { ledger } of [memory, redis]) await ledger.setPolicy({ requestId: 'pk', sku: 'K', buyerMax: 1 });
    const refused = (l: StockLedger): Promise<unknown> => l.deduct({ requestId: 'ann-2', lines: [{ sku: 'L', qty: 1 }, { sku: 'K', qty: 5 }], buyer: 'ann' });
    expect(await outcome(() => refused(memory.ledger))).toEqual({ ok: false, code: 'BUYER_LIMIT', sku: 'K', buyer: 'ann', limit: 1, taken: 1 });
    expect(await outcome(() => refused(redis.ledger))).toEqual({ ok: false, code: 'BUYER_LIMIT', sku: 'K', buyer: 'ann', limit: 1, taken: 1 });
    expect(await outcome(() => redis.ledger.deduct({ requestId: 'bea-1', sku: 'K', qty: 1, buyer: 'bea' })))
      .toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', sku: 'K' });
  });

  it('reservations, holds, extends, commits, releases, expiries and reversals carry the buyer and move its total', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisLedger();
    const script: Array<(c: Clocked) => Promise<unknown>> = [
      ({ ledger }) => ledger.restock({ requestId: 'r', sku: 'A', qty: 20 }),
      ({ ledger }) => ledger.restock({ requestId: 'r2', sku: 'B', qty: 20 }),
      ({ ledger }) => ledger.setPolicy({ requestId: 'p', sku: 'A', buyerMax: 5 }),
      ({ ledger }) => ledger.reserve({ requestId: 'c1', lines: [{ sku: 'A', qty: 3 }, { sku: 'B', qty: 2 }], ttlMs: 1000, buyer: 'ann', meta: { cart: 1 } }),
      ({ ledger }) => ledger.holds({ sku: 'A' }),
      ({ ledger }) => ledger.extend({ reservationId: 'c1', ttlMs: 5000 }),
      ({ ledger }) => ledger.reservation('c1'),
      ({ ledger }) => ledger.commit({ reservationId: 'c1', lines: [{ sku: 'A', qty: 2 }] }),
      ({ ledger }) => ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] }),
      ({ ledger }) => ledger.reverse({ requestId: 'refund', of: 'c1', lines: [{ sku: 'A', qty: 1 }] }),
      ({ ledger }) => ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] }),
      ({ ledger }) => ledger.deduct({ requestId: 'd', lines: [{ sku: 'A', qty: 4 }, { sku: 'B', qty: 1 }], buyer: 'ann' }),
      ({ ledger }) => ledger.reverse({ requestId: 'd-back', of: 'd' }),
      ({ ledger }) => ledger.reserve({ requestId: 'c2', lines: [{ sku: 'A', qty: 4 }], ttlMs: 100, buyer: 'ann' }),
      ({ ledger }) => ledger.reserve({ requestId: 'c3', lines: [{ sku: 'A', qty: 1 }], ttlMs: 100, buyer: 'bea' }),
      ({ ledger }) => ledger.release({ reservationId: 'c3' }),
      ({ ledger }) => ledger.release({ reservationId: 'c3' }),
      async ({ clock }) => { clock.now += 100; },
      ({ ledger }) => ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] }),
      ({ ledger }) => ledger.sweepExpired(),
      ({ ledger }) => ledger.buyerTotals({ buyer: 'ann', skus: ['A', 'B'] }),
      ({ ledger }) => ledger.reservation('c2'),
      ({ ledger }) => ledger.request('d'),
      ({ ledger }) => ledger.request('d-back'),
    ];
    for (const [i, step] of script.entries()) {
      const expected = await outcome(() => step(memory));
      expect(await outcome(() => step(redis)), `step ${i}`).toEqual(expected);
    }
    expect(await redis.ledger.reservation('c2')).toMatchObject({ state: 'expired', buyer: 'ann' });
    expect(await redis.ledger.buyerTotals({ buyer: 'ann', skus: ['A'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 1 }]);
    expect(await readAllEntries(redis.ledger)).toEqual(await readAllEntries(memory.ledger));
    // Totals back at 0 leave no field behind (a missing total reads 0): ann's B, bea's A.
    expect(Object.keys(await rawBuyers(redis.prefix))).toEqual([Buffer.concat([enc('A'), Buffer.from('ann')]).toString('hex')]);
    expect(await ioredis.zcard(key(redis.prefix, 'buyersBySku'))).toBe(1);
    expect(await redis.ledger.verify()).toMatchObject({ ok: true });
  });

  it('verify() reports a tampered, a lost or a foreign buyer total as buyerTotals drift, with both sides', async () => {
    const { ledger, prefix } = redisLedger();
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 10 });
    await ledger.setPolicy({ requestId: 'p', sku: 'A', buyerMax: 4 });
    await ledger.deduct({ requestId: 'd1', sku: 'A', qty: 2, buyer: 'ann' });
    await ledger.reserve({ requestId: 'c1', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000, buyer: 'bea' });
    expect(await ledger.verify()).toMatchObject({ ok: true });
    const field = (buyer: string): Buffer => Buffer.concat([enc('A'), Buffer.from(buyer)]);

    await ioredis.hset(key(prefix, 'buyers'), field('ann'), '3');
    let report = await ledger.verify();
    expect(report.ok).toBe(false);
    expect(report.drift).toEqual([expect.objectContaining({ sku: 'A', invariant: 'buyerTotals', expected: { buyer: 'ann', taken: 2 }, actual: { buyer: 'ann', taken: 3 } })]);

    await ioredis.hset(key(prefix, 'buyers'), field('ann'), '2');
    await ioredis.hdel(key(prefix, 'buyers'), field('bea'));
    report = await ledger.verify();
    expect(report.drift).toEqual([expect.objectContaining({ invariant: 'buyerTotals', expected: { buyer: 'bea', taken: 1 }, actual: { buyer: 'bea', taken: 0 } })]);

    await ioredis.hset(key(prefix, 'buyers'), field('bea'), '1');
    await ioredis.hset(key(prefix, 'buyers'), field('cy'), '5');
    await ioredis.zadd(key(prefix, 'buyersBySku'), 0, field('cy'));
    report = await ledger.verify();
    expect(report.drift).toEqual([expect.objectContaining({ invariant: 'buyerTotals', expected: { buyer: 'cy', taken: 0 }, actual: { buyer: 'cy', taken: 5 } })]);
    // The limit reads the stored total: the tampered one refuses cy.
    expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 1, buyer: 'cy' })).toEqual({ ok: false, code: 'BUYER_LIMIT', sku: 'A', buyer: 'cy', limit: 4, taken: 5 });
  });

  it('a batch with buyers: one script call, each operation its own outcome, the memory store\'s', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisLedger(ioredis, true);
    const setup: Call[] = [
      (l) => l.restock({ requestId: 's', sku: 'A', qty: 6 }),
      (l) => l.setPolicy({ requestId: 'p', sku: 'A', buyerMax: 2, backorderMax: 1 }),
    ];
    for (const call of setup) {
      const expected = await outcome(() => call(memory.ledger));
      expect(await outcome(() => call(redis.ledger))).toEqual(expected);
    }
    const calls: Call[] = [
      (l) => l.deduct({ requestId: 'a1', sku: 'A', qty: 1, buyer: 'ann' }),
      (l) => l.reserve({ requestId: 'a2', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000, buyer: 'ann' }),
      (l) => l.deduct({ requestId: 'a3', sku: 'A', qty: 1, buyer: 'ann' }), // BUYER_LIMIT
      (l) => l.deduct({ requestId: 'x', sku: 'A', qty: 1 }), // INVALID_INPUT, the batch goes on
      (l) => l.release({ reservationId: 'a2' }),
      (l) => l.deduct({ requestId: 'a3', sku: 'A', qty: 1, buyer: 'ann' }), // now within the limit
      (l) => l.deduct({ requestId: 'a1', sku: 'A', qty: 1, buyer: 'ann' }), // a replay
      (l) => l.deduct({ requestId: 'a1', sku: 'A', qty: 1, buyer: 'bea' }), // IDEMPOTENCY_CONFLICT
      (l) => l.reserve({ requestId: 'b1', lines: [{ sku: 'A', qty: 2 }], ttlMs: 1000, buyer: 'bea' }),
      (l) => l.deduct({ requestId: 'c1', sku: 'A', qty: 2, buyer: 'cy' }),
      (l) => l.deduct({ requestId: 'd1', sku: 'A', qty: 2, buyer: 'dee' }), // INSUFFICIENT_STOCK: 1 left of 6 + 1
      (l) => l.commit({ reservationId: 'b1', lines: [{ sku: 'A', qty: 1 }] }), // sells 1, gives 1 back
      (l) => l.reverse({ requestId: 'c1-back', of: 'c1', lines: [{ sku: 'A', qty: 1 }] }),
      (l) => l.deduct({ requestId: 'd1', sku: 'A', qty: 2, buyer: 'dee' }), // the refused id, now 3 left
    ];
    const expected = await oneByOne(memory.ledger, calls, outcome);
    const before = await scriptCalls(server);
    const got = await allAtOnce(redis.ledger, calls, outcome);
    expect(await scriptCalls(server)).toBe(before + 1);
    expect(got).toEqual(expected);
    expect(expected.map((o) => (o as { code?: string; threw?: string }).code ?? (o as { threw?: string }).threw ?? 'ok')).toEqual([
      'ok', 'ok', 'BUYER_LIMIT', 'INVALID_INPUT', 'ok', 'ok', 'ok', 'IDEMPOTENCY_CONFLICT', 'ok', 'ok', 'INSUFFICIENT_STOCK', 'ok', 'ok', 'ok',
    ]);
    for (const buyer of ['ann', 'bea', 'cy', 'dee']) {
      expect(await redis.ledger.buyerTotals({ buyer, skus: ['A'] })).toEqual(await memory.ledger.buyerTotals({ buyer, skus: ['A'] }));
    }
    expect(await readAllEntries(redis.ledger)).toEqual(await readAllEntries(memory.ledger));
    expect(await redis.ledger.verify()).toMatchObject({ ok: true });
  });

  it('a seeded mix of buyers, buyerMax, deducts, reserves, commits, releases, expiries, extends, reversals and replays: the memory store\'s', async () => {
    const seeds = process.env.BUYERS_SEED === undefined ? [11, 12, 13, 14] : [Number(process.env.BUYERS_SEED)];
    const KINDS = ['deduct', 'reserve', 'commit', 'release', 'expire', 'reverse'];
    const withBuyers = new Set<string>();
    for (const seed of seeds) {
      const plan = randomPlan(seed, 220);
      const memory = clocked(new MemoryStore());
      const expected = await play(memory, plan, { batch: false, outcome, observe: readBuyers });
      const expectedState = await state(memory.ledger);
      const text = JSON.stringify([expected, expectedState]);
      expect(text, 'limits bind').toContain('BUYER_LIMIT');
      expect(text, 'a buyer is missing now and then').toContain('INVALID_INPUT');
      for (const kind of KINDS) if (new RegExp(`"kind":"${kind}"[^}]*"buyer"`).test(text)) withBuyers.add(kind);
      for (const [name, client, batch] of [['ioredis', ioredis, false], ['node-redis', nodeRedis, false], ['ioredis batched', ioredis, true]] as const) {
        const redis = redisLedger(client, batch);
        expect(await play(redis, plan, { batch, outcome, observe: readBuyers }), `${name}, seed ${seed}`).toEqual(expected);
        expect(await state(redis.ledger), `${name}, seed ${seed}`).toEqual(expectedState);
        expect(await redis.ledger.verify(), `${name}, seed ${seed}`).toMatchObject({ ok: true, drift: [] });
      }
    }
    if (seeds.length > 1) expect([...withBuyers].sort(), 'the seeds give entries of every kind a buyer: the plan tests them').toEqual([...KINDS].sort());
  });
});

// ---------------------------------------------------------------------------------------------
// The differential plan

/** SKUs and buyers that would collide under a bare separator, ('A', '\0a') and ('A\0', 'a') among them. */
const SKUS = ['A', 'A\u0000', '😀'] as const;
const BUYERS = ['a', '\u0000a', 'a\u0000', '😀'] as const;

/** What a buyers plan draws from beside the requests: the deducts and reserves (to reverse), and the carts. */
interface Drawn {
  takes: string[];
  carts: string[];
}

function randomPlan(seed: number, length: number): Step[] {
  const draws = generator(seed);
  const drawn: Drawn = { takes: [], carts: [] };
  const { steps } = drawPlan(length, (id, draft) => drawCall(draws, id, draft, drawn));
  const sweeps: Step[] = [{ call: (l) => l.sweepExpired({ limit: 3 }) }, { call: (l) => l.sweepExpired() }];
  return [...limits(), ...steps, ...sweeps];
}

/** Every SKU stocked and limited to 3 a buyer: the steps before the drawn ones. */
function limits(): Step[] {
  const steps: Step[] = [];
  for (const [i, sku] of SKUS.entries()) {
    steps.push({ call: (l) => l.restock({ requestId: `stock-${i}`, sku, qty: 12 }) });
    steps.push({ call: (l) => l.setPolicy({ requestId: `limit-${i}`, sku, buyerMax: 3 }) });
  }
  return steps;
}

/** The call of request `id`: an operation of any kind, mostly with a buyer, a reversal, a replay; or a read or a clock move. */
function drawCall(draws: Draws, id: string, draft: PlanDraft, { takes, carts }: Drawn): Call | null {
  const { int, pick } = draws;
  const lines = (): Array<{ sku: string; qty: number }> => Array.from({ length: int(1, 2) }, () => ({ sku: pick(SKUS), qty: int(1, 3) }));
  // Mostly a buyer, now and then none (INVALID_INPUT where a SKU has a limit).
  const buyer = (): { buyer?: string } => (int(0, 5) === 0 ? {} : { buyer: pick(BUYERS) });
  switch (int(0, 14)) {
    case 0:
      return restockOf(draws, id, SKUS);
    case 1:
    case 2: {
      const input = { requestId: id, lines: lines(), ...buyer() };
      takes.push(id);
      return (l) => l.deduct(input);
    }
    case 3:
    case 4: {
      const input = { requestId: id, lines: lines(), ttlMs: int(20, 400), ...buyer() };
      carts.push(id);
      takes.push(id);
      return (l) => l.reserve(input);
    }
    case 5:
    case 13:
      return commitOf(draws, carts, SKUS);
    case 6:
      return releaseOf(draws, carts);
    case 7: {
      if (carts.length === 0) return null;
      const input = { reservationId: pick(carts), ttlMs: int(20, 200) };
      return (l) => l.extend(input);
    }
    case 8: {
      // A limit set, lowered, lifted; now and then the allowance too.
      const input = { requestId: id, sku: pick(SKUS), buyerMax: pick([null, 1, 2, 3, 4, 6]), ...(int(0, 3) === 0 ? { backorderMax: int(0, 3) } : {}) };
      return (l) => l.setPolicy(input);
    }
    case 9:
      return takes.length > 0 ? reversalOf(draws, id, pick(takes), SKUS) : null;
    case 10:
      return replayOf(draws, draft, takes);
    case 11: {
      const input = { buyer: pick(BUYERS), skus: [...SKUS] };
      draft.steps.push({ call: (l) => l.buyerTotals(input), read: true });
      return null;
    }
    case 12: {
      const sku = pick(SKUS);
      draft.steps.push({ call: (l) => l.holds({ sku }), read: true });
      return null;
    }
    default:
      return advanceOf(draws, draft);
  }
}

/** A replay of an earlier request, or (one time in three) the id of a take for another buyer: a conflict, unless it was refused. */
function replayOf({ int, pick }: Draws, { requests }: PlanDraft, takes: readonly string[]): Call | null {
  if (requests.length === 0) return null;
  const call = pick(requests);
  if (int(0, 2) !== 0 || takes.length === 0) return call;
  const again = { requestId: pick(takes), sku: pick(SKUS), qty: 1, buyer: pick(BUYERS) };
  return (l) => l.deduct(again);
}

/** Every buyer's totals and every SKU's holds, as read now. */
async function readBuyers(ledger: StockLedger): Promise<unknown> {
  return {
    totals: await Promise.all(BUYERS.map((buyer) => ledger.buyerTotals({ buyer, skus: [...SKUS] }))),
    holds: await Promise.all(SKUS.map((sku) => ledger.holds({ sku }))),
  };
}

/** What a ledger holds: every entry, every request record and reservation, the levels, the buyers' reads. */
async function state(ledger: StockLedger): Promise<unknown> {
  return { ...(await ledgerState(ledger, SKUS)), buyers: await readBuyers(ledger) };
}
