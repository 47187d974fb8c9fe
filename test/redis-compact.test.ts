/**
 * Retention on the Redis store: compact() removes what is older than the window and keeps what
 * is inside it, checked on the store's own keys with plain Redis commands; verify() stays exact
 * through each SKU's checkpoint and reports a tampered one; the feed tells a reader below the
 * horizon; levels() pages over every SKU; closed ids are found by the pass over the request
 * records (ledgers of the earlier layout included); compaction runs while several connections
 * write; and Redis memory stays flat over a long run with compaction on, while it grows
 * without it.
 */
import { Redis } from 'ioredis';
import { FeedCompactedError, StockLedger, isStockLedgerError, type Level } from 'stock-ledger';
import { RedisStore, ledgerKeys, retentionKeys, type IoredisLike } from 'stock-ledger/redis';
import { expect, it } from 'vitest';
import { SCRIPT_SHAS } from '../adapters/redis/redis-scripts.js';
import { describeRedis, infoField, redisSuiteHooks, startRedis } from './support/redis-server.js';
import { seededRandom } from '../testing/random.js';

const T0 = 1_700_000_000_000;
const WINDOW_MS = 60_000;

let client: Redis;
let ledgers = 0;

/** Indexes in `ledgerKeys()` ++ `retentionKeys()` (lib.lua's header). */
const KEY = {
  entries: 2, bySku: 3, requests: 5, reversed: 6, reservations: 7, checkpoints: 12, checkpointsBySku: 13, horizon: 14, closedScan: 15,
} as const;

interface Fixture {
  ledger: StockLedger;
  store: RedisStore;
  prefix: string;
  clock: { now: number };
  key: (name: keyof typeof KEY) => string;
}

/** A ledger under a fresh prefix on a clock the test moves, with a window of {@link WINDOW_MS}. */
function fixture(on: Redis = client, name = 'compact'): Fixture {
  const prefix = `${name}-${process.pid}-${(ledgers += 1)}`;
  const keys = [...ledgerKeys(prefix), ...retentionKeys(prefix)];
  const clock = { now: T0 };
  const store = new RedisStore({ client: on, prefix });
  const ledger = new StockLedger({ store, clock: () => clock.now, retry: false, retention: { windowMs: WINDOW_MS } });
  return { ledger, store, prefix, clock, key: (k) => keys[KEY[k]] as string };
}

/** enc() of lib.lua: NUL escaped as NUL 0xFF, then a NUL ends the string. */
function enc(s: string): Buffer {
  const out: number[] = [];
  for (const b of Buffer.from(s, 'utf8')) out.push(...(b === 0 ? [0, 0xff] : [b]));
  return Buffer.from([...out, 0]);
}

/** The field of a checkpoint part (checkpoint.lua): enc(sku), a tag byte, then the name. */
const cpField = (sku: string, tag: 'c' | 'h' | 'b', name = ''): Buffer => Buffer.concat([enc(sku), Buffer.from(tag + name, 'utf8')]);

/** A call's outcome code: "applied", "replayed", a rejection code or a thrown error code. */
async function codeOf(call: () => Promise<{ ok: boolean }>): Promise<string> {
  try {
    const r = (await call()) as { ok: boolean; replayed?: boolean; code?: string };
    if (!r.ok) return r.code ?? 'rejected';
    return r.replayed === true ? 'replayed' : 'applied';
  } catch (error) {
    if (isStockLedgerError(error)) return error.code;
    throw error;
  }
}

async function verifyOk(ledger: StockLedger): Promise<void> {
  const report = await ledger.verify();
  expect(report.drift).toEqual([]);
  expect(report.ok).toBe(true);
}

/**
 * Old history (restock, deduct, a partial reverse, a committed reservation, a buyer), then a
 * reservation held for an hour that pins, a deduct after it, and one request inside the window.
 */
