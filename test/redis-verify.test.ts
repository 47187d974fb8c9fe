/**
 * verify() on the Redis store checks every invariant, not only the fold: drift is forced by hand
 * with plain Redis commands on the store's own keys (a level, a hold, a record, an entry), and
 * the report must name the broken invariant with both sides. A clean ledger under concurrent
 * writes reports ok, and the walk stays bounded: chunks of SKUs, pages of entries, and no
 * chunk past the holds budget.
 */
import { type Redis } from 'ioredis';
import { StockLedger, type Drift, type Invariant } from 'stock-ledger';
import { RedisStore, ledgerKeys } from 'stock-ledger/redis';
import { expect, it } from 'vitest';
import { describeRedis, redisSuiteHooks } from './support/redis-server.js';
import { seededRandom } from '../testing/random.js';

let client: Redis;
let ledgers = 0;

const KEY = {
  levels: 0, seq: 1, entries: 2, bySku: 3, skus: 4, requests: 5, reversed: 6, reservations: 7, holdsBySku: 8, holdsDue: 9,
} as const;

interface Fixture {
  ledger: StockLedger;
  key: (name: keyof typeof KEY) => string;
}

function fixture(): Fixture & { store: RedisStore } {
  const prefix = `verify-${process.pid}-${(ledgers += 1)}`;
  const keys = ledgerKeys(prefix);
  const store = new RedisStore({ client, prefix });
  return {
    store,
    ledger: new StockLedger({ store, retry: false }),
    key: (name) => keys[KEY[name]] as string,
  };
}

/** A SKU A with 10 on hand and a held reservation `cart` of 2 of A and 1 of B. */
async function withCart(): Promise<Fixture> {
  const f = fixture();
  await f.ledger.restockOrThrow({ requestId: 'pa', sku: 'A', qty: 10 });
  await f.ledger.restockOrThrow({ requestId: 'pb', sku: 'B', qty: 10 });
  await f.ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 600_000 });
  expect((await f.ledger.verify()).ok).toBe(true);
  return f;
}

/** The drift items of one invariant. */
async function driftOf(ledger: StockLedger, invariant: Invariant): Promise<Drift[]> {
  const report = await ledger.verify();
  expect(report.ok).toBe(false);
  return report.drift.filter((d) => d.invariant === invariant);
}

/** The hold-index member of (sku, reservation) as the store wrote it. */
async function holdMember(f: Fixture, sku: string): Promise<string> {
  const members = await client.zrange(f.key('holdsBySku'), 0, -1);
  const found = members.find((m) => m.startsWith(`${sku}\u0000`));
  if (found === undefined) throw new Error(`no hold of ${sku}`);
  return found;
}

/** Rewrites the reservation record of `id` through `change`. */
async function changeRecord(f: Fixture, id: string, change: (r: Record<string, unknown>) => void): Promise<void> {
  const record = JSON.parse((await client.hget(f.key('reservations'), id)) ?? 'null') as Record<string, unknown>;
  change(record);
  await client.hset(f.key('reservations'), id, JSON.stringify(record));
}

