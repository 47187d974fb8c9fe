/**
 * Fields and members built from two caller strings (a reservation id and a SKU, a request id
 * and a SKU) are prefix-free on the Redis store: enc() wraps every string but the last, so no
 * NUL, U+FFFF or astral character in an id or a SKU makes two pairs the same bytes. The cases
 * here would collide under a bare separator; a seeded differential run against the memory store
 * (the reference) covers the rest with ids and SKUs made of such pieces, prefixes of each other.
 */
import { type Redis } from 'ioredis';
import { StockLedger, isStockLedgerError, type Line } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { RedisStore } from 'stock-ledger/redis';
import { readAllEntries } from 'stock-ledger/testing';
import { expect, it } from 'vitest';
import { describeRedis, redisSuiteHooks } from './support/redis-server.js';
import { seededRandom } from '../testing/random.js';

const T0 = 1_700_000_000_000;

let client: Redis;
let ledgers = 0;

interface Pair {
  memory: StockLedger;
  redis: StockLedger;
  clock: { now: number };
}

/** A memory ledger and a Redis ledger on one clock the test moves. */
function pair(batch = true): Pair {
  const clock = { now: T0 };
  const options = { clock: () => clock.now, retry: false as const };
  return {
    memory: new StockLedger({ store: new MemoryStore(), ...options }),
    redis: new StockLedger({ store: new RedisStore({ client, prefix: `keys-${process.pid}-${(ledgers += 1)}`, batch }), ...options }),
    clock,
  };
}

/** A call's outcome, or the code of the error it threw. */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return await call();
  } catch (error) {
    if (!isStockLedgerError(error)) throw error;
    return { threw: error.code };
  }
}

/** Runs `call` on both ledgers; expects the same outcome; returns it. */
async function both(p: Pair, call: (l: StockLedger) => Promise<unknown>): Promise<unknown> {
  const expected = await outcome(() => call(p.memory));
  expect(await outcome(() => call(p.redis))).toEqual(expected);
  return expected;
}

/** Everything a ledger holds, for comparing the two. */
async function snapshot(ledger: StockLedger, skus: readonly string[], ids: readonly string[]): Promise<unknown> {
  return {
    entries: await readAllEntries(ledger),
    levels: await ledger.stocks([...new Set(skus)]),
    reservations: await Promise.all(ids.map((id) => ledger.reservation(id))),
    requests: await Promise.all(ids.map((id) => ledger.request(id))),
  };
}

