/**
 * amend on the Redis store (amend.lua), compared call by call with the memory store (the
 * core's decide) on what the model-based differential draws rarely: SKUs whose byte order is
 * not JavaScript's (the amend entries of the old and new lines' union, in code-unit order, and
 * levels), the credit of what the cart holds in the stock, the buyer's limit and an anyOf
 * allocation, a cart without a buyer taking a limited SKU (the INVALID_INPUT naming the SKU,
 * nothing written), due holds of others expired first, replays of the amend and of the reserve
 * after later amends, extends and a commit, refusals by the cart's state, and what reads and
 * verify see; one call at a time and batched between clock moves.
 */
import { type Redis } from 'ioredis';
import type { AmendInput } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { expect, it } from 'vitest';
import { clocked, ledgerState, outcomeWith, play, redisClocked, type Call, type Step } from './support/redis-differential.js';
import { describeRedis, redisSuiteHooks } from './support/redis-server.js';

let ioredis: Redis;

/** In JavaScript's order: 'b\0c' < '😀' (a surrogate pair) < 'ｚ' < U+FFFF; in UTF-8 bytes '😀' is last. */
const ODD = ['b\u0000c', '😀', 'ｚ', '\uffff'];
const SKUS = ['A', ...ODD];
const TTL_MS = 60_000;

/** A call's outcome, or the code and message of the error it threw (the message names the SKU). */
const outcome = outcomeWith('message');

const op = (call: Call): Step => ({ call });
const read = (call: Call): Step => ({ call, read: true });
/** An amend whose meta names its request id, so every entry tells which amend wrote it. */
const amend = (requestId: string, reservationId: string, lines: AmendInput['lines']): Step =>
  op((l) => l.amend({ requestId, reservationId, lines, meta: { v: requestId } }));

const stock: Step[] = [
  ...SKUS.map((sku, i) => op((l) => l.restock({ requestId: `s-${i}`, sku, qty: 5 }))),
  op((l) => l.setPolicy({ requestId: 'limit', sku: '\uffff', buyerMax: 3 })),
];

const plan: Step[] = [
  op((l) => l.reserve({ requestId: 'cart', buyer: 'ann', lines: [{ sku: 'ｚ', qty: 2 }, { sku: '😀', qty: 1 }], ttlMs: TTL_MS })),
  op((l) => l.reserve({ requestId: 'other', lines: [{ sku: 'A', qty: 3 }], ttlMs: 50 })),
  // Every SKU of the union changes: entries in JavaScript's order, not in bytes.
  amend('cart-v2', 'cart', [{ sku: '\uffff', qty: 2 }, { sku: 'b\u0000c', qty: 1 }]),
  // The buyer holds 2 of U+FFFF already: 3 is within her limit only with the credit.
  amend('cart-v3', 'cart', [{ sku: '\uffff', qty: 3 }, { sku: 'b\u0000c', qty: 1 }]),
  amend('cart-v4', 'cart', [{ sku: '\uffff', qty: 4 }]),
  amend('cart-v4', 'cart', [{ sku: '\uffff', qty: 3 }, { sku: 'ｚ', qty: 6 }]),
  // Alternatives: U+FFFF has 5 left counting what the cart holds, 😀 5: 11 is one too many.
  amend('cart-v5', 'cart', [{ anyOf: ['\uffff', '😀'], qty: 11, split: true }]),
  amend('cart-v5', 'cart', [{ anyOf: ['😀', '\uffff'], qty: 7, split: true, prefer: 'mostAvailable' }, { sku: 'b\u0000c', qty: 2 }]),
  // Replays after later amends: the amend as it answered, the reserve with the lines it made.
  amend('cart-v2', 'cart', [{ sku: 'b\u0000c', qty: 1 }, { sku: '\uffff', qty: 1 }, { sku: '\uffff', qty: 1 }]),
  op((l) => l.reserve({ requestId: 'cart', buyer: 'ann', lines: [{ sku: '😀', qty: 1 }, { sku: 'ｚ', qty: 2 }], ttlMs: TTL_MS })),
  amend('cart-v3', 'cart', [{ sku: '\uffff', qty: 1 }]),
  read((l) => l.request('cart-v5')),
  read((l) => l.holds({ sku: '\uffff' })),
  read((l) => l.buyerTotals({ buyer: 'ann', skus: [...ODD] })),
  // A cart without a buyer cannot take a limited SKU, an alternative included: nothing is written.
  op((l) => l.reserve({ requestId: 'anon', lines: [{ sku: 'ｚ', qty: 1 }], ttlMs: TTL_MS })),
  amend('anon-v2', 'anon', [{ anyOf: ['ｚ', '\uffff'], qty: 1 }]),
  read((l) => l.request('anon-v2')),
  // Past the expiry of `other`: an amend taking A expires its hold first.
  { advanceMs: 60 },
  amend('cart-v6', 'cart', [{ sku: 'A', qty: 4 }, { sku: '😀', qty: 1 }]),
  amend('cart-same', 'cart', [{ sku: '😀', qty: 1 }, { sku: 'A', qty: 4 }]),
  op((l) => l.extend({ reservationId: 'cart', ttlMs: TTL_MS })),
  amend('cart-v7', 'cart', [{ sku: 'A', qty: 2 }, { sku: 'ｚ', qty: 1 }]),
  read((l) => l.holds({ sku: 'ｚ' })),
  op((l) => l.commit({ reservationId: 'cart', lines: [{ sku: 'ｚ', qty: 1 }] })),
  amend('cart-v6', 'cart', [{ sku: 'A', qty: 4 }, { sku: '😀', qty: 1 }]),
  amend('cart-v8', 'cart', [{ sku: 'A', qty: 1 }]),
  op((l) => l.release({ reservationId: 'anon' })),
  amend('anon-v3', 'anon', [{ sku: 'A', qty: 1 }]),
  amend('nobody-v2', 'nobody', [{ sku: 'A', qty: 1 }]),
  // A short cart amended, then past its expiry: refused, and the amended holds expire.
  op((l) => l.reserve({ requestId: 'late', lines: [{ sku: 'A', qty: 1 }], ttlMs: 100 })),
  amend('late-v2', 'late', [{ sku: 'A', qty: 2 }, { sku: '😀', qty: 1 }]),
  { advanceMs: 120 },
  amend('late-v3', 'late', [{ sku: 'A', qty: 1 }]),
  read((l) => l.verify()),
];

