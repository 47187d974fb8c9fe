/**
 * Bulk restock and adjust on the Redis store (restock.lua and adjust.lua looping over lines),
 * compared call by call with the memory store (the core's decide) on what the conformance case
 * and the differential draw rarely: SKUs whose byte order is not JavaScript's (the order due
 * holds expire in, the line a rejection names, the levels), due holds of several SKUs expiring
 * before the checks, quantities at LIMITS.quantityMax, a stocktake refused by a later line,
 * zero deltas, replays in either form; one call at a time and all in one batch script.
 */
import { type Redis } from 'ioredis';
import { LIMITS } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { expect, it } from 'vitest';
import { allAtOnce, clocked, ledgerState, oneByOne, outcomeWith, redisClocked, type Call, type Clocked } from './support/redis-differential.js';
import { describeRedis, redisSuiteHooks } from './support/redis-server.js';

let ioredis: Redis;

const MAX = LIMITS.quantityMax;
/** In JavaScript's order `😀` (a surrogate pair) sorts before `ｚ` and U+FFFF; in UTF-8 bytes after. */
const ODD = ['b\u0000c', 'ｚ', '\uffff', '😀'];
const PO = Array.from({ length: LIMITS.linesPerOperationMax }, (_, i) => `po-${String(i).padStart(3, '0')}`);
const SKUS = [...ODD, 'A', 'B', ...PO];

const outcome = outcomeWith('message');

/** Stock and holds that fall due once the clock moves. */
const before: Call[] = [
  (l) => l.restock({ requestId: 'stock', lines: [...ODD, 'A', 'B'].map((sku) => ({ sku, qty: 10 })) }),
  (l) => l.reserve({ requestId: 'short', lines: ODD.map((sku) => ({ sku, qty: 2 })), ttlMs: 1_000 }),
  (l) => l.reserve({ requestId: 'long', lines: [{ sku: '😀', qty: 4 }, { sku: 'ｚ', qty: 1 }], ttlMs: 600_000 }),
];

/** After the short holds fall due: the first write of each SKU expires them, in JavaScript's order. */
const calls: Call[] = [
  // Due holds of all four expire, then the order applies; levels in JavaScript's order.
  (l) => l.restock({ requestId: 'po-odd', lines: [{ sku: '\uffff', qty: 1 }, { sku: 'b\u0000c', qty: 2 }, { sku: '😀', qty: 3 }, { sku: 'ｚ', qty: 4 }, { sku: 'ｚ', qty: 1 }] }),
  // Two lines past the limit: the first in JavaScript's order (😀) is named, nothing written.
  (l) => l.restock({ requestId: 'fill-1', lines: [{ sku: 'ｚ', qty: MAX - 15 }, { sku: '😀', qty: MAX - 13 }] }),
  (l) => l.restock({ requestId: 'over', lines: [{ sku: 'ｚ', qty: 1 }, { sku: 'A', qty: 1 }, { sku: '😀', qty: 1 }] }),
  // A stocktake: a stale version on ｚ, below reserved on 😀 (first in JavaScript's order) refuses all.
  (l) => l.adjust({ requestId: 'count-1', lines: [{ sku: 'ｚ', onHand: 5, expectedVersion: 1 }, { sku: '😀', onHand: 3 }, { sku: 'A', onHand: 1 }] }),
  (l) => l.adjust({ requestId: 'count-2', lines: [{ sku: 'ｚ', onHand: 5, expectedVersion: 1 }, { sku: '😀', onHand: 4 }] }),
  (l) => l.adjust({ requestId: 'count-3', lines: [{ sku: 'B', onHand: MAX + 1 }, { sku: 'A', onHand: 3 }] }),
  // Applied: one entry per count, a zero delta too.
  (l) => l.adjust({ requestId: 'count-4', lines: [{ sku: '\uffff', onHand: 11 }, { sku: 'B', onHand: 10, expectedVersion: 1 }, { sku: 'A', onHand: 0 }, { sku: '😀', onHand: MAX }] }),
  // Replays: lines reordered or split, a one-line form and the shorthand; a changed count conflicts.
  (l) => l.adjust({ requestId: 'count-4', lines: [{ sku: '😀', onHand: MAX }, { sku: 'A', onHand: 0 }, { sku: 'B', onHand: 10, expectedVersion: 1 }, { sku: '\uffff', onHand: 11 }] }),
  (l) => l.adjust({ requestId: 'count-4', lines: [{ sku: '😀', onHand: MAX }, { sku: 'A', onHand: 1 }, { sku: 'B', onHand: 10, expectedVersion: 1 }, { sku: '\uffff', onHand: 11 }] }),
  (l) => l.restock({ requestId: 'po-odd', lines: [{ sku: 'ｚ', qty: 5 }, { sku: '😀', qty: 3 }, { sku: 'b\u0000c', qty: 1 }, { sku: '\uffff', qty: 1 }, { sku: 'b\u0000c', qty: 1 }] }),
  (l) => l.restock({ requestId: 'one', sku: 'A', qty: 7 }),
  (l) => l.restock({ requestId: 'one', lines: [{ sku: 'A', qty: 3 }, { sku: 'A', qty: 4 }] }),
  (l) => l.adjust({ requestId: 'one-count', lines: [{ sku: 'B', onHand: 9 }] }),
  (l) => l.adjust({ requestId: 'one-count', sku: 'B', onHand: 9 }),
  (l) => l.adjust({ requestId: 'one-count', sku: 'B', onHand: 9, expectedVersion: 2 }),
  // The most lines one operation takes, given out of order.
  (l) => l.restock({ requestId: 'po-big', lines: PO.map((sku, i) => ({ sku, qty: i + 1 })).reverse() }),
  (l) => l.adjust({ requestId: 'count-big', lines: PO.map((sku, i) => ({ sku, onHand: i % 3, expectedVersion: 1 })) }),
];

