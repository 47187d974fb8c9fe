import { levelOf } from './decide.js';
import type { HoldCheck, VerifyItem } from './store.js';
import type { Counters, Drift, Invariant, JsonValue } from './types.js';

/**
 * Every broken invariant of one SKU (see {@link Invariant}), one drift item each; empty when
 * the SKU is sound. `verify()` runs it on every SKU, and the conformance kit on what it reads.
 *
 * @example
 * ```ts
 * const c = { onHand: 1, reserved: 0, version: 1 };
 * verifyItem({ sku: 'A', stored: c, folded: c, holds: [], foldedHolds: [], repeated: [] }).length === 0;
 * ```
 */
export function verifyItem(item: VerifyItem): Drift[] {
  const drift: Drift[] = [];
  const report = (invariant: Invariant, expected: JsonValue, actual: JsonValue, message: string): void => {
    drift.push({ sku: item.sku, invariant, expected, actual, message, stored: { ...item.stored }, folded: { ...item.folded } });
  };
  checkCounters(item, report);
  checkHolds(item, report);
  for (const { buyer, stored, folded } of item.buyers) {
    if (stored !== folded) {
      report('buyerTotals', { buyer, taken: folded }, { buyer, taken: stored }, `buyer ${JSON.stringify(buyer)} has ${stored} stored, its entries fold to ${folded}`);
    }
  }
  for (const { requestId, kind, count } of item.repeated) {
    report('appliedOnce', { requestId, kind, entries: 1 }, { requestId, kind, entries: count },
      `${count} ${kind} entries of request ${JSON.stringify(requestId)}: applied more than once`);
  }
  return drift;
}

type Report = (invariant: Invariant, expected: JsonValue, actual: JsonValue, message: string) => void;

function checkCounters(item: VerifyItem, report: Report): void {
  const { stored, folded } = item;
  if (stored.onHand !== folded.onHand || stored.reserved !== folded.reserved || stored.version !== folded.version) {
    const plain = (c: Counters): JsonValue => ({ onHand: c.onHand, reserved: c.reserved, version: c.version });
    report('fold', plain(folded), plain(stored), `stored ${show(stored)}, entries fold to ${show(folded)}`);
  }
  if (stored.reserved < 0) report('reservedNonNegative', 0, stored.reserved, `reserved is ${stored.reserved}, below 0`);
  const ceiling = stored.onHand + (stored.policy?.backorderMax ?? 0);
  if (stored.reserved > ceiling) {
    report('reservedWithinOnHand', ceiling, stored.reserved, `reserved ${stored.reserved} is above onHand + backorderMax ${ceiling}`);
  }
  // What reads report: levelOf is the one place that computes available from the counters.
  const { available } = levelOf(item.sku, stored);
  if (available < 0) report('available', 0, available, `available reads ${available}, below 0`);
}

function checkHolds(item: VerifyItem, report: Report): void {
  const live = item.holds.reduce((sum, h) => sum + h.qty, 0);
  if (live !== item.stored.reserved) {
    report('holdsSum', item.stored.reserved, live, `live holds sum to ${live}, reserved is ${item.stored.reserved}`);
  }
  const fromEntries = new Map(item.foldedHolds.map((h) => [h.reservationId, h.qty]));
  const stored = new Map<string, number>();
  for (const hold of item.holds) {
    stored.set(hold.reservationId, (stored.get(hold.reservationId) ?? 0) + hold.qty);
    checkRecord(hold, report);
  }
  for (const id of new Set([...fromEntries.keys(), ...stored.keys()])) {
    const expected = fromEntries.get(id) ?? 0;
    const actual = stored.get(id) ?? 0;
    if (expected !== actual) {
      report('holdEntries', { reservationId: id, qty: expected }, { reservationId: id, qty: actual },
        `reservation ${JSON.stringify(id)} holds ${actual}, its entries say ${expected}`);
    }
  }
}

function checkRecord(hold: HoldCheck, report: Report): void {
  const { record } = hold;
  const id = JSON.stringify(hold.reservationId);
  if (record === null) {
    report('holdRecord', { reservationId: hold.reservationId, record: 'present' }, { reservationId: hold.reservationId, record: null }, `hold of ${id} has no reservation record`);
    return;
  }
  const wrong: string[] = [];
  if (record.state !== 'held' && record.state !== 'expired') wrong.push(`state is ${record.state}`);
  if (record.lineQty !== hold.qty) wrong.push(`its lines hold ${String(record.lineQty)}, the hold ${hold.qty}`);
  if (!record.listed) wrong.push('its record does not list the hold');
  if (record.expiresAt !== hold.expiresAt) wrong.push(`it expires at ${record.expiresAt}, the hold at ${hold.expiresAt}`);
  if (wrong.length === 0) return;
  report('holdRecord',
    { reservationId: hold.reservationId, state: 'held', qty: hold.qty, listed: true, expiresAt: hold.expiresAt },
    { reservationId: hold.reservationId, state: record.state, qty: record.lineQty, listed: record.listed, expiresAt: record.expiresAt },
    `hold of ${id}: ${wrong.join('; ')}`);
}

function show(c: Counters): string {
  return `onHand ${c.onHand}, reserved ${c.reserved}, version ${c.version}`;
}
