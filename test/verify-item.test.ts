/**
 * The core's per-SKU invariant check (`verifyItem`, run by `verify()` on every store): each kind
 * of breach is reported on its own, with both sides, and a sound SKU reports nothing.
 */
import type { Counters } from 'stock-ledger';
import { verifyItem, type HoldCheck, type VerifyItem } from 'stock-ledger/store';
import { describe, expect, it } from 'vitest';

const counters = (onHand: number, reserved: number, version: number): Counters => ({ onHand, reserved, version });

/** A sound SKU: 8 on hand, 2 held by `cart` (one reserve entry among three). */
function sound(): VerifyItem {
  const c = counters(8, 2, 3);
  return {
    sku: 'A', stored: { ...c }, folded: { ...c },
    holds: [hold('cart', 2)],
    foldedHolds: [{ reservationId: 'cart', qty: 2 }],
    repeated: [],
    buyers: [],
  };
}

function hold(reservationId: string, qty: number, record: Partial<NonNullable<HoldCheck['record']>> | null = {}): HoldCheck {
  const expiresAt = 1_000;
  return {
    reservationId, qty, expiresAt,
    record: record === null ? null : { state: 'held', expiresAt, lineQty: qty, listed: true, ...record },
  };
}

const invariants = (item: VerifyItem): string[] => verifyItem(item).map((d) => d.invariant);

