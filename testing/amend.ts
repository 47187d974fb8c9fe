import { StockLedger, isStockLedgerError } from '../src/index.js';
import type { ReserveApplied, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { checkInvariants } from './invariants.js';

const codeOf = (e: unknown): string => (isStockLedgerError(e) ? e.code : String(e));
const TTL_MS = 60_000;

/**
 * `amend` replaces a held cart's lines in one step: one `amend` entry per SKU whose hold changes
 * (new minus old, the reservation's id on it, the buyer's too), holds made, changed and ended to
 * match, the expiry kept; checked against what is available plus what the cart holds, all or
 * none, with the cart's buyer and limits; `anyOf` lines allocated; its own request id replays
 * (with the cart as it was amended) and conflicts with other lines; the reserve's replay keeps
 * the lines it made; commit, release and expiry follow the new lines; an expired, committed,
 * released or unknown reservation is refused.
 *
 * @example
 * ```ts
 * await amendCase(() => new MemoryStore());
 * ```
 */
export async function amendCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    for (const [sku, qty] of [['A', 10], ['B', 5], ['C', 3]] as const) await ledger.restockOrThrow({ requestId: `stock-${sku}`, sku, qty });
    await ledger.setPolicyOrThrow({ requestId: 'limit-C', sku: 'C', buyerMax: 1 });
    const made = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: TTL_MS, buyer: 'ann' });
    await changes(ledger, made, clock);
    await checks(ledger);
    await settled(ledger, clock);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

async function changes(ledger: StockLedger, made: ReserveApplied, clock: { now: number }): Promise<void> {
  clock.now += 10;
  const v2 = await ledger.amendOrThrow({ requestId: 'cart-v2', reservationId: 'cart', lines: [{ sku: 'A', qty: 3 }, { sku: 'C', qty: 1 }], meta: { step: 2 } });
  assertEqual(v2.entries.map((e) => [e.requestId, e.kind, e.sku, e.onHandDelta, e.reservedDelta, e.reservationId, e.buyer, e.meta]), [
    ['cart-v2', 'amend', 'A', 0, 1, 'cart', 'ann', { step: 2 }],
    ['cart-v2', 'amend', 'B', 0, -1, 'cart', 'ann', { step: 2 }],
    ['cart-v2', 'amend', 'C', 0, 1, 'cart', 'ann', { step: 2 }],
  ], 'one amend entry per SKU whose hold changes: new minus old');
  assertEqual(v2.levels.map((l) => [l.sku, l.reserved]), [['A', 3], ['B', 0], ['C', 1]], 'levels of the SKUs it touched');
  assertEqual(v2.reservation.lines, [{ sku: 'A', qty: 3 }, { sku: 'C', qty: 1 }], 'the cart holds the new lines');
  assertEqual([v2.reservation.expiresAt, v2.reservation.createdAt, v2.reservation.buyer], [made.reservation.expiresAt, made.reservation.createdAt, 'ann'],
    'its expiry, creation and buyer stay');
  assertEqual(await ledger.reservation('cart'), v2.reservation, 'reservation() reads it');
  assertEqual((await ledger.holds({ sku: 'B' })).holds, [], 'the dropped line holds nothing');
  assertEqual((await ledger.holds({ sku: 'C' })).holds.map((h) => [h.reservationId, h.qty, h.expiresAt]), [['cart', 1, made.reservation.expiresAt]], 'the new line is held');
  assertEqual(await ledger.amend({ requestId: 'cart-v2', reservationId: 'cart', lines: [{ sku: 'C', qty: 1 }, { sku: 'A', qty: 2 }, { sku: 'A', qty: 1 }], meta: { step: 2 } }),
    { ...v2, replayed: true }, 'the same lines said another way: a replay');
  const same = await ledger.amendOrThrow({ requestId: 'cart-v2b', reservationId: 'cart', lines: [{ sku: 'C', qty: 1 }, { sku: 'A', qty: 3 }] });
  assertEqual([same.entries, same.levels], [[], []], 'the same lines under a new id: applied, nothing changes');
  const reserveAgain = await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: TTL_MS, buyer: 'ann' });
  assertEqual(reserveAgain, { ...made, replayed: true }, 'the reserve still replays with the lines it made');
}