async function history(f: Fixture): Promise<{ pinSeq: number; inside: unknown }> {
  const { ledger, clock } = f;
  await ledger.restockOrThrow({ requestId: 'po-1', lines: [{ sku: 'A', qty: 100 }, { sku: 'B', qty: 10 }] });
  await ledger.deductOrThrow({ requestId: 'o-1', sku: 'A', qty: 5, buyer: 'ann' });
  await ledger.reverseOrThrow({ requestId: 'rv-1', of: 'o-1', lines: [{ sku: 'A', qty: 1 }] });
  await ledger.reserveOrThrow({ requestId: 'r-done', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 1_000, buyer: 'ann' });
  await ledger.commitOrThrow({ reservationId: 'r-done' });
  await ledger.reverseOrThrow({ requestId: 'rv-2', of: 'r-done', lines: [{ sku: 'B', qty: 1 }] });
  await ledger.revokeOrThrow({ requestId: 'x-old' });
  const pin = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 3_600_000 });
  await ledger.deductOrThrow({ requestId: 'o-after-pin', sku: 'B', qty: 1 });
  clock.now += 2 * WINDOW_MS;
  const inside = await ledger.deductOrThrow({ requestId: 'n-1', sku: 'A', qty: 1 });
  return { pinSeq: pin.entries[0]?.seq as number, inside };
}

