import { FeedCompactedError, StockLedger, isStockLedgerError, type StockEvent, type StockEventsOptions, type StockStore } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { describe, expect, it } from 'vitest';

const codeOf = (e: unknown): string => (isStockLedgerError(e) ? `${e.code} ${(e as { field?: string }).field ?? ''}`.trim() : String(e));

async function collect(ledger: StockLedger, options: StockEventsOptions = {}): Promise<StockEvent[]> {
  const events: StockEvent[] = [];
  for await (const e of ledger.stockEvents({ ...options, follow: false })) events.push(e);
  return events;
}

const brief = (e: StockEvent): string => `${e.type} ${e.sku} ${e.availableBefore}->${e.available} @${e.threshold}`;

describe('stockEvents()', () => {
  it('rejects bad options with INVALID_INPUT naming the field, on the first next(), before reading anything', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const bad: Array<[unknown, string]> = [
      [null, 'options'], [{ lowStockAt: -1 }, 'lowStockAt'], [{ lowStockAt: 1.5 }, 'lowStockAt'], [{ lowStockAt: '3' }, 'lowStockAt'],
      [{ pollMs: -1 }, 'pollMs'], [{ pollMs: 60_001 }, 'pollMs'], [{ pageSize: 0 }, 'pageSize'], [{ pageSize: 1001 }, 'pageSize'],
      [{ follow: 'yes' }, 'follow'], [{ signal: {} }, 'signal'], [{ after: 'abc' }, 'after'], [{ after: '1.x' }, 'after'],
      [{ after: -1 }, 'after'], [{ after: 1.5 }, 'after'], [{ after: '1.10' }, 'after'],
    ];
    for (const [options, field] of bad) {
      const events = ledger.stockEvents(options as StockEventsOptions); // never throws here: the first next() rejects
      const thrown = await events[Symbol.asyncIterator]().next().then(() => 'no error', codeOf);
      expect(thrown, JSON.stringify(options)).toBe(`INVALID_INPUT ${field}`);
    }
  });

  it('a backorder allowance counts in available: selling it out is depleted, with on-hand below 0', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.setPolicyOrThrow({ requestId: 'p', sku: 'PRE', backorderMax: 5 });
    await ledger.deductOrThrow({ requestId: 'd1', sku: 'PRE', qty: 5 });
    await ledger.restockOrThrow({ requestId: 'r1', sku: 'PRE', qty: 6 });
    expect((await collect(ledger)).map(brief)).toEqual(['depleted PRE 5->0 @0', 'replenished PRE 0->6 @0']);
  });

  it('the policy\'s lowStockAt wins over the default; without either there is no belowThreshold', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.setPolicyOrThrow({ requestId: 'p', sku: 'X', lowStockAt: 2 });
    await ledger.restockOrThrow({ requestId: 'r', lines: [{ sku: 'X', qty: 5 }, { sku: 'Y', qty: 5 }] });
    await ledger.deductOrThrow({ requestId: 'd', lines: [{ sku: 'X', qty: 3 }, { sku: 'Y', qty: 3 }] });
    expect((await collect(ledger, { lowStockAt: 4 })).map(brief)).toEqual([
      'replenished X 0->5 @2', 'replenished Y 0->5 @4', 'belowThreshold X 5->2 @2', 'belowThreshold Y 5->2 @4',
    ]);
    expect((await collect(ledger)).map(brief)).toEqual(['replenished X 0->5 @2', 'replenished Y 0->5 @0', 'belowThreshold X 5->2 @2']);
  });

  it('a follower that starts at a release after a policy change judges it by the policy then in force (from the records)', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.setPolicyOrThrow({ requestId: 'p1', sku: 'E', lowStockAt: 3 });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'E', qty: 20 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'E', qty: 10 }], ttlMs: 60_000 });
    const policy = await ledger.setPolicyOrThrow({ requestId: 'p2', sku: 'E', lowStockAt: 12 });
    await ledger.releaseOrThrow({ reservationId: 'cart' });
    await ledger.setPolicyOrThrow({ requestId: 'p3', sku: 'E', lowStockAt: 30 });
    const all = (await collect(ledger)).map(brief);
    expect(all).toEqual(['replenished E 0->20 @3', 'replenished E 10->20 @12']);
    const resumed = await collect(ledger, { after: policy.entries[0]?.seq as number });
    expect(resumed.map(brief)).toEqual(['replenished E 10->20 @12']);
  });

  it('a waiting follower ends on its signal while it waits, and a signal aborted first yields nothing', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 1 });
    const controller = new AbortController();
    const seen: string[] = [];
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    for await (const e of ledger.stockEvents({ pollMs: 60_000, signal: controller.signal })) seen.push(brief(e));
    expect(seen).toEqual(['replenished A 0->1 @0']);
    expect(Date.now() - started).toBeLessThan(10_000);
    const none: string[] = [];
    for await (const e of ledger.stockEvents({ signal: AbortSignal.abort() })) none.push(brief(e));
    expect(none).toEqual([]);
  });

  it('a follower behind the compacted part gets FeedCompactedError with where the feed starts', async () => {
    let now = 1_000_000;
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => now });
    await ledger.restockOrThrow({ requestId: 'r1', sku: 'A', qty: 1 });
    await ledger.restockOrThrow({ requestId: 'r2', sku: 'A', qty: 1 });
    now += 10_000;
    await ledger.restockOrThrow({ requestId: 'r3', sku: 'A', qty: 1 });
    expect(await ledger.compact({ windowMs: 5_000 })).toMatchObject({ entries: 2, requests: 2, compactedThrough: 2 });
    const error = await collect(ledger, { after: '1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FeedCompactedError);
    expect(error).toMatchObject({ code: 'FEED_COMPACTED', after: 1, compactedThrough: 2 });
    expect(await collect(ledger, { after: 2 })).toEqual([]);
  });
});

