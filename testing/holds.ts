import { StockLedger, isStockLedgerError } from '../src/index.js';
import type { Hold, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { compareCodePoints } from '../src/store-kit.js';

/**
 * Who holds what (`holds({ sku, after?, limit? })`): exactly the live holds of the SKU (not
 * its committed, released or due ones, nor another SKU's), soonest expiry first and then by
 * reservation id in code-point order (ids with separators, U+0000 and astral characters
 * included), with each reservation's meta; paging with any limit lists each hold once; an
 * extend moves a hold in the order; bad queries are INVALID_INPUT.
 *
 * @example
 * ```ts
 * await holdsCase(() => new MemoryStore());
 * ```
 */
export async function holdsCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 100 });
    await ledger.restockOrThrow({ requestId: 'po-b', sku: 'B', qty: 100 });
    const expected = await makeHolds(ledger, clock);
    const whole = await ledger.holds({ sku: 'A' });
    assertEqual(whole, { holds: expected, next: null }, 'holds of A in one page');
    check(whole.holds.every((h) => h.meta !== undefined || !('meta' in h)), () => `a hold without meta has no meta key: ${show(whole.holds)}`);
    assertEqual(await ledger.holds({ sku: 'A', after: null } as never), whole, 'after: null reads the first page');
    const full = await ledger.holds({ sku: 'A', limit: expected.length });
    assertEqual(full.next !== null, true, 'a full page says where to go on');
    assertEqual(await ledger.holds({ sku: 'A', after: full.next as string }), { holds: [], next: null }, 'after the last hold: an empty last page');
    for (const limit of [1, 2, 3]) assertEqual(await pages(ledger, limit), expected, `holds of A, pages of ${limit}`);
    assertEqual(await ledger.holds({ sku: 'nothing-here' }), { holds: [], next: null }, 'holds of a SKU never held');
    await ledger.extendOrThrow({ reservationId: 'a', ttlMs: 1 });
    const moved = [{ ...(expected.find((h) => h.reservationId === 'a') as Hold), expiresAt: clock.now + 1 }, ...expected.filter((h) => h.reservationId !== 'a')];
    assertEqual((await ledger.holds({ sku: 'A' })).holds, moved, 'an extend moves its hold in the order');
    await badQueries(ledger);
  } finally {
    await ledger.close();
  }
}

/** Live holds of A (the ones it must list, in order), and others it must not list. */
async function makeHolds(ledger: StockLedger, clock: { now: number }): Promise<Hold[]> {
  const start = clock.now;
  const tie = ['b', 'a\u0000', 'a', '\u{10FFFF}', 'é', 'x:1']; // one expiry for all: ordered by id
  for (const id of tie) await ledger.reserveOrThrow({ requestId: id, lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 60_000 });
  clock.now += 1;
  await ledger.reserveOrThrow({ requestId: 'late', lines: [{ sku: 'A', qty: 5 }], ttlMs: 120_000, meta: { cart: 'c-9' } });
  await ledger.reserveOrThrow({ requestId: 'soon', lines: [{ sku: 'A', qty: 1 }], ttlMs: 10 });
  await ledger.reserveOrThrow({ requestId: 'sold', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
  await ledger.commitOrThrow({ reservationId: 'sold' });
  await ledger.reserveOrThrow({ requestId: 'dropped', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
  await ledger.releaseOrThrow({ reservationId: 'dropped' });
  clock.now += 10; // 'soon' is due: no longer listed, though not yet expired in storage
  const ties: Hold[] = [...tie].sort(compareCodePoints).map((id) => ({ reservationId: id, sku: 'A', qty: 2, expiresAt: start + 60_000 }));
  return [...ties, { reservationId: 'late', sku: 'A', qty: 5, expiresAt: start + 1 + 120_000, meta: { cart: 'c-9' } }];
}

async function pages(ledger: StockLedger, limit: number): Promise<Hold[]> {
  const out: Hold[] = [];
  let after: string | undefined;
  for (let page = 0; page < 50; page += 1) {
    const got = await ledger.holds(after === undefined ? { sku: 'A', limit } : { sku: 'A', limit, after });
    out.push(...got.holds);
    if (got.next === null) return out;
    after = got.next;
  }
  throw new Error(`holds of A in pages of ${limit} did not end`);
}

async function badQueries(ledger: StockLedger): Promise<void> {
  const bad: unknown[] = [
    undefined, null, {}, { sku: '' }, { sku: 'A', limit: 0 }, { sku: 'A', limit: 1001 }, { sku: 'A', limit: 1.5 }, { sku: 'A', after: 5 },
    { sku: 'A', after: 'nope' }, { sku: 'A', after: ':a' }, { sku: 'A', after: '-1:a' }, { sku: 'A', after: '1:' }, { sku: 'A', after: '1.5:a' },
  ];
  for (const query of bad) {
    const error = await ledger.holds(query as never).then(() => null, (e: unknown) => e);
    assertEqual(isStockLedgerError(error) ? error.code : String(error), 'INVALID_INPUT', `holds(${JSON.stringify(query) ?? 'undefined'})`);
  }
}