describeRedis('Redis store: compaction, checkpoints, the feed horizon and levels', () => {
  redisSuiteHooks((_server, connected) => {
    client = connected;
  });

  it('removes records, entries and finished reservations older than the window; a held reservation pins and still commits', async () => {
    const f = fixture();
    const { pinSeq, inside } = await history(f);
    const levels = await f.ledger.stocks(['A', 'B']);
    const report = await f.ledger.compact();
    expect(report).toMatchObject({ compactedThrough: pinSeq - 1, entries: pinSeq - 1, reservations: 1, before: f.clock.now - WINDOW_MS });
    // On the store's own keys: the entries and their index members are gone, up to the horizon.
    expect(await client.get(f.key('horizon'))).toBe(String(pinSeq - 1));
    expect((await client.hkeys(f.key('entries'))).map(Number).sort((x, y) => x - y)).toEqual([pinSeq, pinSeq + 1, pinSeq + 2]);
    // Each SKU's entry index (layout 2: by-sku, a colon, the SKU) keeps only its kept entries' seqs.
    expect(await client.zrange(`${f.key('bySku')}:A`, 0, -1)).toEqual([String(pinSeq), String(pinSeq + 2)]);
    expect(await client.zrange(`${f.key('bySku')}:B`, 0, -1)).toEqual([String(pinSeq + 1)]);
    expect((await client.hkeys(f.key('requests'))).sort()).toEqual(['cart', 'n-1', 'o-after-pin']);
    expect(await client.hkeys(f.key('reservations'))).toEqual(['cart']);
    expect(await client.hlen(f.key('reversed')), 'reversal tallies of removed requests and reservations').toBe(0);
    expect(await f.ledger.stocks(['A', 'B'])).toEqual(levels);
    // Inside the window: a replay. Older: a new request, a reverse of it REQUEST_NOT_FOUND.
    expect(await f.ledger.deduct({ requestId: 'n-1', sku: 'A', qty: 1 })).toEqual({ ...(inside as object), replayed: true });
    expect(await codeOf(() => f.ledger.reverse({ requestId: 'rv-3', of: 'o-1' }))).toBe('REQUEST_NOT_FOUND');
    expect(await codeOf(() => f.ledger.commit({ reservationId: 'r-done' }))).toBe('RESERVATION_NOT_FOUND');
    expect(await codeOf(() => f.ledger.deduct({ requestId: 'o-1', sku: 'A', qty: 5, buyer: 'ann' }))).toBe('applied');
    expect(await codeOf(() => f.ledger.deduct({ requestId: 'x-old', sku: 'A', qty: 1 })), 'a closed id older than the window is free again').toBe('applied');
    await verifyOk(f.ledger);
    // The pin holds until its reservation ends; then a later compaction takes everything.
    expect(await codeOf(() => f.ledger.commit({ reservationId: 'cart' }))).toBe('applied');
    f.clock.now += 2 * WINDOW_MS;
    const second = await f.ledger.compact();
    expect(second.compactedThrough).toBe(Number(await client.get(f.key('horizon'))));
    expect(await client.hlen(f.key('entries'))).toBe(0);
    expect(await client.hlen(f.key('requests'))).toBe(0);
    expect(await client.hlen(f.key('reservations'))).toBe(0);
    expect(await f.ledger.reservation('cart')).toBeNull();
    await verifyOk(f.ledger);
    // Seq and versions go on after the compacted part: A's version is all in its checkpoint.
    const checkpointA = (await client.hgetBuffer(f.key('checkpoints'), cpField('A', 'c')))?.toString() ?? '';
    const next = await f.ledger.restockOrThrow({ requestId: 'po-2', sku: 'A', qty: 1 });
    expect(next.entries[0]?.seq).toBe(second.compactedThrough + 1);
    expect(next.levels[0]?.version).toBe(Number(checkpointA.split(',')[2]) + 1);
    await verifyOk(f.ledger);
  });

  it('verify() is ok after compaction and reports a tampered checkpoint (counters, holds, buyers) as drift, a SKU with only a checkpoint too', async () => {
    const f = fixture();
    await history(f);
    await f.ledger.compact();
    await verifyOk(f.ledger);
    const checkpoints = f.key('checkpoints');
    const counters = cpField('A', 'c');
    const stored = (await client.hgetBuffer(checkpoints, counters))?.toString() ?? '';
    const [onHand, reserved, version] = stored.split(',').map(Number) as [number, number, number];
    await client.hset(checkpoints, counters, `${onHand + 1},${reserved},${version}`);
    let report = await f.ledger.verify();
    expect(report.drift.filter((d) => d.sku === 'A').map((d) => d.invariant)).toContain('fold');
    await client.hset(checkpoints, counters, stored);
    await verifyOk(f.ledger);
    // A checkpoint part: a hold of a reservation that holds nothing, a buyer that took nothing.
    await client.hset(checkpoints, cpField('A', 'h', 'ghost'), '2');
    await client.zadd(f.key('checkpointsBySku'), 0, cpField('A', 'h', 'ghost'));
    await client.hset(checkpoints, cpField('A', 'b', 'bob'), '7');
    await client.zadd(f.key('checkpointsBySku'), 0, cpField('A', 'b', 'bob'));
    report = await f.ledger.verify();
    expect(report.drift.map((d) => [d.sku, d.invariant])).toEqual(expect.arrayContaining([['A', 'holdEntries'], ['A', 'buyerTotals']]));
    await client.hdel(checkpoints, cpField('A', 'h', 'ghost'), cpField('A', 'b', 'bob'));
    await client.zrem(f.key('checkpointsBySku'), cpField('A', 'h', 'ghost'), cpField('A', 'b', 'bob'));
    await verifyOk(f.ledger);
    // B keeps one entry (o-after-pin); C has only its checkpoint once everything is compacted.
    await f.ledger.restockOrThrow({ requestId: 'po-c', sku: 'C', qty: 4 });
    await f.ledger.commitOrThrow({ reservationId: 'cart' });
    f.clock.now += 2 * WINDOW_MS;
    await f.ledger.compact();
    expect(await f.ledger.entries({ sku: 'C' }).then((p) => p.entries)).toEqual([]);
    await verifyOk(f.ledger);
    await client.hset(checkpoints, cpField('C', 'c'), '5,0,1');
    report = await f.ledger.verify();
    expect(report.drift.filter((d) => d.sku === 'C' && d.invariant === 'fold')).toHaveLength(1);
  });

  it('verify() stays exact while compaction moves a SKU\'s entries into its checkpoint between the pages it folds', async () => {
    const f = fixture();
    await f.ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 5_000 });
    // More entries than one fold page (1000), so verify folds A in several script calls.
    for (let wave = 0; wave < 25; wave += 1) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => f.ledger.deductOrThrow({ requestId: `o-${wave}-${i}`, sku: 'A', qty: 1 })));
    }
    f.clock.now += 2 * WINDOW_MS;
    const before = f.clock.now - WINDOW_MS;
    // The real client, with a compaction step of 300 entries (another store on the same ledger)
    // run just before each of the first three fold pages the verifying store sends.
    const compactor = new RedisStore({ client, prefix: f.prefix });
    let steps = 0;
    const hooked: IoredisLike = {
      evalsha: async (sha, numKeys, ...rest) => {
        if (sha === SCRIPT_SHAS.verifyFold && steps < 3) {
          steps += 1;
          await compactor.compact({ before, limit: 300, now: f.clock.now });
        }
        return client.evalsha(sha, numKeys, ...rest);
      },
      eval: (body, numKeys, ...rest) => client.eval(body, numKeys, ...rest),
      call: (command, ...args) => client.call(command, ...args),
    };
    // EVALSHA, so the hook sees every fold page (a function call would go by `call`).
    const verifying = new StockLedger({ store: new RedisStore({ client: hooked, prefix: f.prefix, functions: false }), clock: () => f.clock.now, retry: false });
    const report = await verifying.verify();
    expect(steps).toBe(3);
    expect(report.drift).toEqual([]);
    expect(await f.store.compactedThrough()).toBe(900);
    await verifyOk(f.ledger);
  });

  it('the feed: a cursor below the horizon throws FeedCompactedError, none starts after it, per SKU too', async () => {
    const f = fixture();
    const { pinSeq } = await history(f);
    const { compactedThrough } = await f.ledger.compact();
    const thrown = await f.ledger.entries({ after: 0 }).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(FeedCompactedError);
    expect(thrown).toMatchObject({ code: 'FEED_COMPACTED', after: 0, compactedThrough });
    await expect(f.ledger.entries({ after: compactedThrough - 1, sku: 'A' })).rejects.toBeInstanceOf(FeedCompactedError);
    const page = await f.ledger.entries();
    expect(page.entries.map((e) => e.seq)).toEqual([pinSeq, pinSeq + 1, pinSeq + 2]);
    expect((await f.ledger.entries({ after: compactedThrough, limit: 1 })).entries.map((e) => e.seq)).toEqual([pinSeq]);
    expect((await f.ledger.entries({ sku: 'B' })).entries.map((e) => e.requestId)).toEqual(['o-after-pin']);
    expect(await f.store.compactedThrough()).toBe(compactedThrough);
    // A ledger never compacted: horizon 0, every cursor reads.
    const fresh = fixture();
    await fresh.ledger.restockOrThrow({ requestId: 'p', sku: 'A', qty: 1 });
    expect(await fresh.store.compactedThrough()).toBe(0);
    expect((await fresh.ledger.entries({ after: 0 })).entries).toHaveLength(1);
  });

  it('levels() pages over every SKU once in code point order, as stocks() reads it (due holds expired), availableAtMost keeps the low ones', async () => {
    const f = fixture();
    const skus = ['b', 'a', 'A', 'z\u0000x', 'é', '\u{1F600}', '\uFFFD', 'k-1', 'k-10', 'k-2', 'm'];
    await f.ledger.restockOrThrow({ requestId: 'po', lines: skus.map((sku, i) => ({ sku, qty: i + 1 })) });
    await f.ledger.reserveOrThrow({ requestId: 'short', lines: [{ sku: 'm', qty: 10 }], ttlMs: 1_000 });
    await f.ledger.reserveOrThrow({ requestId: 'long', lines: [{ sku: 'k-1', qty: 7 }], ttlMs: 3_600_000 });
    f.clock.now += 5_000; // the hold of `short` is due, not yet written as expired
    const byCodePoints = [...skus].sort((x, y) => (Buffer.compare(Buffer.from(x), Buffer.from(y))));
    const expected = await f.ledger.stocks(byCodePoints);
    for (const limit of [1, 3, 11, 100]) {
      const seen: Level[] = [];
      let page = await f.ledger.levels({ limit });
      for (let i = 0; i < 20; i += 1) {
        seen.push(...page.levels);
        if (page.next === null) break;
        page = await f.ledger.levels({ limit, after: page.next });
      }
      expect(page.next, `limit ${limit}: the walk ends`).toBeNull();
      expect(seen, `limit ${limit}`).toEqual(expected);
    }
    expect(expected.find((l) => l.sku === 'm')).toMatchObject({ onHand: 11, reserved: 0, available: 11 });
    const low: Level[] = [];
    let page = await f.ledger.levels({ limit: 4, availableAtMost: 3 });
    for (let i = 0; i < 10; i += 1) {
      low.push(...page.levels);
      if (page.next === null) break;
      page = await f.ledger.levels({ limit: 4, availableAtMost: 3, after: page.next });
    }
    expect(low).toEqual(expected.filter((l) => l.available <= 3));
    expect(low.map((l) => l.sku)).toContain('k-1'); // 8 on hand, 7 held for an hour
  });

  it('closed ids older than the window go, found by the pass over the request records in small steps; ledgers of the earlier layout compact as they are', async () => {
    const f = fixture();
    // Many request records, so `requests` is a real hash table and the pass takes several pages.
    for (let i = 0; i < 300; i += 1) await f.ledger.revokeOrThrow({ requestId: `x-${i}` });
    await f.ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 1_000 });
    for (let i = 0; i < 300; i += 1) await f.ledger.deductOrThrow({ requestId: `o-${i}`, sku: 'A', qty: 1 });
    // The earlier layout: no retention key exists until compaction writes one.
    expect(await client.exists(...retentionKeys(f.prefix))).toBe(0);
    f.clock.now += 2 * WINDOW_MS;
    for (let i = 0; i < 5; i += 1) await f.ledger.revokeOrThrow({ requestId: `y-${i}` }); // inside the window
    let steps = 0;
    let removed = 0;
    for (let more = true; more; steps += 1) {
      const step = await f.store.compact({ before: f.clock.now - WINDOW_MS, limit: 40, now: f.clock.now });
      expect(step.requests).toBeLessThanOrEqual(2 * 40);
      removed += step.requests;
      more = step.more;
      expect(steps).toBeLessThan(100);
    }
    expect(steps).toBeGreaterThan(2);
    expect(removed).toBe(300 + 1 + 300);
    expect((await client.hkeys(f.key('requests'))).sort()).toEqual(['y-0', 'y-1', 'y-2', 'y-3', 'y-4']);
    expect(await codeOf(() => f.ledger.deduct({ requestId: 'y-0', sku: 'A', qty: 1 }))).toBe('REQUEST_REVOKED');
    expect(await codeOf(() => f.ledger.deduct({ requestId: 'x-0', sku: 'A', qty: 1 }))).toBe('applied');
    expect(await f.ledger.stock('A')).toMatchObject({ onHand: 699 });
    await verifyOk(f.ledger);
    // A pass ran at this `now`: the next starts once that is older than the window.
    f.clock.now += WINDOW_MS / 2;
    expect(await f.store.compact({ before: f.clock.now - WINDOW_MS, limit: 40, now: f.clock.now })).toMatchObject({ requests: 0, more: false });
    f.clock.now += 2 * WINDOW_MS;
    await f.ledger.compact();
    expect(await client.hkeys(f.key('requests'))).toEqual([]);
  });

  it('under concurrent writes on several connections, with the clock moving and compact() looping, nothing inside the window is lost and verify() is ok', async () => {
    const connections = Array.from({ length: 4 }, () => new Redis(`redis://${client.options.host}:${client.options.port}`));
    try {
      const first = fixture(connections[0]);
      const writers = connections.map((c) => new StockLedger({ store: new RedisStore({ client: c, prefix: first.prefix }), clock: () => first.clock.now, retry: false }));
      await concurrentRun(first, writers, seededRandom(20_260_101));
    } finally {
      for (const c of connections) c.disconnect();
    }
  }, 60_000);

  it('Redis memory stays flat over a long run with compaction on, and grows without it', async () => {
    // A server of its own: used_memory then counts this run and nothing else.
    const server = await startRedis();
    const own = new Redis(server.url);
    try {
      const usedMemory = async (): Promise<Memory> => {
        const info = await own.info('memory');
        const used = Number(infoField(info, 'used_memory'));
        return { used, stored: used - Number(infoField(info, 'mem_clients_normal')) };
      };
      const on = fixture(own, 'flat');
      await rounds(on, WARM_UP_ROUNDS, true); // the window fills: steady state
      const before = await sampledMemory(on, true, usedMemory);
      await rounds(on, LONG_RUN_ROUNDS, true);
      const after = await sampledMemory(on, true, usedMemory);
      // What the window holds stays what a window of rounds writes.
      const kept = { entries: await own.hlen(on.key('entries')), requests: await own.hlen(on.key('requests')) };
      const off = fixture(own, 'grows');
      await rounds(off, WARM_UP_ROUNDS, false);
      const offBefore = await sampledMemory(off, false, usedMemory);
      await rounds(off, LONG_RUN_ROUNDS, false);
      const offAfter = await sampledMemory(off, false, usedMemory);
      const [flat, grown] = [after.stored - before.stored, offAfter.stored - offBefore.stored];
      console.info(`used_memory with compaction: ${before.used} -> ${after.used} over ${LONG_RUN_ROUNDS} rounds of ${OPS_PER_ROUND} operations ` +
        `(without client buffers ${flat} bytes, kept ${JSON.stringify(kept)}); without compaction: ${offBefore.used} -> ${offAfter.used} (${grown} bytes)`);
      expect(Math.abs(flat), 'growth with compaction').toBeLessThan(FLAT_BYTES_MAX);
      expect(grown, 'growth without compaction').toBeGreaterThan(64 * FLAT_BYTES_MAX);
      expect(kept.entries).toBeLessThan(3 * (ROUNDS_WINDOW_MS / ROUND_MS) * OPS_PER_ROUND);
      expect(kept.requests).toBeLessThan(3 * (ROUNDS_WINDOW_MS / ROUND_MS) * OPS_PER_ROUND);
      await verifyOk(on.ledger);
      await verifyOk(off.ledger);
    } finally {
      own.disconnect();
      await server.stop();
    }
  }, 60_000);
});

