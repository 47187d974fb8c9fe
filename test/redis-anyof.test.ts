/**
 * anyOf lines on the Redis store (the allocator in lib.lua), compared call by call with the
 * memory store (the core's decide) on what the model-based differential draws rarely: sixteen
 * alternatives tied under mostAvailable (Lua's table.sort is not stable: the listed position
 * must break ties), SKUs whose byte order is not JavaScript's (merged lines, levels, the SKU an
 * INVALID_INPUT names), quantities near LIMITS.quantityMax written exactly, replays and stored
 * records with their allocations; one call at a time and all in one batch script.
 */
import { type Redis } from 'ioredis';
import { LIMITS } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { expect, it } from 'vitest';
import { allAtOnce, clocked, ledgerState, oneByOne, outcomeWith, redisClocked, type Call } from './support/redis-differential.js';
import { describeRedis, redisSuiteHooks } from './support/redis-server.js';

let ioredis: Redis;

const MAX = LIMITS.quantityMax;
/** Sixteen locations of one product (LIMITS.alternativesPerLineMax), restocked alike: all tied. */
const TIED = Array.from({ length: LIMITS.alternativesPerLineMax }, (_, i) => `L${String(i).padStart(2, '0')}`);
/** In JavaScript's order `😀` (a surrogate pair) sorts before `ｚ` and U+FFFF; in UTF-8 bytes after. */
const ODD = ['b\u0000c', 'ｚ', '\uffff', '😀'];
const BIG = ['big-1', 'big-2'];
const SKUS = [...TIED, ...ODD, ...BIG];

/** A call's outcome, or the code and message of the error it threw (the message names the SKU). */
const outcome = outcomeWith('message');

const stock: Call[] = [
  ...TIED.map((sku): Call => (l) => l.restock({ requestId: `s-${sku}`, sku, qty: 5 })),
  ...ODD.map((sku, i): Call => (l) => l.restock({ requestId: `s-odd-${i}`, sku, qty: 3 })),
  (l) => l.restock({ requestId: 's-big-1', sku: 'big-1', qty: MAX }),
  (l) => l.restock({ requestId: 's-big-2', sku: 'big-2', qty: MAX }),
];

const calls: Call[] = [
  // All tied: the first listed serves, then the next one (the first has less left now).
  (l) => l.deduct({ requestId: 'tie-1', lines: [{ anyOf: TIED, qty: 2, prefer: 'mostAvailable' }] }),
  (l) => l.deduct({ requestId: 'tie-2', lines: [{ anyOf: [...TIED].reverse(), qty: 2, prefer: 'mostAvailable' }] }),
  // Split over ties and a few that have less: most left first, ties as listed.
  (l) => l.reserve({ requestId: 'tie-3', lines: [{ anyOf: TIED, qty: 41, split: true, prefer: 'mostAvailable' }], ttlMs: 60_000 }),
  // A one-SKU line is taken first and an alternative sees what it left.
  (l) => l.deduct({ requestId: 'plain-first', lines: [{ anyOf: ['L15', 'L14', 'L13'], qty: 1 }, { sku: 'L15', qty: 1 }] }),
  // Merged lines and levels in JavaScript's order, not in bytes.
  (l) => l.reserve({ requestId: 'odd', lines: [{ anyOf: ['\uffff', 'ｚ', '😀'], qty: 7, split: true }, { sku: 'b\u0000c', qty: 1 }], ttlMs: 60_000 }),
  (l) => l.deduct({ requestId: 'odd-short', lines: [{ sku: 'b\u0000c', qty: 1 }, { anyOf: ['😀', 'ｚ', '\uffff'], qty: 3, prefer: 'mostAvailable' }] }),
  // Quantities near the limit, taken and refused exactly.
  (l) => l.deduct({ requestId: 'big-a', lines: [{ anyOf: BIG, qty: MAX - 7 }, { anyOf: BIG, qty: 5, split: true }] }),
  // Refused with available MAX + 1: past what %g or tostring would write exactly.
  (l) => l.deduct({ requestId: 'big-c', lines: [{ sku: 'big-2', qty: 1 }, { anyOf: BIG, qty: MAX, prefer: 'mostAvailable' }] }),
  (l) => l.deduct({ requestId: 'big-b', lines: [{ anyOf: BIG, qty: MAX - 1, split: true }] }),
  // Replays give the allocations back; a changed line is a conflict.
  (l) => l.deduct({ requestId: 'tie-1', lines: [{ anyOf: TIED, qty: 2, prefer: 'mostAvailable', split: false }] }),
  (l) => l.reserve({ requestId: 'odd', lines: [{ anyOf: ['\uffff', 'ｚ', '😀'], qty: 7, split: true, prefer: 'order' }, { sku: 'b\u0000c', qty: 1 }], ttlMs: 60_000 }),
  (l) => l.deduct({ requestId: 'big-a', lines: [{ anyOf: BIG, qty: MAX - 7 }, { anyOf: BIG, qty: 5 }] }),
  // Two limited alternatives and no buyer: the error names the first in JavaScript's order.
  (l) => l.setPolicy({ requestId: 'p-1', sku: '\uffff', buyerMax: 5 }),
  (l) => l.setPolicy({ requestId: 'p-2', sku: '😀', buyerMax: 5 }),
  (l) => l.deduct({ requestId: 'no-buyer', lines: [{ anyOf: ['ｚ', '\uffff', '😀'], qty: 1 }] }),
  (l) => l.deduct({ requestId: 'buyer', buyer: 'ann', lines: [{ anyOf: ['\uffff', '😀'], qty: 1, split: true }] }),
  (l) => l.reverse({ requestId: 'back', of: 'plain-first' }),
];

describeRedis('Redis store: anyOf lines', () => {
  redisSuiteHooks((_server, connected) => {
    ioredis = connected;
  });

  it('allocates as the core does, one call at a time: ties, JavaScript order, large quantities, replays, stored records', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisClocked(ioredis, 'anyof', false);
    for (const ledger of [memory.ledger, redis.ledger]) await oneByOne(ledger, stock, outcome);
    const expected = await oneByOne(memory.ledger, calls, outcome);
    expect(await oneByOne(redis.ledger, calls, outcome)).toEqual(expected);
    expect(await ledgerState(redis.ledger, SKUS)).toEqual(await ledgerState(memory.ledger, SKUS));
    // The calls reached every path they are meant to: applied, refused by line, replayed, no buyer.
    const codes = expected.map((o) => (o as { code?: string; threw?: string; replayed?: boolean }).code ?? (o as { threw?: string }).threw ?? (o as { replayed: boolean }).replayed);
    expect(codes).toEqual([
      false, false, false, false, false, 'INSUFFICIENT_STOCK', false, 'INSUFFICIENT_STOCK', false, true, true, 'IDEMPOTENCY_CONFLICT', false, false,
      'INVALID_INPUT', false, false,
    ]);
    expect(expected[7]).toMatchObject({ available: MAX + 1, line: 1, anyOf: BIG });
  });

  it('gives the same outcomes when every call goes in one batch script', async () => {
    const memory = clocked(new MemoryStore());
    const redis = redisClocked(ioredis, 'anyof', true);
    for (const ledger of [memory.ledger, redis.ledger]) await oneByOne(ledger, stock, outcome);
    const expected = await oneByOne(memory.ledger, calls, outcome);
    expect(await allAtOnce(redis.ledger, calls, outcome)).toEqual(expected);
    expect(await ledgerState(redis.ledger, SKUS)).toEqual(await ledgerState(memory.ledger, SKUS));
  });
});