describe('verifyItem', () => {
  it('reports nothing for a sound SKU, one with no holds, and one whose hold record reads expired (not yet swept)', () => {
    expect(verifyItem(sound())).toEqual([]);
    const plain = counters(5, 0, 1);
    expect(verifyItem({ sku: 'B', stored: plain, folded: { ...plain }, holds: [], foldedHolds: [], repeated: [], buyers: [] })).toEqual([]);
    expect(verifyItem({ ...sound(), holds: [hold('cart', 2, { state: 'expired' })] })).toEqual([]);
  });

  it('fold: each counter that differs from the entries, with both sides and the SKU', () => {
    for (const key of ['onHand', 'reserved', 'version'] as const) {
      const item = sound();
      item.stored[key] += 1;
      const drift = verifyItem(item).filter((d) => d.invariant === 'fold');
      expect(drift).toHaveLength(1);
      expect(drift[0]).toMatchObject({ sku: 'A', expected: { ...sound().folded }, actual: { ...item.stored } });
      expect(drift[0]?.message).toContain(key);
    }
  });

  it('reservedNonNegative: a negative reserved, at -1 and not at 0', () => {
    const item = { ...sound(), stored: counters(8, -1, 3), holds: [], foldedHolds: [] };
    expect(verifyItem(item).find((d) => d.invariant === 'reservedNonNegative')).toMatchObject({ expected: 0, actual: -1 });
    const zero = { ...sound(), stored: counters(8, 0, 3), folded: counters(8, 0, 3), holds: [], foldedHolds: [] };
    expect(invariants(zero)).toEqual([]);
  });

  it('reservedWithinOnHand and available: reserved one above onHand, and not when equal', () => {
    const over = counters(2, 3, 3);
    const item: VerifyItem = { ...sound(), stored: over, folded: { ...over }, holds: [hold('cart', 3)], foldedHolds: [{ reservationId: 'cart', qty: 3 }] };
    expect(invariants(item).sort()).toEqual(['available', 'reservedWithinOnHand']);
    expect(verifyItem(item).find((d) => d.invariant === 'reservedWithinOnHand')).toMatchObject({ expected: 2, actual: 3 });
    expect(verifyItem(item).find((d) => d.invariant === 'available')).toMatchObject({ expected: 0, actual: -1 });
    expect(verifyItem(item).map((d) => d.message).sort()).toEqual(['available reads -1, below 0', 'reserved 3 is above onHand + backorderMax 2']);
    const equal = counters(3, 3, 3);
    expect(invariants({ ...item, stored: equal, folded: { ...equal } })).toEqual([]);
  });

  it('holdsSum: live holds that do not add up to reserved, either way', () => {
    expect(verifyItem({ ...sound(), holds: [hold('cart', 2), hold('other', 1)], foldedHolds: [{ reservationId: 'cart', qty: 2 }, { reservationId: 'other', qty: 1 }] }))
      .toMatchObject([{ invariant: 'holdsSum', expected: 2, actual: 3 }]);
    expect(verifyItem({ ...sound(), holds: [], foldedHolds: [] })).toMatchObject([{ invariant: 'holdsSum', expected: 2, actual: 0 }]);
  });

  it('holdEntries: a hold its entries do not know, one they still hold, and a quantity that differs', () => {
    const unknown = verifyItem({ ...sound(), foldedHolds: [] });
    expect(unknown).toMatchObject([{ invariant: 'holdEntries', expected: { reservationId: 'cart', qty: 0 }, actual: { reservationId: 'cart', qty: 2 } }]);
    const missing = verifyItem({ ...sound(), foldedHolds: [{ reservationId: 'cart', qty: 2 }, { reservationId: 'gone', qty: 1 }] });
    expect(missing).toMatchObject([{ invariant: 'holdEntries', expected: { reservationId: 'gone', qty: 1 }, actual: { reservationId: 'gone', qty: 0 } }]);
    const differs = verifyItem({ ...sound(), foldedHolds: [{ reservationId: 'cart', qty: 1 }] });
    expect(differs).toMatchObject([{ invariant: 'holdEntries', expected: { qty: 1 }, actual: { qty: 2 } }]);
    expect(differs[0]?.message).toContain('"cart"');
  });

  it('holdEntries keeps ids that differ by a separator apart', () => {
    const item: VerifyItem = {
      ...sound(), stored: counters(8, 3, 4), folded: counters(8, 3, 4),
      holds: [hold('a', 2), hold('a\u0000b', 1)],
      foldedHolds: [{ reservationId: 'a\u0000b', qty: 2 }, { reservationId: 'a', qty: 1 }],
    };
    expect(verifyItem(item).map((d) => [d.invariant, d.expected, d.actual])).toEqual([
      ['holdEntries', { reservationId: 'a\u0000b', qty: 2 }, { reservationId: 'a\u0000b', qty: 1 }],
      ['holdEntries', { reservationId: 'a', qty: 1 }, { reservationId: 'a', qty: 2 }],
    ]);
  });

  it('holdRecord: no record, a record in a final state, another quantity, not listed, another expiry; one item each', () => {
    const cases: Array<[NonNullable<HoldCheck['record']> | null | Partial<NonNullable<HoldCheck['record']>>, string]> = [
      [null, 'no reservation record'],
      [{ state: 'committed' }, 'state is committed'],
      [{ state: 'released' }, 'state is released'],
      [{ lineQty: 3 }, 'its lines hold 3'],
      [{ lineQty: null }, 'its lines hold null'],
      [{ listed: false }, 'does not list'],
      [{ expiresAt: 999 }, 'expires at 999'],
    ];
    for (const [record, words] of cases) {
      const drift = verifyItem({ ...sound(), holds: [hold('cart', 2, record as Partial<NonNullable<HoldCheck['record']>> | null)] });
      expect(drift.map((d) => d.invariant)).toEqual(['holdRecord']);
      expect(drift[0]?.message).toContain(words);
    }
    expect(verifyItem({ ...sound(), holds: [hold('cart', 2, null)] })).toMatchObject([{
      invariant: 'holdRecord', expected: { reservationId: 'cart', record: 'present' }, actual: { reservationId: 'cart', record: null },
      message: 'hold of "cart" has no reservation record',
    }]);
    expect(verifyItem({ ...sound(), holds: [hold('cart', 2, { state: 'committed', listed: false })] })[0]?.message)
      .toBe('hold of "cart": state is committed; its record does not list the hold');
    const two = verifyItem({ ...sound(), holds: [hold('cart', 2, { state: 'released', listed: false })] });
    expect(two).toHaveLength(1);
    expect(two[0]).toMatchObject({ actual: { state: 'released', listed: false }, expected: { state: 'held', listed: true } });
  });

  it('appliedOnce: one item per repeated request id and kind, with the count', () => {
    const drift = verifyItem({ ...sound(), repeated: [{ requestId: 'r1', kind: 'restock', count: 2 }, { requestId: 'cart', kind: 'expire', count: 3 }] });
    expect(drift.map((d) => [d.invariant, d.expected, d.actual])).toEqual([
      ['appliedOnce', { requestId: 'r1', kind: 'restock', entries: 1 }, { requestId: 'r1', kind: 'restock', entries: 2 }],
      ['appliedOnce', { requestId: 'cart', kind: 'expire', entries: 1 }, { requestId: 'cart', kind: 'expire', entries: 3 }],
    ]);
    expect(drift[0]?.message).toBe('2 restock entries of request "r1": applied more than once');
  });

  it('buyerTotals: one item per buyer whose stored total differs from the fold of its entries', () => {
    const drift = verifyItem({ ...sound(), buyers: [{ buyer: 'ann', stored: 2, folded: 2 }, { buyer: 'bea', stored: 3, folded: 1 }, { buyer: 'cy', stored: 0, folded: 1 }] });
    expect(drift.map((d) => [d.invariant, d.expected, d.actual])).toEqual([
      ['buyerTotals', { buyer: 'bea', taken: 1 }, { buyer: 'bea', taken: 3 }],
      ['buyerTotals', { buyer: 'cy', taken: 1 }, { buyer: 'cy', taken: 0 }],
    ]);
    expect(drift[0]?.message).toBe('buyer "bea" has 3 stored, its entries fold to 1');
  });

  it('reservedWithinOnHand and available count the backorder allowance', () => {
    const backordered = { onHand: -3, reserved: 2, version: 4, policy: { backorderMax: 5, lowStockAt: null, buyerMax: null } };
    expect(invariants({ ...sound(), stored: backordered, folded: { onHand: -3, reserved: 2, version: 4 }, holds: [hold('cart', 2)] })).toEqual([]);
    const over = { ...backordered, policy: { ...backordered.policy, backorderMax: 4 } };
    expect(invariants({ ...sound(), stored: over, folded: { onHand: -3, reserved: 2, version: 4 }, holds: [hold('cart', 2)] }))
      .toEqual(['reservedWithinOnHand', 'available']);
  });

  it('every drift item carries copies of both counters, so a caller may change them freely', () => {
    const item = sound();
    item.stored.onHand = 9;
    const [drift] = verifyItem(item);
    expect(drift).toMatchObject({ sku: 'A', invariant: 'fold', stored: { onHand: 9 }, folded: { onHand: 8 } });
    (drift as { stored: Counters }).stored.onHand = 100;
    expect(item.stored.onHand).toBe(9);
  });
});