const SKUS = Array.from({ length: 16 }, (_, i) => `S${i}`);
const BUYERS = ['ann', 'bob', 'cy'];
const ROUND_MS = 1_000;
const OPS_PER_ROUND = 40;
/** The flat-memory run's window: 10 rounds, so the warm-up fills it several times over. */
const ROUNDS_WINDOW_MS = 10 * ROUND_MS;
const WARM_UP_ROUNDS = 40;
const LONG_RUN_ROUNDS = 400;
/** Two windows: the median then spans the sawtooth of closed ids removed once per window. */
const SAMPLED_ROUNDS = 21;
/** Growth over the long run that still counts as flat (the run writes about 20 MB without compaction). */
const FLAT_BYTES_MAX = 128 * 1024;

/**
 * Rounds of writes, each a second later: restocks, deducts (some with a buyer, some reversed),
 * reservations (committed, released or left to expire) and a revoke, all under fresh ids, then
 * compact() when `compacting`. The window is 10 rounds, so past it as much leaves as comes in.
 * SKUs and buyers come from fixed sets: their levels, totals and checkpoints are bounded.
 */
async function rounds(f: Fixture, count: number, compacting: boolean): Promise<void> {
  for (let r = 0; r < count; r += 1) {
    f.clock.now += ROUND_MS;
    const tag = `${f.clock.now}`;
    await Promise.all(Array.from({ length: OPS_PER_ROUND }, (_, i) => roundOp(f.ledger, `${tag}-${i}`, i, r)));
    if (compacting) await f.ledger.compact({ windowMs: ROUNDS_WINDOW_MS });
  }
}

