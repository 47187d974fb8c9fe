import { StockLedger, isStockLedgerError } from '../src/index.js';
import type { Level, StockEvent, StockEventsOptions, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';

const codeOf = (e: unknown): string => (isStockLedgerError(e) ? e.code : String(e));

/** Every event the feed has now, from `after` on, without waiting for more. */
async function eventsNow(ledger: StockLedger, options: StockEventsOptions = {}): Promise<StockEvent[]> {
  const events: StockEvent[] = [];
  for await (const event of ledger.stockEvents({ ...options, follow: false, pageSize: 3 })) events.push(event);
  return events;
}

/** An event as a short tuple: type, SKU, available before and after, threshold. */
const brief = (e: StockEvent): [string, string, number, number, number] => [e.type, e.sku, e.availableBefore, e.available, e.threshold];

/**
 * Stock events from the feed: a SKU with `lowStockAt` 3 and one with no policy (the follower's
 * default 1) go through restocks, deducts, a reservation, its release, a stocktake and policy
 * changes (which move no stock and cause no event; later entries are judged by the new policy); the events are exactly the crossings (one entry may cause two: below the threshold and
 * depleted), in feed order; starting again from any event's cursor gives exactly the events after
 * it (a cursor inside an entry included); a follower that waits sees events written later and
 * stops on its signal; after compaction a cursor below it is `FEED_COMPACTED`.
 *
 * @example
 * ```ts
 * await stockEventsCase(() => new MemoryStore());
 * ```
 */
export async function stockEventsCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 5_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    await history(ledger);
    const events = await eventsNow(ledger, { lowStockAt: 1 });
    assertEqual(events.map(brief), EXPECTED, 'the crossings, in feed order');
    check(events.every((e, i) => i === 0 || (events[i - 1] as StockEvent).entry.seq <= e.entry.seq), () => 'events in feed order');
    for (let i = 0; i < events.length; i += 1) {
      const rest = await eventsNow(ledger, { lowStockAt: 1, after: (events[i] as StockEvent).cursor });
      assertEqual(rest.map(brief), EXPECTED.slice(i + 1), `resuming after event #${i} (${(events[i] as StockEvent).cursor}): no duplicate, no gap`);
    }
    assertEqual((await eventsNow(ledger, { lowStockAt: 1, after: (events[2] as StockEvent).entry.seq })).map(brief), EXPECTED.slice(3), 'an entry seq works as a cursor');
    await follower(ledger, events[events.length - 1] as StockEvent);
    await afterCompaction(ledger, clock);
  } finally {
    await ledger.close();
  }
}

const EXPECTED: Array<[string, string, number, number, number]> = [
  ['replenished', 'E', 0, 5, 3],
  ['belowThreshold', 'E', 4, 3, 3],
  ['depleted', 'E', 3, 0, 0],
  ['replenished', 'F', 0, 2, 1],
  ['belowThreshold', 'F', 2, 0, 1],
  ['depleted', 'F', 2, 0, 0],
  ['replenished', 'E', 2, 8, 3],
  ['belowThreshold', 'E', 8, 4, 6],
  ['replenished', 'E', 4, 8, 6],
  ['replenished', 'E', 9, 13, 12],
  ['replenished', 'F', 1, 4, 1],
  ['belowThreshold', 'F', 4, 1, 1],
  ['replenished', 'F', 1, 4, 1],
];

async function history(ledger: StockLedger): Promise<void> {
  await ledger.setPolicyOrThrow({ requestId: 'p-E', sku: 'E', lowStockAt: 3 });
  await ledger.restockOrThrow({ requestId: 'e1', sku: 'E', qty: 5 }); // 0 -> 5: above 3
  await ledger.deductOrThrow({ requestId: 'e2', sku: 'E', qty: 1 }); // 4: nothing
  await ledger.deductOrThrow({ requestId: 'e3', sku: 'E', qty: 1 }); // 3: at the threshold
  await ledger.deductOrThrow({ requestId: 'e4', sku: 'E', qty: 3 }); // 0
  await ledger.restockOrThrow({ requestId: 'f1', sku: 'F', qty: 2 }); // F has no policy: default 1
  await ledger.deductOrThrow({ requestId: 'f2', sku: 'F', qty: 2 }); // 2 -> 0: both, one entry
  await ledger.restockOrThrow({ requestId: 'e5', sku: 'E', qty: 2 }); // 2: still low, nothing
  await ledger.restockOrThrow({ requestId: 'e6', sku: 'E', qty: 6 }); // 8
  await ledger.setPolicyOrThrow({ requestId: 'p-E2', sku: 'E', lowStockAt: 6 }); // 8 > 6: nothing
  await ledger.reserveOrThrow({ requestId: 'r-E', lines: [{ sku: 'E', qty: 4 }], ttlMs: 60_000 }); // 4: below 6
  await ledger.releaseOrThrow({ reservationId: 'r-E' }); // back to 8
  await ledger.restockOrThrow({ requestId: 'e7', sku: 'E', qty: 2 }); // 10
  await ledger.setPolicyOrThrow({ requestId: 'p-E3', sku: 'E', lowStockAt: 12 }); // a policy change moves no stock: nothing
  await ledger.deductOrThrow({ requestId: 'e8', sku: 'E', qty: 1 }); // 9: low already, nothing
  await ledger.restockOrThrow({ requestId: 'e9', sku: 'E', qty: 4 }); // 13: above 12
  await ledger.restockOrThrow({ requestId: 'f3', sku: 'F', qty: 1 }); // 0 -> 1: still at 1, nothing
  await ledger.adjustOrThrow({ requestId: 'f4', sku: 'F', onHand: 1 }); // a stocktake of no change: nothing
  await ledger.restockOrThrow({ requestId: 'f5', sku: 'F', qty: 3 }); // 1 -> 4: above 1
  await ledger.deductOrThrow({ requestId: 'f6', sku: 'F', qty: 3 }); // 4 -> 1: below
  await ledger.restockOrThrow({ requestId: 'f7', sku: 'F', qty: 3 }); // 1 -> 4: above
}

