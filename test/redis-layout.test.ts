/**
 * The Redis store's key layout and its version (layout.lua). Layout 2 gave each SKU its own
 * entry index (`by-sku:<sku>`); layout 1 kept all of them in one sorted set under `by-sku`.
 * Layout 3 keeps a deduct's outcome once: its request record names its entries instead of
 * holding the outcome JSON. A store brings a layout 1 ledger to layout 3 before its first call,
 * in bounded steps, and a layout 2 one by its stamp, and the ledger reads as it did (deduct
 * records holding their outcome JSON replay, reverse and read as before); a ledger stamped with
 * a layout it does not know is refused untouched; a read of a new ledger writes nothing.
 */
import { type Redis } from 'ioredis';
import { StockLedger, type FeedEntry } from 'stock-ledger';
import { RedisStore, layoutKey, ledgerKeys } from 'stock-ledger/redis';
import { readAllEntries } from 'stock-ledger/testing';
import { expect, it } from 'vitest';
import { LUA_SOURCES } from '../adapters/redis/redis-lua.generated.js';
import { codeOf } from './support/codes.js';
import { describeRedis, ledgerKeysThere, redisSuiteHooks } from './support/redis-server.js';

let client: Redis;
let ledgers = 0;
const freshPrefix = (): string => `layout-${process.pid}-${(ledgers += 1)}`;
const ledgerOn = (prefix: string, functions = true): StockLedger =>
  new StockLedger({ store: new RedisStore({ client, prefix, functions }), retry: false });

const SKUS = ['A', 'b\u0000c', '{x}:y', 'pear 🍐'];

/** layout 1's member for a SKU's entry: the SKU with NUL written as NUL 0xFF, a NUL, the seq in 16 digits. */
function layout1Member(sku: Buffer, seq: string): Buffer {
  const parts: Buffer[] = [];
  for (const byte of sku) parts.push(byte === 0 ? Buffer.from([0, 0xff]) : Buffer.from([byte]));
  return Buffer.concat([...parts, Buffer.from([0]), Buffer.from(seq.padStart(16, '0'))]);
}

/** Rewrites a layout 2 ledger as layout 1 had it: one index set under by-sku, no layout key. */
async function toLayout1(prefix: string): Promise<number> {
  const base = Buffer.from(`${ledgerKeys(prefix)[3] as string}:`);
  let moved = 0;
  for (const key of await ledgerKeysThere(client, prefix)) {
    if (!key.subarray(0, base.length).equals(base)) continue;
    const sku = key.subarray(base.length);
    for (const seq of await client.zrange(key, 0, -1)) {
      await client.zadd(ledgerKeys(prefix)[3] as string, 0, layout1Member(sku, seq));
      moved += 1;
    }
    await client.del(key);
  }
  await client.del(layoutKey(prefix));
  return moved;
}

/** A history over SKUS: restocks, many deducts (batched), a reservation committed and one released. */
async function history(ledger: StockLedger, deducts: number): Promise<void> {
  for (const sku of SKUS) await ledger.restockOrThrow({ requestId: `po-${sku}`, sku, qty: 10_000 });
  for (let from = 0; from < deducts; from += 100) {
    await Promise.all(Array.from({ length: Math.min(100, deducts - from) }, (_, i) =>
      ledger.deductOrThrow({ requestId: `o-${from + i}`, sku: SKUS[(from + i) % SKUS.length] as string, qty: 1 })));
  }
  await ledger.reserveOrThrow({ requestId: 'cart-1', lines: SKUS.map((sku) => ({ sku, qty: 2 })), ttlMs: 3_600_000 });
  await ledger.commitOrThrow({ reservationId: 'cart-1' });
  await ledger.reserveOrThrow({ requestId: 'cart-2', lines: [{ sku: 'A', qty: 1 }], ttlMs: 3_600_000 });
  await ledger.releaseOrThrow({ reservationId: 'cart-2' });
}

/** Each SKU's entries, read through the per-SKU index, a page of 1000 at a time. */
async function entriesBySku(ledger: StockLedger): Promise<Map<string, FeedEntry[]>> {
  const out = new Map<string, FeedEntry[]>();
  for (const sku of SKUS) {
    const all: FeedEntry[] = [];
    let after = 0;
    for (let page = 0; page < 100; page += 1) {
      const { entries } = await ledger.entries({ sku, after, limit: 1000 });
      all.push(...entries);
      if (entries.length < 1000) break;
      after = entries[entries.length - 1]?.seq ?? after;
    }
    out.set(sku, all);
  }
  return out;
}