/** Op `i` of round `r`: its kind is i % 8, and each SKU takes every kind over the rounds. */
async function roundOp(ledger: StockLedger, id: string, i: number, r: number): Promise<void> {
  const sku = SKUS[(Math.floor(i / 8) + r) % SKUS.length] as string;
  const buyer = BUYERS[i % BUYERS.length] as string;
  switch (i % 8) {
    case 0:
    case 1:
      await ledger.restockOrThrow({ requestId: `p-${id}`, sku, qty: 5 });
      return;
    case 2:
      await ledger.deduct({ requestId: `d-${id}`, sku, qty: 1, buyer });
      return;
    case 3:
      if ((await ledger.deduct({ requestId: `d-${id}`, sku, qty: 1 })).ok) await ledger.reverse({ requestId: `v-${id}`, of: `d-${id}` });
      return;
    case 4:
      if ((await ledger.reserve({ requestId: `r-${id}`, lines: [{ sku, qty: 1 }], ttlMs: 30_000, buyer })).ok) await ledger.commit({ reservationId: `r-${id}` });
      return;
    case 5:
      if ((await ledger.reserve({ requestId: `r-${id}`, lines: [{ sku, qty: 1 }], ttlMs: 30_000 })).ok) await ledger.release({ reservationId: `r-${id}` });
      return;
    case 6:
      await ledger.reserve({ requestId: `r-${id}`, lines: [{ sku, qty: 1 }], ttlMs: 2_000 }); // expires
      return;
    default:
      await ledger.revoke({ requestId: `x-${id}` });
  }
}