async function run(batch: boolean): Promise<void> {
  const memory = clocked(new MemoryStore());
  const redis = redisClocked(ioredis, 'bulk', batch);
  const both: Clocked[] = [memory, redis];
  for (const { ledger } of both) await oneByOne(ledger, before, outcome);
  for (const { clock } of both) clock.now += 2_000;
  const expected = await oneByOne(memory.ledger, calls, outcome);
  const got = batch ? await allAtOnce(redis.ledger, calls, outcome) : await oneByOne(redis.ledger, calls, outcome);
  expect(got).toEqual(expected);
  expect(await ledgerState(redis.ledger, SKUS)).toEqual(await ledgerState(memory.ledger, SKUS));
  // The calls reached every path they are meant to.
  const codes = expected.map((o) => {
    const r = o as { code?: string; threw?: string; replayed?: boolean };
    return r.code ?? r.threw ?? r.replayed;
  });
  expect(codes).toEqual([
    false, false, 'QUANTITY_LIMIT', 'BELOW_RESERVED', 'VERSION_CONFLICT', 'QUANTITY_LIMIT', false, true, 'IDEMPOTENCY_CONFLICT', true, false, true,
    false, true, 'IDEMPOTENCY_CONFLICT', false, false,
  ]);
  expect(expected[2]).toMatchObject({ sku: '😀', requested: 1 });
  expect(expected[3]).toMatchObject({ sku: '😀', requested: 3 });
  expect(expected[5]).toMatchObject({ sku: 'B', requested: MAX + 1 });
  expect((expected[6] as { entries: Array<{ sku: string; onHandDelta: number }> }).entries.map((e) => [e.sku, e.onHandDelta])).toEqual([
    ['A', -10], ['B', 0], ['😀', 0], ['\uffff', 0],
  ]);
}

describeRedis('Redis store: bulk restock and adjust', () => {
  redisSuiteHooks((_server, connected) => {
    ioredis = connected;
  });

  it('decides as the core does, one call at a time: JavaScript order, due holds first, limits, first failing line, zero deltas, replays', async () => {
    await run(false);
  });

  it('gives the same outcomes when every call goes in one batch script', async () => {
    await run(true);
  });
});
