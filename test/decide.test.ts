/**
 * The core's pure decision (`decide`, in `stock-ledger/store`) on states no correct store can
 * reach: it must refuse to write counters that break an invariant rather than write them, and
 * it must report levels sorted by SKU whatever order it met them in.
 */
import { InvariantViolationError, LIMITS, type Counters } from 'stock-ledger';
import { decide, materialize, type Command, type StateView, type StoredRequest, type StoredReservation } from 'stock-ledger/store';
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
    buyerTaken: () => 0,
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

describe('decide writes only what it must', () => {
  const stocked = (): StateView => view({ counters: { A: { onHand: 1, reserved: 0, version: 1 } } });
  const deduct = (qty: number): Command => ({ kind: 'deduct', requestId: 'd', lines: [{ sku: 'A', qty }], given: null, meta: null, buyer: null, at: AT, fingerprint: `d${qty}` });

  it('a rejection with no due hold to expire writes nothing at all', () => {
    const decision = decide(deduct(2), stocked());
    expect(decision).toEqual({ outcome: { ok: false, code: 'INSUFFICIENT_STOCK', sku: 'A', requested: 2, available: 1 }, write: null });
  });

  it('a replayed commit or release writes nothing, unless it expired a due hold of another reservation first', () => {
    const committed: StoredReservation = {
      ...reservation('cart', [{ sku: 'A', qty: 1 }]), state: 'committed', holds: [], committed: [{ sku: 'A', qty: 1 }],
      outcome: { ok: true, replayed: false, entries: [], levels: [] },
    };
    const released: StoredReservation = { ...committed, id: 'gone', state: 'released', committed: null };
    const quiet = view({ counters: { A: { onHand: 4, reserved: 0, version: 3 } }, reservations: [committed, released] });
    expect(decide({ kind: 'commit', reservationId: 'cart', lines: null, at: AT }, quiet)).toMatchObject({ outcome: { replayed: true }, write: null });
    expect(decide(release('gone'), quiet)).toMatchObject({ outcome: { replayed: true }, write: null });
    const due = reservation('other', [{ sku: 'A', qty: 1 }], AT - 1);
    const busy = view({ counters: { A: { onHand: 4, reserved: 1, version: 3 } }, reservations: [committed, released, due] });
    for (const command of [{ kind: 'commit', reservationId: 'cart', lines: null, at: AT } as Command, release('gone')]) {
      const decision = decide(command, busy);
      expect(decision.outcome).toMatchObject({ ok: true, replayed: true });
      expect(decision.write?.steps.map((s) => [s.requestId, s.kind])).toEqual([['other', 'expire']]);
    }
  });

  it('a due hold whose reservation record is gone is skipped, by an operation and by a sweep', () => {
    const ghost = reservation('ghost', [{ sku: 'A', qty: 1 }], AT - 1);
    const base = view({ counters: { A: { onHand: 5, reserved: 1, version: 2 } }, reservations: [ghost] });
    const state: StateView = { ...base, reservation: () => null };
    expect(decide(deduct(1), state).write?.steps.map((s) => s.kind)).toEqual(['deduct']);
    expect(decide({ kind: 'sweep', limit: 10, at: AT }, state).write?.steps).toEqual([]);
  });

  it('a reservation that expires on two SKUs is listed as expired once', () => {
    const two = reservation('cart', [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }], AT - 1);
    const state = view({ counters: { A: { onHand: 5, reserved: 1, version: 2 }, B: { onHand: 5, reserved: 1, version: 2 } }, reservations: [two] });
    const decision = decide({ kind: 'deduct', requestId: 'd', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }], given: null, meta: null, buyer: null, at: AT, fingerprint: 'f' }, state);
    expect(decision.write?.expired).toEqual(['cart']);
    expect(decision.write?.holdsEnded).toEqual([{ reservationId: 'cart', sku: 'A' }, { reservationId: 'cart', sku: 'B' }]);
  });

  it('a sweep outcome is never a replay, and lists every expiry it wrote', () => {
    const state = view({ counters: { A: { onHand: 5, reserved: 1, version: 2 } }, reservations: [reservation('r1', [{ sku: 'A', qty: 1 }], AT - 1)] });
    const decision = decide({ kind: 'sweep', limit: 10, at: AT }, state);
    const { outcome } = materialize(decision.write as NonNullable<typeof decision.write>, 7);
    expect(outcome).toMatchObject({ ok: true, replayed: false, expired: 1, more: false, entries: [{ seq: 7, requestId: 'r1', kind: 'expire' }] });
  });

  it('buyer totals of one write: one item per (SKU, buyer), each ending where the steps leave it, from the stored totals', () => {
    const ann = { ...reservation('ra', [{ sku: 'A', qty: 2 }], AT - 1), buyer: 'ann' };
    const bea = { ...reservation('rb', [{ sku: 'A', qty: 1 }], AT - 1), buyer: 'bea' };
    const base = view({ counters: { A: { onHand: 9, reserved: 3, version: 4 } }, reservations: [ann, bea] });
    const stored: Record<string, number> = { ann: 5, bea: 1 };
    const state: StateView = { ...base, buyerTaken: (sku, buyer) => (sku === 'A' ? (stored[buyer] ?? 0) : 0) };
    const decision = decide({ kind: 'deduct', requestId: 'd', lines: [{ sku: 'A', qty: 1 }], given: null, meta: null, buyer: 'ann', at: AT, fingerprint: 'f' }, state);
    // ann's hold of 2 expires (5 -> 3), bea's of 1 (1 -> 0), then ann buys 1 (3 -> 4).
    expect(decision.write?.buyerTotals).toEqual([{ sku: 'A', buyer: 'ann', taken: 4 }, { sku: 'A', buyer: 'bea', taken: 0 }]);
    expect(decision.write?.steps.map((s) => [s.kind, s.buyer])).toEqual([['expire', 'ann'], ['expire', 'bea'], ['deduct', 'ann']]);
  });
});