/** used_memory, and the same without client buffers (they come and go with what a connection last sent). */
interface Memory {
  used: number;
  stored: number;
}

/**
 * Memory after each of {@link SAMPLED_ROUNDS} more rounds, the median of each figure: one
 * reading may catch a hash table in the middle of a resize (both tables allocated for a while),
 * or closed ids just before the pass that removes them (one pass per window).
 */
async function sampledMemory(f: Fixture, compacting: boolean, usedMemory: () => Promise<Memory>): Promise<Memory> {
  const samples: Memory[] = [];
  for (let i = 0; i < SAMPLED_ROUNDS; i += 1) {
    await rounds(f, 1, compacting);
    samples.push(await usedMemory());
  }
  const median = (values: number[]): number => values.sort((x, y) => x - y)[Math.floor(values.length / 2)] as number;
  return { used: median(samples.map((m) => m.used)), stored: median(samples.map((m) => m.stored)) };
}

interface Sent {
  id: string;
  at: number;
  replay: () => Promise<unknown>;
  first: unknown;
}

/**
 * Waves of concurrent deducts, restocks and reservations (committed, released, or left to
 * expire) over several connections while compact() loops on one of them and the clock moves a
 * third of the window per wave; every few waves, retries of recent requests. Then: every request
 * inside the window still replays its first outcome, every level is what the applied requests
 * add up to, and verify() is ok.
 */