describeRedis('Redis store: key layout and its version', () => {
  redisSuiteHooks((_server, connected) => {
    client = connected;
  });

  for (const functions of [true, false]) {
    it(`a layout 1 ledger is moved to layout 3 in steps before the first call, and reads as it did (${functions ? 'FCALL' : 'EVALSHA'})`, async () => {
      const prefix = freshPrefix();
      const first = ledgerOn(prefix, functions);
      await history(first, 2_600);
      const bySku = await entriesBySku(first);
      const feed = await readAllEntries(first);
      const levels = await first.stocks(SKUS);
      expect(await client.get(layoutKey(prefix)), 'not stamped: its store checked while it had no entry').toBeNull();
      for (const sku of SKUS) expect(bySku.get(sku)?.length).toBeGreaterThan(600);

      // More than two steps' worth (1000 members a step), SKUs with NUL, braces and emoji.
      const moved = await toLayout1(prefix);
      expect(moved).toBe(feed.length);
      expect(await client.zcard(ledgerKeys(prefix)[3] as string)).toBe(feed.length);

      const second = ledgerOn(prefix, functions);
      expect(await second.stocks(SKUS)).toEqual(levels);
      expect(await client.get(layoutKey(prefix))).toBe('3');
      expect(await client.exists(ledgerKeys(prefix)[3] as string), 'layout 1 index gone').toBe(0);
      expect(await entriesBySku(second)).toEqual(bySku);
      expect(await readAllEntries(second)).toEqual(feed);
      const report = await second.verify();
      expect(report.drift).toEqual([]);
      expect(report.ok).toBe(true);
      // And it goes on as layout 3.
      await second.deductOrThrow({ requestId: 'after', sku: 'b\u0000c', qty: 1 });
      expect((await second.entries({ sku: 'b\u0000c', after: feed.length })).entries).toMatchObject([{ requestId: 'after' }]);
    });
  }

  it('a ledger in a layout this version does not know is refused, and nothing is touched', async () => {
    const prefix = freshPrefix();
    await history(ledgerOn(prefix), 10);
    await client.set(layoutKey(prefix), '4');
    const before = await Promise.all((await ledgerKeysThere(client, prefix)).map(async (key) => [key.toString('hex'), (await client.dumpBuffer(key))?.toString('hex')]));
    const newer = ledgerOn(prefix);
    for (const call of [() => newer.stock('A'), () => newer.deduct({ requestId: 'n', sku: 'A', qty: 1 }), () => newer.verify()]) {
      const error = await call().then(() => null, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'INVARIANT_VIOLATION' });
      expect(String((error as Error).message)).toMatch(/layout 4, written by a newer version of stock-ledger; this version reads layout 3 /);
    }
    const after = await Promise.all((await ledgerKeysThere(client, prefix)).map(async (key) => [key.toString('hex'), (await client.dumpBuffer(key))?.toString('hex')]));
    expect(after).toEqual(before);
  });

  it('reads of a new ledger write nothing; its first write and the next store stamp it', async () => {
    const prefix = freshPrefix();
    const ledger = ledgerOn(prefix);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 0, version: 0 });
    expect((await ledger.entries({})).entries).toEqual([]);
    expect(await ledgerKeysThere(client, prefix)).toEqual([]);
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 1 });
    expect(await client.get(layoutKey(prefix)), 'the store checked before the ledger had entries').toBeNull();
    await ledgerOn(prefix).stock('A');
    expect(await client.get(layoutKey(prefix))).toBe('3');
  });

  it('something else than a layout 1 index under by-sku is INVARIANT_VIOLATION', async () => {
    const prefix = freshPrefix();
    await ledgerOn(prefix).restockOrThrow({ requestId: 'r', sku: 'A', qty: 1 });
    await client.del(layoutKey(prefix));
    await client.set(ledgerKeys(prefix)[3] as string, 'not an index');
    expect(await codeOf(() => ledgerOn(prefix).stock('A'))).toBe('INVARIANT_VIOLATION');
  });

  it('a layout 2 ledger (deduct records holding their outcome JSON) is stamped 3 and replays, reverses and reads as it did', async () => {
    const prefix = freshPrefix();
    const first = ledgerOn(prefix);
    await first.restockOrThrow({ requestId: 'po', lines: SKUS.map((sku) => ({ sku, qty: 50 })) });
    const meta = { order: 'o/1', note: 'pear 🍐 "quoted"' };
    const deducted = await first.deductOrThrow({ requestId: 'd-1', lines: SKUS.map((sku) => ({ sku, qty: 2 })), meta });
    const single = await first.deductOrThrow({ requestId: 'd-2', sku: 'A', qty: 1 });
    const requests = ledgerKeys(prefix)[5] as string;
    const compact = await client.hget(requests, 'd-1');
    // Kept once: after kind, at and fingerprint, "~", the first seq, and each SKU's level after it.
    expect(compact).toMatch(new RegExp(`^deduct\\n\\d+\\n[^\\n]+\\n~\\d+(\\n48,0,2){${SKUS.length}}$`));
    // Rewrite the deduct records as layout 2 wrote them: kind, at, fingerprint, the outcome JSON.
    for (const [id, outcome] of [['d-1', deducted], ['d-2', single]] as const) {
      const [kind, at, fingerprint] = (await client.hget(requests, id))?.split('\n') ?? [];
      await client.hset(requests, id, `${kind}\n${at}\n${fingerprint}\n${JSON.stringify({ ...outcome, replayed: false })}`);
    }
    await client.set(layoutKey(prefix), '2');

    const second = ledgerOn(prefix);
    expect(await second.deductOrThrow({ requestId: 'd-1', lines: SKUS.map((sku) => ({ sku, qty: 2 })), meta })).toEqual({ ...deducted, replayed: true });
    expect(await client.get(layoutKey(prefix))).toBe('3');
    expect(await second.request('d-2')).toMatchObject({ ...single, replayed: true, requestId: 'd-2', kind: 'deduct' });
    const reversed = await second.reverseOrThrow({ requestId: 'rv-1', of: 'd-1' });
    expect(reversed.entries.map((e) => [e.sku, e.onHandDelta])).toEqual(SKUS.map((sku) => [sku, 2]).sort());
    // New deducts are kept once again, and replay the outcome they answered.
    const later = await second.deductOrThrow({ requestId: 'd-3', lines: [{ sku: 'pear 🍐', qty: 1 }, { sku: '{x}:y', qty: 3 }], meta });
    expect(await client.hget(requests, 'd-3')).toMatch(/^deduct\n\d+\n[^\n]+\n~\d+\n49,0,4\n47,0,4$/);
    expect(await second.deductOrThrow({ requestId: 'd-3', lines: [{ sku: 'pear 🍐', qty: 1 }, { sku: '{x}:y', qty: 3 }], meta })).toEqual({ ...later, replayed: true });
    expect(await second.request('d-3')).toMatchObject({ ...later, replayed: true, requestId: 'd-3', kind: 'deduct' });
    expect((await second.verify()).ok).toBe(true);
  });

  it('every script call names one key, the ledger\'s levels, and the scripts derive the rest from it', async () => {
    const prefix = freshPrefix();
    const seen: string[][] = [];
    const monitor = await client.duplicate().monitor();
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^(fcall|evalsha|eval)$/i.test(args[0] ?? '') && String(args[3]).includes(`{${prefix}}`)) seen.push(args.slice(0, 4));
    });
    let round = 0;
    for (const functions of [true, false]) {
      for (const batch of [true, false]) {
        const ledger = new StockLedger({ store: new RedisStore({ client, prefix, functions, batch }), retry: false });
        await ledger.restockOrThrow({ requestId: `r-${functions}-${batch}`, sku: 'A', qty: 5 });
        await Promise.all([1, 2, 3].map((n) => ledger.deductOrThrow({ requestId: `d-${functions}-${batch}-${n}`, sku: 'A', qty: 1 })));
        expect(await ledger.stock('A')).toMatchObject({ onHand: 5 * round + 2 });
        round += 1;
        await ledger.restockOrThrow({ requestId: `back-${functions}-${batch}`, sku: 'A', qty: 3 });
      }
    }
    await client.ping();
    monitor.disconnect();
    expect(seen.length).toBeGreaterThan(8);
    for (const call of seen) expect([call[2], call[3]]).toEqual(['1', ledgerKeys(prefix)[0]]);
    // What the scripts wrote landed under the derived names, the ledger's tag and a fixed name.
    const names = (await ledgerKeysThere(client, prefix)).map((key) => key.toString().slice(`stock-ledger:{${prefix}}:`.length));
    expect(names).toEqual(expect.arrayContaining(['levels', 'seq', 'entries', 'requests', 'by-sku:A', 'layout']));
    // A first key that is not a levels key is refused before anything is read or written.
    const body = LUA_SOURCES.levels.replaceAll('__QUANTITY_MAX__', '1').replaceAll('__EXPIRIES_PER_SKU_MAX__', '1');
    await expect(client.eval(body, 1, `stock-ledger:{${prefix}}:seq`, '', '10')).rejects.toThrow(/not a ledger's levels key/);
  });
});