async function checks(ledger: StockLedger): Promise<void> {
  // A: 10 on hand, the cart holds 3, so the cart may hold up to 10.
  const big = await ledger.amendOrThrow({ requestId: 'cart-v3', reservationId: 'cart', lines: [{ sku: 'A', qty: 10 }] });
  assertEqual(big.entries.map((e) => [e.sku, e.reservedDelta]), [['A', 7], ['C', -1]], 'checked against available plus what the cart holds');
  const before = await ledger.stocks(['A', 'B', 'C']);
  assertEqual(await ledger.amend({ requestId: 'cart-v4', reservationId: 'cart', lines: [{ sku: 'A', qty: 11 }, { sku: 'B', qty: 1 }] }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: 'A', requested: 11, available: 10 }, 'one past it: what the cart could have');
  assertEqual(await ledger.amend({ requestId: 'cart-v4', reservationId: 'cart', lines: [{ sku: 'C', qty: 2 }] }),
    { ok: false, code: 'BUYER_LIMIT', sku: 'C', buyer: 'ann', limit: 1, taken: 0 }, 'the cart\'s buyer and her limit');
  assertEqual(await ledger.stocks(['A', 'B', 'C']), before, 'all or none: a refused amend changes nothing');
  const conflict = await ledger.amend({ requestId: 'cart-v3', reservationId: 'cart', lines: [{ sku: 'A', qty: 9 }] }).then(() => 'no error', codeOf);
  assertEqual(conflict, 'IDEMPOTENCY_CONFLICT', 'its id with other lines');
  const alternatives = await ledger.amendOrThrow({ requestId: 'cart-v4', reservationId: 'cart', lines: [{ sku: 'A', qty: 4 }, { anyOf: ['B', 'A'], qty: 2 }] });
  assertEqual(alternatives.allocations, [{ line: 0, taken: [{ sku: 'A', qty: 4 }] }, { line: 1, taken: [{ sku: 'B', qty: 2 }] }], 'anyOf lines are allocated');
  assertEqual(alternatives.reservation.lines, [{ sku: 'A', qty: 4 }, { sku: 'B', qty: 2 }], 'and held per SKU');
  assertEqual((await ledger.request('cart-v4'))?.allocations, alternatives.allocations, 'request() keeps the allocation');
  await ledger.reserveOrThrow({ requestId: 'anon', lines: [{ sku: 'A', qty: 1 }], ttlMs: TTL_MS });
  const code = await ledger.amend({ requestId: 'anon-v2', reservationId: 'anon', lines: [{ sku: 'C', qty: 1 }] }).then(() => 'no error', codeOf);
  assertEqual(code, 'INVALID_INPUT', 'a cart without a buyer cannot take a SKU with a buyerMax');
  assertEqual(await ledger.request('anon-v2'), null, 'and nothing is recorded');
}

async function settled(ledger: StockLedger, clock: { now: number }): Promise<void> {
  const sold = await ledger.commitOrThrow({ reservationId: 'cart', lines: [{ sku: 'B', qty: 1 }] });
  assertEqual(sold.entries.map((e) => [e.sku, e.onHandDelta, e.reservedDelta]), [['A', 0, -4], ['B', -1, -2]], 'a commit sells from the amended lines');
  const refusals = [
    ['cart', 'RESERVATION_COMMITTED'],
    ['nobody', 'RESERVATION_NOT_FOUND'],
  ];
  await ledger.releaseOrThrow({ reservationId: 'anon' });
  refusals.push(['anon', 'RESERVATION_RELEASED']);
  await ledger.reserveOrThrow({ requestId: 'late', lines: [{ sku: 'A', qty: 1 }], ttlMs: 100 });
  const early = await ledger.amendOrThrow({ requestId: 'late-v2', reservationId: 'late', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }] });
  check(early.ok, () => `an amend before the expiry applies: ${show(early)}`);
  clock.now += 100;
  refusals.push(['late', 'RESERVATION_EXPIRED']);
  for (const [reservationId, code] of refusals) {
    const r = await ledger.amend({ requestId: `try-${reservationId}`, reservationId: reservationId as string, lines: [{ sku: 'A', qty: 1 }] });
    assertEqual(r.ok ? 'applied' : r.code, code, `an amend of ${reservationId}`);
  }
  const expired = (await ledger.entries({ after: 0, limit: 1000 })).entries.filter((e) => e.kind === 'expire' && e.requestId === 'late');
  assertEqual(expired.map((e) => [e.sku, e.reservedDelta]), [['A', -2], ['B', -1]], 'the expiry ends the amended holds');
}
