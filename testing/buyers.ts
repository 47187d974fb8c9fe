import { StockLedger, isStockLedgerError } from '../src/index.js';
import type { Applied, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { checkInvariants } from './invariants.js';

/**
 * Purchase limits (`buyerMax`): what one buyer holds plus has bought of a SKU never passes the
 * limit, checked in the same step as the stock, all lines together; a deduct or reserve of such
 * a SKU without a buyer is INVALID_INPUT and writes nothing; releases, expiries, partial commits
 * and reversals give units back to the buyer; entries, reservations and holds name the buyer;
 * `buyerTotals` reads the counts (due holds counted as expired).
 *
 * @example
 * ```ts
 * await buyersCase(() => new MemoryStore());
 * ```
 */
export async function buyersCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    await ledger.restockOrThrow({ requestId: 'stock-L', sku: 'L', qty: 100 });
    await ledger.restockOrThrow({ requestId: 'stock-M', sku: 'M', qty: 100 });
    await ledger.setPolicyOrThrow({ requestId: 'limit-L', sku: 'L', buyerMax: 2 });
    await limits(ledger);
    await givenBack(ledger, clock);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

async function takenOf(ledger: StockLedger, buyer: string, sku = 'L'): Promise<number> {
  return (await ledger.buyerTotals({ buyer, skus: [sku] }))[0]?.taken ?? Number.NaN;
}

async function limits(ledger: StockLedger): Promise<void> {
  const code = await ledger.deduct({ requestId: 'anon', sku: 'L', qty: 1 }).then(() => 'no error', (e: unknown) => (isStockLedgerError(e) ? e.code : String(e)));
  assertEqual(code, 'INVALID_INPUT', 'a deduct of a SKU with a buyerMax that names no buyer');
  assertEqual(await ledger.request('anon'), null, 'and it recorded nothing');
  assertEqual((await ledger.deductOrThrow({ requestId: 'anon-m', sku: 'M', qty: 1 })).ok, true, 'a SKU without a limit needs no buyer');

  const first = await ledger.deductOrThrow({ requestId: 'a1', sku: 'L', qty: 1, buyer: 'ann' });
  assertEqual(first.entries.map((e) => e.buyer), ['ann'], 'the entry names the buyer');
  assertEqual(await ledger.deduct({ requestId: 'a1', sku: 'L', qty: 1, buyer: 'ann' }), { ...first, replayed: true }, 'a replay');
  const conflict = await ledger.deduct({ requestId: 'a1', sku: 'L', qty: 1, buyer: 'bea' }).then(() => 'no error', (e: unknown) => (isStockLedgerError(e) ? e.code : String(e)));
  assertEqual(conflict, 'IDEMPOTENCY_CONFLICT', 'the same id for another buyer');
  await ledger.reserveOrThrow({ requestId: 'a2', lines: [{ sku: 'L', qty: 1 }, { sku: 'M', qty: 5 }], ttlMs: 60_000, buyer: 'ann' });
  assertEqual(await ledger.deduct({ requestId: 'a3', lines: [{ sku: 'M', qty: 1 }, { sku: 'L', qty: 1 }], buyer: 'ann' }),
    { ok: false, code: 'BUYER_LIMIT', sku: 'L', buyer: 'ann', limit: 2, taken: 2 }, 'a third unit: held and bought count together');
  assertEqual((await ledger.stock('M')).onHand, 99, 'all or none: the other line took nothing');
  assertEqual(await ledger.deduct({ requestId: 'b1', sku: 'L', qty: 3, buyer: 'bea' }),
    { ok: false, code: 'BUYER_LIMIT', sku: 'L', buyer: 'bea', limit: 2, taken: 0 }, 'more than the limit at once');
  assertEqual((await ledger.deductOrThrow({ requestId: 'b1', sku: 'L', qty: 2, buyer: 'bea' })).ok, true, 'the same id within the limit applies (a refusal records nothing)');
  assertEqual(await ledger.buyerTotals({ buyer: 'ann', skus: ['L', 'M', 'N'] }),
    [{ sku: 'L', buyer: 'ann', taken: 2 }, { sku: 'M', buyer: 'ann', taken: 5 }, { sku: 'N', buyer: 'ann', taken: 0 }], 'buyerTotals reads every SKU, in order');
  const page = await ledger.holds({ sku: 'L' });
  assertEqual(page.holds.map((h) => [h.reservationId, h.buyer]), [['a2', 'ann']], 'holds() names the buyer');
  assertEqual((await ledger.reservation('a2'))?.buyer, 'ann', 'the reservation names the buyer');
}

async function givenBack(ledger: StockLedger, clock: { now: number }): Promise<void> {
  // Ann releases her hold: one unit of L back to her.
  await ledger.releaseOrThrow({ reservationId: 'a2' });
  assertEqual(await takenOf(ledger, 'ann'), 1, 'a release gives the units back to the buyer');
  // A refund of Bea's order: one back.
  const refund = await ledger.reverseOrThrow({ requestId: 'b1-refund', of: 'b1', lines: [{ sku: 'L', qty: 1 }] });
  assertEqual(refund.entries.map((e) => e.buyer), ['bea'], 'a reversal names the original buyer');
  assertEqual(await takenOf(ledger, 'bea'), 1, 'and gives back to her');
  // A partial commit sells one and gives the other back.
  await ledger.reserveOrThrow({ requestId: 'b2', lines: [{ sku: 'L', qty: 1 }], ttlMs: 1000, buyer: 'bea' });
  assertEqual(await takenOf(ledger, 'bea'), 2, 'held counts');
  const committed = await ledger.commitOrThrow({ reservationId: 'b2', lines: [{ sku: 'L', qty: 1 }] });
  assertEqual(committed.entries.map((e) => e.buyer), ['bea'], 'the commit entry names the buyer');
  assertEqual(await takenOf(ledger, 'bea'), 2, 'a commit moves units from held to bought');
  // An abandoned hold: due holds count as expired in reads, and free the buyer for a new one.
  await ledger.reserveOrThrow({ requestId: 'a4', lines: [{ sku: 'L', qty: 1 }], ttlMs: 1000, buyer: 'ann' });
  assertEqual(await takenOf(ledger, 'ann'), 2, 'ann at her limit');
  clock.now += 1000;
  assertEqual(await takenOf(ledger, 'ann'), 1, 'her due hold no longer counts');
  const again = await ledger.deduct({ requestId: 'a5', sku: 'L', qty: 1, buyer: 'ann' });
  check(again.ok, () => `after the expiry ann may buy again: ${show(again)}`);
  const kinds = (again as Applied).entries.map((e) => `${e.kind}:${e.buyer ?? '-'}`);
  assertEqual(kinds, ['deduct:ann'], 'its own entry (the expiry was written first, not its own)');
  // A lower limit applies to new takes; what was sold stays sold.
  await ledger.setPolicyOrThrow({ requestId: 'limit-L-1', sku: 'L', buyerMax: 1 });
  assertEqual(await ledger.deduct({ requestId: 'a6', sku: 'L', qty: 1, buyer: 'ann' }),
    { ok: false, code: 'BUYER_LIMIT', sku: 'L', buyer: 'ann', limit: 1, taken: 2 }, 'a lowered limit refuses new takes');
  await ledger.setPolicyOrThrow({ requestId: 'limit-L-off', sku: 'L', buyerMax: null });
  assertEqual((await ledger.deductOrThrow({ requestId: 'anon-2', sku: 'L', qty: 1 })).ok, true, 'without a limit a buyer is optional again');
}

/**
 * 2,000 concurrent requests from 200 buyers on one SKU with `buyerMax: 2` and a backorder
 * allowance: each buyer sends several ids of 1 or 2 units, each id sent 1 to 3 times at once,
 * in shuffled order. No buyer passes 2 (some meet the limit), units sold never pass on-hand plus
 * the allowance (250 + 50), and here (the buyers could take 400) they reach it exactly.
 *
 * @example
 * ```ts
 * await buyerStormCase(() => new MemoryStore());
 * ```
 */
export async function buyerStormCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const ledger = new StockLedger({ store: await createStore() });
  try {
    await ledger.restockOrThrow({ requestId: 'stock', sku: 'DROP', qty: 250 });
    await ledger.setPolicyOrThrow({ requestId: 'policy', sku: 'DROP', buyerMax: 2, backorderMax: 50 });
    const sends: Array<{ id: string; buyer: string; qty: number; hold: boolean }> = [];
    let seed = 0x2545f491;
    const random = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    for (let i = 0; sends.length < 2000; i += 1) {
      const buyer = `buyer-${i % 200}`;
      const send = { id: `r-${i}`, buyer, qty: random() < 0.7 ? 1 : 2, hold: random() < 0.5 };
      const copies = 1 + Math.floor(random() * 3);
      for (let c = 0; c < copies && sends.length < 2000; c += 1) sends.push(send);
    }
    // Shuffled, so buyers reach their limit while stock is left (the limit binds, not only the stock).
    for (let i = sends.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [sends[i], sends[j]] = [sends[j] as (typeof sends)[number], sends[i] as (typeof sends)[number]];
    }
    const results = await Promise.all(sends.map((s) => (s.hold
      ? ledger.reserve({ requestId: s.id, lines: [{ sku: 'DROP', qty: s.qty }], ttlMs: 3_600_000, buyer: s.buyer })
      : ledger.deduct({ requestId: s.id, sku: 'DROP', qty: s.qty, buyer: s.buyer }))));
    const byBuyer = new Map<string, number>();
    const counted = new Set<string>();
    results.forEach((r, i) => {
      const s = sends[i] as (typeof sends)[number];
      if (!r.ok || counted.has(s.id)) return;
      counted.add(s.id);
      byBuyer.set(s.buyer, (byBuyer.get(s.buyer) ?? 0) + s.qty);
    });
    for (const [buyer, qty] of byBuyer) check(qty <= 2, () => `${buyer} took ${qty} units, past buyerMax 2`);
    const total = [...byBuyer.values()].reduce((a, b) => a + b, 0);
    assertEqual(total, 300, 'units taken: on-hand 250 plus the allowance 50, exactly');
    const limited = results.filter((r) => !r.ok && r.code === 'BUYER_LIMIT').length;
    check(limited > 0, () => 'no request met the buyer limit: the storm did not test it');
    const level = await ledger.stock('DROP');
    assertEqual(level.available, 0, 'nothing left to sell');
    for (const [buyer, qty] of byBuyer) assertEqual(await takenOf(ledger, buyer, 'DROP'), qty, `buyerTotals of ${buyer}`);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}
