/**
 * The core's pure decision (`decide`, in `stock-ledger/store`) on states no correct store can
 * reach: it must refuse to write counters that break an invariant rather than write them, and
 * it must report levels sorted by SKU whatever order it met them in.
 */
import { InvariantViolationError, LIMITS, type Counters } from 'stock-ledger';
import { decide, type Command, type StateView, type StoredRequest, type StoredReservation } from 'stock-ledger/store';
import { describe, expect, it } from 'vitest';

const AT = 1_000_000;

function reservation(id: string, lines: Array<{ sku: string; qty: number }>, expiresAt = AT + 60_000): StoredReservation {
  return { id, state: 'held', lines, expiresAt, createdAt: AT - 1, committed: null, holds: lines.map((l) => l.sku), outcome: null };
}

/** A view over fixed counters, requests and reservations; due holds from the reservations. */
function view(state: { counters?: Record<string, Counters>; requests?: StoredRequest[]; reservations?: StoredReservation[] }): StateView {
  const reservations = state.reservations ?? [];
  const due = (now: number): Array<{ reservationId: string; sku: string; expiresAt: number }> =>
    reservations.flatMap((r) => r.holds.map((sku) => ({ reservationId: r.id, sku, expiresAt: r.expiresAt })))
      .filter((h) => h.expiresAt <= now)
      .sort((a, b) => a.expiresAt - b.expiresAt);
  return {
    counters: (sku) => ({ ...(state.counters?.[sku] ?? { onHand: 0, reserved: 0, version: 0 }) }),
    request: (id) => state.requests?.find((r) => r.requestId === id) ?? null,
    reversed: () => 0,
    reservation: (id) => reservations.find((r) => r.id === id) ?? null,
    dueHolds: (sku, now, limit) => due(now).filter((h) => h.sku === sku).slice(0, limit).map((h) => h.reservationId),
    dueAnywhere: (now, limit) => due(now).slice(0, limit).map(({ reservationId, sku }) => ({ reservationId, sku })),
  };
}

const release = (reservationId: string): Command => ({ kind: 'release', reservationId, at: AT });

describe('decide refuses to write counters that break an invariant', () => {
  it('reserved below zero (a hold larger than what is reserved)', () => {
    const state = view({ counters: { A: { onHand: 10, reserved: 1, version: 2 } }, reservations: [reservation('cart', [{ sku: 'A', qty: 3 }])] });
    expect(() => decide(release('cart'), state)).toThrow(InvariantViolationError);
    expect(() => decide(release('cart'), state)).toThrow(/"A" would reach onHand 10, reserved -2/);
  });

  it('onHand below reserved (a reversal onto a SKU that holds more than it has)', () => {
    const deducted: StoredRequest = {
      requestId: 'order', kind: 'deduct', fingerprint: 'f', at: AT - 5,
      outcome: { ok: true, replayed: false, levels: [], entries: [{ seq: 1, requestId: 'order', kind: 'deduct', sku: 'A', onHandDelta: -1, reservedDelta: 0, onHandAfter: 0, reservedAfter: 0, at: AT - 5 }] },
    };
    const state = view({ counters: { A: { onHand: 1, reserved: 5, version: 3 } }, requests: [deducted] });
    const reverse: Command = { kind: 'reverse', requestId: 'refund', of: 'order', lines: null, meta: null, at: AT, fingerprint: 'r' };
    expect(() => decide(reverse, state)).toThrow(/"A" would reach onHand 2, reserved 5/);
  });

  it('onHand above the quantity limit (a release on a SKU already past it)', () => {
    const state = view({
      counters: { A: { onHand: LIMITS.quantityMax + 5, reserved: 3, version: 2 } }, reservations: [reservation('cart', [{ sku: 'A', qty: 3 }])],
    });
    expect(() => decide(release('cart'), state)).toThrow(InvariantViolationError);
    const within = view({ counters: { A: { onHand: LIMITS.quantityMax, reserved: 3, version: 2 } }, reservations: [reservation('cart', [{ sku: 'A', qty: 3 }])] });
    expect(decide(release('cart'), within).write?.steps[0]?.changes[0]?.after).toEqual({ onHand: LIMITS.quantityMax, reserved: 0, version: 3 });
  });

  it('a released reservation with no stored outcome is a broken record, not a replay', () => {
    const released = { ...reservation('cart', [{ sku: 'A', qty: 1 }]), state: 'released' as const, holds: [] };
    const state = view({ counters: { A: { onHand: 5, reserved: 0, version: 3 } }, reservations: [released] });
    expect(() => decide(release('cart'), state)).toThrow(/released reservation "cart" has no outcome/);
  });
});

describe('decide reports levels sorted by SKU', () => {
  it('a sweep that meets due holds of B before A reports A, then B, and expires both', () => {
    const state = view({
      counters: { A: { onHand: 5, reserved: 1, version: 2 }, B: { onHand: 5, reserved: 1, version: 2 } },
      reservations: [reservation('early', [{ sku: 'B', qty: 1 }], AT - 20), reservation('late', [{ sku: 'A', qty: 1 }], AT - 10)],
    });
    const decision = decide({ kind: 'sweep', limit: 10, at: AT }, state);
    expect(decision.write?.steps.map((s) => [s.requestId, s.changes[0]?.sku])).toEqual([['early', 'B'], ['late', 'A']]);
    expect(decision.write?.levels.map((l) => l.sku)).toEqual(['A', 'B']);
    expect(decision.write?.holdsEnded).toEqual([{ reservationId: 'early', sku: 'B' }, { reservationId: 'late', sku: 'A' }]);
    expect(decision.write?.expired).toEqual(['early', 'late']);
    expect(decision.write?.sweep).toEqual({ more: false });
  });

  it('a sweep with more due holds than its limit says so and expires the soonest', () => {
    const state = view({
      counters: { A: { onHand: 5, reserved: 3, version: 2 } },
      reservations: [1, 2, 3].map((i) => reservation(`r${i}`, [{ sku: 'A', qty: 1 }], AT - 10 * i)),
    });
    const decision = decide({ kind: 'sweep', limit: 2, at: AT }, state);
    expect(decision.write?.sweep).toEqual({ more: true });
    expect(decision.write?.steps.map((s) => s.requestId)).toEqual(['r3', 'r2']);
    expect(decision.write?.levels).toEqual([{ sku: 'A', onHand: 5, reserved: 1, available: 4, version: 4 }]);
  });
});