/** A follower that waits: it sees what is written after it started, then stops on its signal. */
async function follower(ledger: StockLedger, last: StockEvent): Promise<void> {
  const controller = new AbortController();
  const seen: StockEvent[] = [];
  const reading = (async () => {
    for await (const event of ledger.stockEvents({ lowStockAt: 1, after: last.cursor, pollMs: 5, signal: controller.signal })) {
      seen.push(event);
      if (seen.length === 2) controller.abort();
    }
  })();
  await ledger.deductOrThrow({ requestId: 'f8', sku: 'F', qty: 4 });
  await ledger.restockOrThrow({ requestId: 'f9', sku: 'F', qty: 9 });
  await ledger.restockOrThrow({ requestId: 'f10', sku: 'F', qty: 9 });
  const stopped = await Promise.race([reading.then(() => 'stopped'), new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
  assertEqual(stopped, 'stopped', 'the follower stops on its signal');
  assertEqual(seen.map(brief), [['belowThreshold', 'F', 4, 0, 1], ['depleted', 'F', 4, 0, 0]], 'a waiting follower sees later writes');
}

async function afterCompaction(ledger: StockLedger, clock: { now: number }): Promise<void> {
  clock.now += 3_600_000;
  await ledger.restockOrThrow({ requestId: 'g1', sku: 'G', qty: 1 });
  if (ledger.store.compact === undefined) return;
  await ledger.compact({ windowMs: 60_000 });
  const thrown = await eventsNow(ledger, { after: 0 }).then(() => 'no error', codeOf);
  assertEqual(thrown, 'FEED_COMPACTED', 'a follower behind the compacted part is told');
  const fresh = await eventsNow(ledger);
  assertEqual(fresh.map(brief), [['replenished', 'G', 0, 1, 0]], 'a follower without a cursor starts after the compacted part');
}

/**
 * `levels()`: every SKU once across pages of any size, each as `stocks()` reads it (a due hold
 * counts as expired), and `availableAtMost` keeps exactly the low ones.
 *
 * @example
 * ```ts
 * await levelsCase(() => new MemoryStore());
 * ```
 */
export async function levelsCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 7_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    if (ledger.store.levels === undefined) return;
    const skus = Array.from({ length: 130 }, (_, i) => `L-${String(i).padStart(3, '0')}${i % 7 === 0 ? ' \u00e9\u{1F600}' : ''}`);
    await ledger.restockOrThrow({ requestId: 'po-a', lines: skus.slice(0, 100).map((sku, i) => ({ sku, qty: 1 + (i % 10) })) });
    await ledger.restockOrThrow({ requestId: 'po-b', lines: skus.slice(100).map((sku, i) => ({ sku, qty: 1 + (i % 10) })) });
    await ledger.reserveOrThrow({ requestId: 'hold-1', lines: [{ sku: skus[9] as string, qty: 10 }, { sku: skus[19] as string, qty: 5 }], ttlMs: 1_000 });
    await ledger.reserveOrThrow({ requestId: 'hold-2', lines: [{ sku: skus[29] as string, qty: 9 }], ttlMs: 60_000 });
    clock.now += 2_000; // hold-1 is due: reads count it as expired
    const truth = new Map((await ledger.stocks(skus)).map((l) => [l.sku, l]));
    for (const limit of [1, 7, 100, 1000]) {
      const all = await walk(ledger, { limit });
      assertEqual(all.length, skus.length, `pages of ${limit}: every SKU once`);
      assertEqual(new Set(all.map((l) => l.sku)).size, skus.length, `pages of ${limit}: no SKU twice`);
      for (const level of all) assertEqual(level, truth.get(level.sku), `pages of ${limit}: ${show(level.sku)} as stocks() reads it`);
    }
    const low = await walk(ledger, { limit: 13, availableAtMost: 2 });
    const expected = [...truth.values()].filter((l) => l.available <= 2).map((l) => l.sku).sort();
    assertEqual(low.map((l) => l.sku).sort(), expected, 'availableAtMost 2 keeps exactly the SKUs with available <= 2');
    check(expected.includes(skus[29] as string) && !expected.includes(skus[9] as string), () => 'a held SKU is low, one whose hold is due is not');
    assertEqual(await ledger.levels({ limit: 0 }).then(() => 'no error', codeOf), 'INVALID_INPUT', 'limit 0');
    assertEqual(await ledger.levels({ availableAtMost: 1.5 }).then(() => 'no error', codeOf), 'INVALID_INPUT', 'a fractional availableAtMost');
  } finally {
    await ledger.close();
  }
}

async function walk(ledger: StockLedger, query: { limit: number; availableAtMost?: number }): Promise<Level[]> {
  const all: Level[] = [];
  let page = await ledger.levels(query);
  for (let i = 0; i < 10_000; i += 1) {
    all.push(...page.levels);
    if (page.next === null) return all;
    page = await ledger.levels({ ...query, after: page.next });
  }
  throw new Error('levels() never ended');
}