describeRedis('Redis store: verify checks every invariant', () => {
  redisSuiteHooks((_server, connected) => {
    client = connected;
  });

  it('a negative reserved: reservedNonNegative (and the fold and the holds sum), with both sides', async () => {
    const f = await withCart();
    await client.hset(f.key('levels'), 'A', '10,-1,2');
    const report = await f.ledger.verify();
    const forA = report.drift.filter((d) => d.sku === 'A');
    expect(forA.find((d) => d.invariant === 'reservedNonNegative')).toMatchObject({ expected: 0, actual: -1 });
    expect(forA.find((d) => d.invariant === 'fold')).toMatchObject({
      expected: { onHand: 10, reserved: 2, version: 2 }, actual: { onHand: 10, reserved: -1, version: 2 },
    });
    expect(forA.find((d) => d.invariant === 'holdsSum')).toMatchObject({ expected: -1, actual: 2 });
    expect(report.drift.filter((d) => d.sku !== 'A')).toEqual([]);
  });

  it('reserved above on hand: reservedWithinOnHand', async () => {
    const f = await withCart();
    await client.hset(f.key('levels'), 'A', '1,2,2');
    expect(await driftOf(f.ledger, 'reservedWithinOnHand')).toMatchObject([{ sku: 'A', expected: 1, actual: 2 }]);
  });

  it('a hold deleted from the hold index: holdsSum and holdEntries', async () => {
    const f = await withCart();
    await client.zrem(f.key('holdsBySku'), await holdMember(f, 'A'));
    expect(await driftOf(f.ledger, 'holdsSum')).toMatchObject([{ sku: 'A', expected: 2, actual: 0 }]);
    expect(await driftOf(f.ledger, 'holdEntries')).toMatchObject([
      { sku: 'A', expected: { reservationId: 'cart', qty: 2 }, actual: { reservationId: 'cart', qty: 0 } },
    ]);
  });

  it('a record that disagrees with its hold: holdRecord, for its lines, its state, its list and its absence', async () => {
    const f = await withCart();
    await changeRecord(f, 'cart', (r) => {
      r.lines = [{ sku: 'A', qty: 3 }, { sku: 'B', qty: 1 }];
    });
    expect(await driftOf(f.ledger, 'holdRecord')).toMatchObject([
      { sku: 'A', expected: { reservationId: 'cart', qty: 2, listed: true, state: 'held' }, actual: { reservationId: 'cart', qty: 3, listed: true, state: 'held' } },
    ]);

    const g = await withCart();
    await changeRecord(g, 'cart', (r) => {
      r.state = 'released';
      r.holds = ['A'];
    });
    const drift = await driftOf(g.ledger, 'holdRecord');
    expect(drift.find((d) => d.sku === 'A')).toMatchObject({ actual: { state: 'released', listed: true } });
    expect(drift.find((d) => d.sku === 'B')).toMatchObject({ actual: { state: 'released', listed: false } });

    const h = await withCart();
    await client.hdel(h.key('reservations'), 'cart');
    expect((await driftOf(h.ledger, 'holdRecord')).map((d) => [d.sku, d.actual])).toEqual([
      ['A', { reservationId: 'cart', record: null }], ['B', { reservationId: 'cart', record: null }],
    ]);
  });

  it('a level that is not its entries: fold; an entry written twice: appliedOnce', async () => {
    const f = await withCart();
    await client.hset(f.key('levels'), 'B', '11,1,2');
    expect(await driftOf(f.ledger, 'fold')).toMatchObject([
      { sku: 'B', expected: { onHand: 10, reserved: 1, version: 2 }, actual: { onHand: 11, reserved: 1, version: 2 } },
    ]);

    const g = await withCart();
    // The restock of A planted again under a new seq, as a double application would leave it.
    const [entry] = (await g.ledger.entries({ sku: 'A', limit: 1 })).entries;
    expect(entry).toMatchObject({ requestId: 'pa', kind: 'restock' });
    const seq = await client.incr(g.key('seq'));
    await client.hset(g.key('entries'), String(seq), JSON.stringify({ ...entry, seq }));
    await client.zadd(`${g.key('bySku')}:A`, seq, String(seq));
    await client.hset(g.key('levels'), 'A', '20,2,3');
    expect(await driftOf(g.ledger, 'appliedOnce')).toMatchObject([
      { sku: 'A', expected: { requestId: 'pa', kind: 'restock', entries: 1 }, actual: { requestId: 'pa', kind: 'restock', entries: 2 } },
    ]);
  });

  it('many SKUs, one SKU with many entries, many holds: every SKU checked, in bounded chunks and pages, ok', async () => {
    const f = fixture();
    const skus = Array.from({ length: 450 }, (_, i) => `sku-${i}`);
    await Promise.all(skus.map((sku, i) => f.ledger.restockOrThrow({ requestId: `p-${i}`, sku, qty: 1_000 })));
    // 2,500 entries on one SKU: three pages of the fold.
    await Promise.all(Array.from({ length: 2_500 }, (_, i) => f.ledger.restockOrThrow({ requestId: `hot-${i}`, sku: 'sku-0', qty: 1 })));
    // 2,500 holds on five SKUs next to each other in the walk: past the holds budget of one chunk.
    await Promise.all(Array.from({ length: 2_500 }, (_, i) =>
      f.ledger.reserveOrThrow({ requestId: `cart-${i}`, lines: [{ sku: `sku-${100 + (i % 5)}`, qty: 1 }], ttlMs: 600_000 })));
    const report = await f.ledger.verify();
    expect(report.drift).toEqual([]);
    expect(report).toMatchObject({ ok: true, skusChecked: skus.length });
    // The first chunk stops at the SKU whose holds reach the budget (2,000), short of 200 SKUs.
    const first = await f.store.verifyChunk({ cursor: null, limit: 200 });
    expect(first.items.map((item) => item.sku)).toEqual(['sku-0', 'sku-1', 'sku-10', 'sku-100', 'sku-101', 'sku-102', 'sku-103']);
    expect(first.items.reduce((sum, item) => sum + item.holds.length, 0)).toBe(2_000);
    expect(first.cursor).toBe(first.items[first.items.length - 1]?.sku);
    expect(first.items.find((item) => item.sku === 'sku-0')).toMatchObject({ folded: { onHand: 3_500, version: 2_501 } });
  });

  it('a clean ledger under concurrent writes: every verify() is ok', async () => {
    const seed = Number(process.env.VERIFY_SEED ?? Date.now() % 2 ** 31);
    console.log(`redis-verify concurrent writes: seed ${seed} (VERIFY_SEED=${seed} to replay)`);
    const random = seededRandom(seed);
    const f = fixture();
    const skus = ['A', 'B', 'C', 'a\u0000', '😀'];
    for (const [i, sku] of skus.entries()) await f.ledger.restockOrThrow({ requestId: `p-${i}`, sku, qty: 500 });
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
    const op = (i: number): Promise<unknown> => {
      const sku = pick(skus);
      const r = random();
      if (r < 0.3) return f.ledger.reserve({ requestId: `cart-${i}`, lines: [{ sku, qty: 1 + Math.floor(random() * 3) }, { sku: pick(skus), qty: 1 }], ttlMs: 1 + Math.floor(random() * 50) });
      if (r < 0.45) return f.ledger.commit({ reservationId: `cart-${Math.floor(random() * i)}` });
      if (r < 0.55) return f.ledger.release({ reservationId: `cart-${Math.floor(random() * i)}` });
      if (r < 0.75) return f.ledger.deduct({ requestId: `d-${i}`, sku, qty: 1 + Math.floor(random() * 4) });
      if (r < 0.9) return f.ledger.restock({ requestId: `r-${i}`, sku, qty: 1 + Math.floor(random() * 4) });
      return f.ledger.sweepExpired({ limit: 10 });
    };
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = w; i < 1_200 && !stop; i += 4) await op(i);
    });
    const reports = [];
    const entriesBefore = (await f.ledger.entries({ limit: 1000 })).entries.length;
    for (let k = 0; k < 15; k += 1) reports.push(await f.ledger.verify());
    const written = (await f.ledger.entries({ after: 0, limit: 1000 })).entries.length - entriesBefore;
    stop = true;
    await Promise.all(writers);
    reports.push(await f.ledger.verify());
    for (const report of reports) expect(report.drift, `seed ${seed}`).toEqual([]);
    expect(written, 'entries were written while verify() ran').toBeGreaterThan(0);
  });
});