describe('stockEvents() edges', () => {
  it('an entry that leaves a sold-out SKU at 0 (a stocktake of 0) is no new depleted; a single event\'s cursor is its entry\'s seq', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 1 });
    await ledger.deductOrThrow({ requestId: 'd', sku: 'A', qty: 1 });
    await ledger.adjustOrThrow({ requestId: 'count', sku: 'A', onHand: 0 });
    const events = await collect(ledger);
    expect(events.map(brief)).toEqual(['replenished A 0->1 @0', 'depleted A 1->0 @0']);
    expect(events.map((e) => e.cursor)).toEqual(['1', '2']);
  });

  it('read without a cursor while compaction moves the start: reads again from the new start, never below it', async () => {
    const full = new MemoryStore();
    const seed = new StockLedger({ store: full });
    for (let i = 0; i < 5; i += 1) await seed.restockOrThrow({ requestId: `r${i}`, sku: 'A', qty: 1 });
    const horizons = [0, 3, 3];
    const asked: number[] = [];
    const store: StockStore = {
      execute: (c) => full.execute(c), stocks: (sk, n) => full.stocks(sk, n), request: (id) => full.request(id),
      reservation: (id) => full.reservation(id), verifyChunk: (q) => full.verifyChunk(q), close: () => full.close(),
      entries: (q) => {
        asked.push(q.after);
        return full.entries(q);
      },
      compactedThrough: () => Promise.resolve(horizons.shift() ?? 3),
    };
    const page = await new StockLedger({ store }).entries();
    expect(asked).toEqual([0, 3]);
    expect(page.entries.map((e) => e.seq)).toEqual([4, 5]);
  });
});