describe('decide: amend', () => {
  it('ends the holds of the SKUs it drops, and only those; the kept and the new ones come in `amended`', () => {
    const cart = reservation('cart', [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }]);
    const state = view({
      counters: { A: { onHand: 5, reserved: 2, version: 2 }, B: { onHand: 5, reserved: 1, version: 2 }, C: { onHand: 5, reserved: 0, version: 1 } },
      reservations: [cart],
    });
    const command: Command = {
      kind: 'amend', requestId: 'v2', reservationId: 'cart', lines: [{ sku: 'A', qty: 3 }, { sku: 'C', qty: 1 }], given: null, meta: null, at: AT, fingerprint: 'f',
    };
    const write = decide(command, state).write;
    expect(write?.holdsEnded).toEqual([{ reservationId: 'cart', sku: 'B' }]);
    expect(write?.amended).toMatchObject({ id: 'cart', lines: [{ sku: 'A', qty: 3 }, { sku: 'C', qty: 1 }], holds: ['A', 'C'], expiresAt: cart.expiresAt });
    expect(write?.steps.map((s) => [s.kind, s.reservationId, s.changes.map((c) => [c.sku, c.reservedDelta])])).toEqual([
      ['amend', 'cart', [['A', 1], ['B', -1], ['C', 1]]],
    ]);
  });
});

describe('decide: restock and adjust lines', () => {
  const base = { requestId: 'bulk', meta: null, at: AT, fingerprint: 'f' };
  const cart = reservation('cart', [{ sku: 'A', qty: 2 }, { sku: 'C', qty: 1 }], AT);

  it('a purchase order expires the due holds of all its SKUs first, then writes one restock entry per SKU', () => {
    const state = view({ counters: { A: { onHand: 5, reserved: 2, version: 2 }, C: { onHand: 1, reserved: 1, version: 1 } }, reservations: [cart] });
    const { write } = decide({ ...base, kind: 'restock', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }, { sku: 'C', qty: 3 }] }, state);
    expect(write?.steps.map((s) => [s.kind, s.changes.map((c) => [c.sku, c.onHandDelta, c.reservedDelta])])).toEqual([
      ['expire', [['A', 0, -2]]], ['expire', [['C', 0, -1]]], ['restock', [['A', 1, 0], ['B', 2, 0], ['C', 3, 0]]],
    ]);
    expect(write?.levels.map((l) => [l.sku, l.onHand, l.reserved])).toEqual([['A', 6, 0], ['B', 2, 0], ['C', 4, 0]]);
  });

  it('the first line in SKU order past the quantity limit refuses all, after the expiries', () => {
    const state = view({ counters: { A: { onHand: 5, reserved: 2, version: 2 }, B: { onHand: LIMITS.quantityMax, reserved: 0, version: 1 }, C: { onHand: 1, reserved: 1, version: 1 } }, reservations: [cart] });
    const { outcome, write } = decide({ ...base, kind: 'restock', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }, { sku: 'C', qty: LIMITS.quantityMax }] }, state);
    expect(outcome).toEqual({ ok: false, code: 'QUANTITY_LIMIT', sku: 'B', requested: 2, onHand: LIMITS.quantityMax, limit: LIMITS.quantityMax });
    expect(write?.request).toBeNull();
    expect(write?.steps.map((s) => s.kind)).toEqual(['expire', 'expire']);
  });

  it('a stocktake checks every line in SKU order and writes one adjust entry per line, a zero delta too', () => {
    const state = view({ counters: { A: { onHand: 5, reserved: 0, version: 2 }, B: { onHand: 3, reserved: 2, version: 7 } } });
    const counts = [{ sku: 'A', onHand: 5, expectedVersion: 2 }, { sku: 'B', onHand: 1, expectedVersion: 7 }];
    expect(decide({ ...base, kind: 'adjust', lines: counts }, state).outcome).toMatchObject({ code: 'BELOW_RESERVED', sku: 'B', requested: 1 });
    const stale = [{ sku: 'A', onHand: 5, expectedVersion: 1 }, { sku: 'B', onHand: 1, expectedVersion: 7 }];
    expect(decide({ ...base, kind: 'adjust', lines: stale }, state).outcome).toMatchObject({ code: 'VERSION_CONFLICT', sku: 'A', expectedVersion: 1 });
    const { write } = decide({ ...base, kind: 'adjust', lines: [{ sku: 'A', onHand: 5, expectedVersion: null }, { sku: 'B', onHand: 2, expectedVersion: 7 }] }, state);
    expect(write?.steps[0]?.changes.map((c) => [c.sku, c.onHandDelta, c.after.version])).toEqual([['A', 0, 3], ['B', -1, 8]]);
  });
});