/** The code of each outcome: a rejection's or error's code, else whether it was a replay. */
function codes(outcomes: readonly unknown[]): unknown[] {
  return outcomes.map((o) => {
    const x = (o ?? {}) as { code?: string; threw?: string; replayed?: boolean };
    return x.code ?? x.threw ?? x.replayed ?? 'read';
  });
}

describeRedis('Redis store: amend', () => {
  redisSuiteHooks((_server, connected) => {
    ioredis = connected;
  });

  for (const batch of [false, true]) {
    it(`amends as the core does, ${batch ? 'batched between clock moves' : 'one call at a time'}`, async () => {
      const memory = clocked(new MemoryStore());
      const redis = redisClocked(ioredis, 'amend', batch);
      for (const ledger of [memory, redis]) await play(ledger, stock, { batch: false, outcome });
      const expected = await play(memory, plan, { batch: false, outcome });
      expect(await play(redis, plan, { batch, outcome })).toEqual(expected);
      expect(await ledgerState(redis.ledger, SKUS)).toEqual(await ledgerState(memory.ledger, SKUS));
      // The plan reached every path it is meant to: applied, refused, replayed, no buyer, reads.
      expect(codes(expected)).toEqual([
        false, false, false, false, 'BUYER_LIMIT', 'INSUFFICIENT_STOCK', 'INSUFFICIENT_STOCK', false, true, true, 'IDEMPOTENCY_CONFLICT', true,
        'read', 'read', false, 'INVALID_INPUT', 'read', false, false, false, false, 'read', false, true, 'RESERVATION_COMMITTED', false,
        'RESERVATION_RELEASED', 'RESERVATION_NOT_FOUND', false, false, 'RESERVATION_EXPIRED', 'read',
      ]);
      const skusOf = (o: unknown): string[] => (o as { entries: Array<{ sku: string }> }).entries.map((e) => e.sku);
      expect(skusOf(expected[2]), 'cart-v2: one entry per SKU of the union, in JavaScript\'s order').toEqual(ODD);
      expect(expected[4]).toMatchObject({ taken: 0, limit: 3 });
      expect(expected[6]).toMatchObject({ available: 10, line: 0 });
      expect(expected[15]).toMatchObject({ message: expect.stringContaining(JSON.stringify('\uffff')) });
      expect(expected[31]).toMatchObject({ ok: true });
    });
  }
});