async function concurrentRun(f: Fixture, writers: StockLedger[], random: () => number): Promise<void> {
  const skus = ['K1', 'K2', 'K3'];
  const expected = new Map(skus.map((s) => [s, 0]));
  const sent: Sent[] = [];
  let n = 0;
  let compacting = true;
  let compactions = 0;
  const loop = (async (): Promise<void> => {
    while (compacting) {
      await f.ledger.compact({ windowMs: WINDOW_MS / 4 });
      compactions += 1;
    }
  })();
  try {
    for (let wave = 0; wave < 24; wave += 1) {
      f.clock.now += WINDOW_MS / 12;
      const ops = Array.from({ length: 30 }, () => {
        const ledger = writers[Math.floor(random() * writers.length)] as StockLedger;
        const sku = skus[Math.floor(random() * skus.length)] as string;
        return concurrentOp(ledger, (n += 1), sku, Math.floor(random() * 4), f.clock.now);
      });
      const recent = sent.filter((s) => s.at >= f.clock.now - WINDOW_MS / 4 && random() < 0.3);
      const [done, replays] = await Promise.all([Promise.all(ops.map((o) => o())), Promise.all(recent.map((s) => s.replay()))]);
      recent.forEach((s, i) => expect(replays[i], `retry of ${s.id} inside the window`).toEqual({ ...(s.first as object), replayed: true }));
      for (const d of done) {
        if (d === null) continue;
        sent.push(d.sent);
        expected.set(d.sku, (expected.get(d.sku) ?? 0) + d.onHandDelta);
      }
    }
  } finally {
    compacting = false;
    await loop;
  }
  expect(compactions).toBeGreaterThan(3);
  expect((await f.ledger.compact({ windowMs: WINDOW_MS / 4 })).compactedThrough).toBeGreaterThan(0);
  for (const s of sent.filter((x) => x.at >= f.clock.now - WINDOW_MS / 4)) {
    expect(await s.replay(), `${s.id} inside the window`).toEqual({ ...(s.first as object), replayed: true });
  }
  for (const level of await f.ledger.stocks(skus)) expect(level.onHand, level.sku).toBe(expected.get(level.sku));
  await verifyOk(f.ledger);
}

type Applied = { sent: Sent; sku: string; onHandDelta: number } | null;

/** One request of the concurrent run: what it applied (its first outcome and on-hand change), or null when refused. */
function concurrentOp(ledger: StockLedger, n: number, sku: string, kind: number, at: number): () => Promise<Applied> {
  const id = `c-${n}`;
  const call = [
    () => ledger.restock({ requestId: id, sku, qty: 3 }),
    () => ledger.deduct({ requestId: id, sku, qty: 1 }),
    () => ledger.reserve({ requestId: id, lines: [{ sku, qty: 1 }], ttlMs: WINDOW_MS / 8 }),
    () => ledger.reserve({ requestId: id, lines: [{ sku, qty: 1 }], ttlMs: WINDOW_MS }),
  ][kind] as () => Promise<{ ok: boolean }>;
  return async () => {
    const first = await call();
    if (!first.ok) return null;
    let onHandDelta = [3, -1, 0, 0][kind] as number;
    // The long reservation is settled at once, alternately committed and released.
    if (kind === 3) {
      if (n % 2 === 0) {
        const commit = await ledger.commit({ reservationId: id });
        if (commit.ok) onHandDelta = -1;
      } else {
        await ledger.release({ reservationId: id });
      }
    }
    return { sent: { id, at, replay: call, first }, sku, onHandDelta };
  };
}