describeRedis('Redis store: composite fields are collision-free', () => {
  redisSuiteHooks((_server, connected) => {
    client = connected;
  });

  it('reservation a holds "b\\0c" and "c", "a\\0b" holds "c": its expiry and a\'s commit stay apart', async () => {
    for (const batch of [false, true]) {
      const p = pair(batch);
      await both(p, (l) => l.restock({ requestId: 'p1', sku: 'b\u0000c', qty: 10 }));
      await both(p, (l) => l.restock({ requestId: 'p2', sku: 'c', qty: 10 }));
      await both(p, (l) => l.reserve({ requestId: 'a', lines: [{ sku: 'b\u0000c', qty: 3 }, { sku: 'c', qty: 2 }], ttlMs: 10_000 }));
      await both(p, (l) => l.reserve({ requestId: 'a\u0000b', lines: [{ sku: 'c', qty: 1 }], ttlMs: 100 }));
      p.clock.now = T0 + 200; // the hold of "a\0b" is due
      expect(await both(p, (l) => l.commit({ reservationId: 'a' }))).toMatchObject({ ok: true, replayed: false });
      p.clock.now = T0 + 20_000; // past a's own expiry: nothing of a is held any more
      expect(await p.redis.stock('b\u0000c')).toEqual({ sku: 'b\u0000c', onHand: 7, reserved: 0, available: 7, version: 3 });
      expect(await p.redis.stock('c')).toMatchObject({ onHand: 8, reserved: 0, available: 8 });
      expect(await both(p, (l) => l.sweepExpired())).toMatchObject({ expired: 0, more: false });
      expect(await p.redis.reservation('a')).toMatchObject({ state: 'committed' });
      expect(await p.redis.reservation('a\u0000b')).toMatchObject({ state: 'expired' });
      expect(await p.redis.verify()).toMatchObject({ ok: true, drift: [] });
      expect(await snapshot(p.redis, ['b\u0000c', 'c'], ['a', 'a\u0000b'])).toEqual(await snapshot(p.memory, ['b\u0000c', 'c'], ['a', 'a\u0000b']));
    }
  });

  it('reversals of "d" on "\\0x" and of "d\\0" on "x" are counted apart', async () => {
    const p = pair(false);
    for (const [i, sku] of ['x', '\u0000x', 'x\u0000'].entries()) await both(p, (l) => l.restock({ requestId: `p${i}`, sku, qty: 10 }));
    await both(p, (l) => l.deduct({ requestId: 'd', sku: '\u0000x', qty: 2 }));
    await both(p, (l) => l.deduct({ requestId: 'd\u0000', sku: 'x', qty: 3 }));
    await both(p, (l) => l.deduct({ requestId: 'd\u0000x', sku: 'x\u0000', qty: 4 }));
    expect(await both(p, (l) => l.reverse({ requestId: 'v1', of: 'd', lines: [{ sku: '\u0000x', qty: 2 }] }))).toMatchObject({ ok: true });
    expect(await both(p, (l) => l.reverse({ requestId: 'v2', of: 'd\u0000', lines: [{ sku: 'x', qty: 3 }] }))).toMatchObject({ ok: true });
    expect(await both(p, (l) => l.reverse({ requestId: 'v3', of: 'd\u0000x' }))).toMatchObject({ ok: true, entries: [{ sku: 'x\u0000', onHandDelta: 4 }] });
    expect(await both(p, (l) => l.reverse({ requestId: 'v4', of: 'd' }))).toMatchObject({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL' });
    expect(await p.redis.stocks(['x', '\u0000x', 'x\u0000'])).toMatchObject([{ onHand: 10 }, { onHand: 10 }, { onHand: 10 }]);
    expect((await p.redis.verify()).ok).toBe(true);
  });

  it('U+FFFF, astral characters and ids that are prefixes of others, as SKUs and ids', async () => {
    const p = pair(true);
    const skus = ['\uffff', '😀', 'x', 'x\uffff', 'x😀', 'x\u0000', '\u0000'];
    for (const [i, sku] of skus.entries()) await both(p, (l) => l.restock({ requestId: `p${i}`, sku, qty: 20 }));
    const ids = ['x', 'x\uffff', 'x😀', 'x\u0000', 'x\u0000\uffff', '😀', '\uffff'];
    const lines = (i: number): Line[] => [{ sku: skus[i % skus.length] as string, qty: 1 + (i % 3) }, { sku: skus[(i + 3) % skus.length] as string, qty: 1 }];
    // All reserved at once (one batch), with TTLs that make some due together.
    await Promise.all(ids.map((id, i) => both(p, (l) => l.reserve({ requestId: id, lines: lines(i), ttlMs: i % 2 === 0 ? 100 : 10_000 }))));
    p.clock.now = T0 + 100;
    await both(p, (l) => l.commit({ reservationId: 'x\uffff' }));
    await both(p, (l) => l.release({ reservationId: 'x😀' }));
    await both(p, (l) => l.commit({ reservationId: 'x' })); // due: RESERVATION_EXPIRED
    await both(p, (l) => l.sweepExpired());
    for (const id of ids) await both(p, (l) => l.reverse({ requestId: `rev-${id}`, of: id }));
    expect(await p.redis.verify()).toMatchObject({ ok: true, drift: [] });
    expect(await snapshot(p.redis, skus, ids)).toEqual(await snapshot(p.memory, skus, ids));
  });

  it('a seeded differential run with ids and SKUs made of NUL, U+FFFF, astral and plain pieces', async () => {
    const seed = Number(process.env.KEYS_SEED ?? Date.now() % 2 ** 31);
    console.log(`redis-keys differential: seed ${seed} (KEYS_SEED=${seed} to replay)`);
    const random = seededRandom(seed);
    const pieces = ['a', '\u0000', 'b', '\uffff', '😀', 'a\u0000b'];
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
    const name = (): string => Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(pieces)).join('');
    const skus = Array.from({ length: 8 }, name);
    const ids: string[] = [];
    const id = (): string => {
      const fresh = name() + pick(['', '\u0000', '\uffff']);
      ids.push(fresh);
      return fresh;
    };
    const someLines = (): Line[] => Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ sku: pick(skus), qty: 1 + Math.floor(random() * 3) }));
    const p = pair(true);
    for (const [i, sku] of skus.entries()) await both(p, (l) => l.restock({ requestId: `stock-${i}`, sku, qty: 30 }));
    type Call = [what: string, run: (l: StockLedger) => Promise<unknown>];
    const anyId = (): string => (ids.length > 0 ? pick(ids) : 'none');
    const ops: Array<() => Call> = [
      () => { const input = { requestId: id(), lines: someLines(), ttlMs: 1 + Math.floor(random() * 300) }; return [`reserve ${JSON.stringify(input)}`, (l) => l.reserve(input)]; },
      () => { const input = { reservationId: anyId() }; return [`commit ${JSON.stringify(input)}`, (l) => l.commit(input)]; },
      () => { const input = { reservationId: anyId(), lines: someLines() }; return [`commit ${JSON.stringify(input)}`, (l) => l.commit(input)]; },
      () => { const input = { reservationId: anyId() }; return [`release ${JSON.stringify(input)}`, (l) => l.release(input)]; },
      () => { const input = { requestId: id(), lines: someLines() }; return [`deduct ${JSON.stringify(input)}`, (l) => l.deduct(input)]; },
      () => { const input = { requestId: id(), of: anyId() }; return [`reverse ${JSON.stringify(input)}`, (l) => l.reverse(input)]; },
      () => { const input = { requestId: id(), of: anyId(), lines: someLines() }; return [`reverse ${JSON.stringify(input)}`, (l) => l.reverse(input)]; },
      () => { const input = { requestId: id(), sku: pick(skus), qty: 1 + Math.floor(random() * 5) }; return [`restock ${JSON.stringify(input)}`, (l) => l.restock(input)]; },
      () => { const input = { requestId: ids.length > 0 && random() < 0.5 ? pick(ids) : id() }; return [`revoke ${JSON.stringify(input)}`, (l) => l.revoke(input)]; },
      () => { const input = { limit: 1 + Math.floor(random() * 5) }; return [`sweepExpired ${JSON.stringify(input)}`, (l) => l.sweepExpired(input)]; },
    ];
    const history: string[] = [];
    for (let round = 0; round < 40; round += 1) {
      // A group issued at once: one batch on Redis, applied in issue order as on the reference.
      const group = Array.from({ length: 1 + Math.floor(random() * 8) }, () => pick(ops)());
      history.push(`round ${round} at +${p.clock.now - T0} ms: ${group.map(([what]) => what).join('; ')}`);
      const expected = await Promise.all(group.map(([, call]) => outcome(() => call(p.memory))));
      const got = await Promise.all(group.map(([, call]) => outcome(() => call(p.redis))));
      expect(got, `seed ${seed}, round ${round}; the rounds so far:\n${history.join('\n')}`).toEqual(expected);
      p.clock.now += Math.floor(random() * 120);
    }
    expect(await snapshot(p.redis, skus, ids), `seed ${seed}`).toEqual(await snapshot(p.memory, skus, ids));
    expect(await p.redis.verify(), `seed ${seed}`).toMatchObject({ ok: true, drift: [] });
  });
});
