import { StockLedger } from '../src/index.js';
import type { Reservation, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { checkInvariants } from './invariants.js';

/**
 * Extending a held reservation (`extend`): its holds last until the new expiry, not the old
 * one; its reserve's replay still answers the expiry it was made with; an unknown, expired,
 * committed or released reservation is refused with the existing codes; and extends issued
 * together with reserves, commits and releases of the same reservations (one batch, on stores
 * that group operations) all land as if run one at a time.
 *
 * @example
 * ```ts
 * await extendCase(() => new MemoryStore());
 * ```
 */
export async function extendCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 10 });
    await extendMovesTheExpiry(ledger, clock);
    await refusals(ledger, clock);
    await togetherInOneGo(ledger, clock);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

async function extendMovesTheExpiry(ledger: StockLedger, clock: { now: number }): Promise<void> {
  const made = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 1000, meta: { who: 'x' } });
  clock.now += 900;
  const extended = await ledger.extend({ reservationId: 'cart', ttlMs: 5000 });
  const expected: Reservation = { ...made.reservation, expiresAt: clock.now + 5000 };
  assertEqual(extended, {
    ok: true, replayed: false, entries: [], reservation: expected,
    levels: [{ sku: 'A', onHand: 10, reserved: 3, available: 7, version: 2 }],
  }, 'extend of a held reservation: no entry, the level as it is, the new expiry');
  clock.now += 4000; // past the first expiry, before the new one
  assertEqual(await ledger.reservation('cart'), expected, 'the reservation, read past its first expiry');
  assertEqual((await ledger.stock('A')).reserved, 3, 'its units stay held past the first expiry');
  assertEqual(await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 1000, meta: { who: 'x' } }),
    { ...made, replayed: true }, 'the reserve replayed: the answer it first gave, first expiry included');
  clock.now = expected.expiresAt;
  assertEqual((await ledger.reservation('cart'))?.state, 'expired', 'at the new expiry it is expired');
  assertEqual((await ledger.stock('A')).reserved, 0, 'and its units are free');
}

async function refusals(ledger: StockLedger, clock: { now: number }): Promise<void> {
  assertEqual(await ledger.extend({ reservationId: 'cart', ttlMs: 5000 }),
    { ok: false, code: 'RESERVATION_EXPIRED', reservationId: 'cart', expiresAt: clock.now }, 'extend of an expired reservation');
  assertEqual(await ledger.extend({ reservationId: 'nobody', ttlMs: 5000 }),
    { ok: false, code: 'RESERVATION_NOT_FOUND', reservationId: 'nobody' }, 'extend of an unknown id');
  await ledger.reserveOrThrow({ requestId: 'sold', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000 });
  await ledger.commitOrThrow({ reservationId: 'sold' });
  assertEqual(await ledger.extend({ reservationId: 'sold', ttlMs: 5000 }),
    { ok: false, code: 'RESERVATION_COMMITTED', reservationId: 'sold' }, 'extend of a committed reservation');
  await ledger.reserveOrThrow({ requestId: 'dropped', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000 });
  await ledger.releaseOrThrow({ reservationId: 'dropped' });
  assertEqual(await ledger.extend({ reservationId: 'dropped', ttlMs: 5000 }),
    { ok: false, code: 'RESERVATION_RELEASED', reservationId: 'dropped' }, 'extend of a released reservation');
}

/**
 * Extends issued together with reserves, commits and releases (one batch, on stores that group
 * operations; racing, on those that do not): every call lands whole. Where two calls on one
 * reservation race, either order is allowed, and the end state must be the one that order gives.
 */
async function togetherInOneGo(ledger: StockLedger, clock: { now: number }): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'po-b', sku: 'B', qty: 10 });
  const base = clock.now;
  for (const id of ['g1', 'g2', 'g3', 'g4']) await ledger.reserveOrThrow({ requestId: id, lines: [{ sku: 'B', qty: 1 }], ttlMs: 100 });
  const [extend1, extend2, release2, extend3, commit4, reserve5, extend5] = await Promise.all([
    ledger.extend({ reservationId: 'g1', ttlMs: 10_000 }),
    ledger.extend({ reservationId: 'g2', ttlMs: 10_000 }),
    ledger.release({ reservationId: 'g2' }),
    ledger.extend({ reservationId: 'g3', ttlMs: 20_000 }),
    ledger.commit({ reservationId: 'g4' }),
    ledger.reserve({ requestId: 'g5', lines: [{ sku: 'A', qty: 1 }], ttlMs: 100 }),
    ledger.extend({ reservationId: 'g5', ttlMs: 10_000 }),
  ]);
  for (const [what, r] of [['extend g1', extend1], ['release g2', release2], ['extend g3', extend3], ['commit g4', commit4], ['reserve g5', reserve5]] as const) {
    check(r.ok, () => `${what}, issued together with the others: ${show(r)}`);
  }
  check(extend2.ok || extend2.code === 'RESERVATION_RELEASED', () => `extend g2 racing its release: ${show(extend2)}`);
  check(extend5.ok || extend5.code === 'RESERVATION_NOT_FOUND', () => `extend g5 racing its reserve: ${show(extend5)}`);
  clock.now = base + 5000; // past every first expiry, before every extended one
  const state = async (id: string): Promise<string | undefined> => (await ledger.reservation(id))?.state;
  assertEqual(await Promise.all(['g1', 'g2', 'g3', 'g4', 'g5'].map(state)), ['held', 'released', 'held', 'committed', extend5.ok ? 'held' : 'expired'],
    'states after the calls issued together');
  assertEqual((await ledger.reservation('g3'))?.expiresAt, base + 20_000, 'g3 expires when its extend said');
  assertEqual((await ledger.stocks(['A', 'B'])).map((l) => l.reserved), [extend5.ok ? 1 : 0, 2], 'units held after the calls issued together');
}