describe('compact() steps', () => {
  it('goes on step after step until the store has no more, and sweeps due holds first so their reservations can go', async () => {
    let now = 1_000_000;
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => now });
    await ledger.restockOrThrow({ requestId: 'po', lines: Array.from({ length: 100 }, (_, i) => ({ sku: `S${i}`, qty: 1 })) });
    for (let i = 0; i < 1_050; i += 1) await ledger.restockOrThrow({ requestId: `r${i}`, sku: 'A', qty: 1 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1_000 });
    now += 60_000;
    const report = await ledger.compact({ windowMs: 30_000 });
    // 1,151 entries in two steps of at most 1,000: the cart, due, was swept first, so its reserve entry
    // goes; its record stays with its expire entry, which is new.
    expect(report).toMatchObject({ steps: 2, entries: 1_151, requests: 1_051, reservations: 0, compactedThrough: 1_151 });
    expect(await ledger.reservation('cart')).toMatchObject({ state: 'expired' });
    expect((await ledger.verify()).ok).toBe(true);
  });

  it('compact({ before }) takes a time instead of a window', async () => {
    let now = 1_000_000;
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => now });
    await ledger.restockOrThrow({ requestId: 'r1', sku: 'A', qty: 1 });
    now += 10;
    await ledger.restockOrThrow({ requestId: 'r2', sku: 'A', qty: 1 });
    now += 10;
    expect(await ledger.compact({ before: 1_000_010 })).toMatchObject({ before: 1_000_010, entries: 1, compactedThrough: 1 });
    expect(await ledger.request('r2')).not.toBeNull();
  });

  it('accepts the largest window and page, and a negative availableAtMost', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const { LIMITS } = await import('stock-ledger');
    await expect(ledger.compact({ windowMs: LIMITS.windowMsMax })).resolves.toMatchObject({ entries: 0 });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 1 });
    await expect(ledger.levels({ limit: LIMITS.levelsPageMax, availableAtMost: -1 })).resolves.toEqual({ levels: [], next: null });
    await expect(ledger.levels({ limit: 1 })).resolves.toMatchObject({ levels: [{ sku: 'A', available: 1 }], next: 'A' });
  });
});

describe('compact() and levels() input', () => {
  it('compact needs a window (its own or the ledger\'s retention), an integer from 0 to the limit', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    for (const [input, expected] of [[undefined, 'INVALID_INPUT windowMs'], [{ windowMs: -1 }, 'INVALID_INPUT windowMs'], [{ windowMs: 1.5 }, 'INVALID_INPUT windowMs'],
      [{ windowMs: '1' }, 'INVALID_INPUT windowMs'], [{ windowMs: 4e11 }, 'INVALID_INPUT windowMs'], ['x', 'INVALID_INPUT input'],
      [{ before: -1 }, 'INVALID_INPUT before'], [{ before: 1.5 }, 'INVALID_INPUT before'], [{ before: 5, windowMs: 5 }, 'INVALID_INPUT before']] as const) {
      expect(await ledger.compact(input as never).then(() => 'no error', codeOf), JSON.stringify(input)).toBe(expected);
    }
    expect(() => new StockLedger({ store: new MemoryStore(), retention: { windowMs: -5 } })).toThrow(/retention.windowMs/);
    const withWindow = new StockLedger({ store: new MemoryStore(), retention: { windowMs: 1000 } });
    expect(await withWindow.compact()).toMatchObject({ steps: 1, entries: 0 });
  });

  it('a store without compact, compactedThrough or levels: compact and levels say so, entries read from 0', async () => {
    const full = new MemoryStore();
    const store: StockStore = {
      execute: (c) => full.execute(c), stocks: (s, n) => full.stocks(s, n), entries: (q) => full.entries(q), request: (id) => full.request(id),
      reservation: (id) => full.reservation(id), verifyChunk: (q) => full.verifyChunk(q), close: () => full.close(),
    };
    const ledger = new StockLedger({ store });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 1 });
    expect(await ledger.compact({ windowMs: 0 }).then(() => 'no error', codeOf)).toBe('INVALID_INPUT store');
    expect(await ledger.levels().then(() => 'no error', codeOf)).toBe('INVALID_INPUT store');
    expect((await ledger.entries()).entries.map((e) => e.seq)).toEqual([1]);
  });

  it('levels rejects a bad page, cursor or filter', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    for (const [query, field] of [[{ limit: 0 }, 'limit'], [{ limit: 1001 }, 'limit'], [{ after: '' }, 'after'], [{ availableAtMost: '1' }, 'availableAtMost'],
      [{ availableAtMost: 2 ** 53 }, 'availableAtMost'], ['q', 'query']] as const) {
      expect(await ledger.levels(query as never).then(() => 'no error', codeOf), JSON.stringify(query)).toBe(`INVALID_INPUT ${field}`);
    }
  });
});
