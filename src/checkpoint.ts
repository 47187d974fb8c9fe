import type { StoredReservation, VerifyItem } from './store.js';
import type { Entry } from './types.js';

/**
 * What a SKU's compacted entries folded to: the part of `verify()`'s fold that no longer has
 * entries behind it. Holds and buyers keep only non-zero sums.
 */
export interface Checkpoint {
  onHand: number;
  reserved: number;
  version: number;
  /** Per reservation, the `reservedDelta`s of its compacted entries on the SKU, summed. */
  holds: Map<string, number>;
  /** Per buyer, `reservedDelta - onHandDelta` of its compacted entries on the SKU, summed. */
  buyers: Map<string, number>;
}

/**
 * A checkpoint with nothing folded into it.
 *
 * @example
 * ```ts
 * const cp = emptyCheckpoint();
 * for (const e of oldEntries) foldIntoCheckpoint(cp, e);
 * ```
 */
export function emptyCheckpoint(): Checkpoint {
  return { onHand: 0, reserved: 0, version: 0, holds: new Map(), buyers: new Map() };
}

/**
 * Folds one entry of the SKU into its checkpoint, the way `verify()` folds entries.
 *
 * @example
 * ```ts
 * foldIntoCheckpoint(cp, entry); // before deleting the entry, in the same atomic step
 * ```
 */
export function foldIntoCheckpoint(cp: Checkpoint, entry: Entry): void {
  cp.onHand += entry.onHandDelta;
  cp.reserved += entry.reservedDelta;
  cp.version += 1;
  if (entry.reservedDelta !== 0) addTo(cp.holds, holderOf(entry), entry.reservedDelta);
  if (entry.buyer !== undefined) addTo(cp.buyers, entry.buyer, entry.reservedDelta - entry.onHandDelta);
}

/**
 * The reservation whose hold an entry changes: its `reservationId` (an amend), else its
 * request id (a reserve, commit, release or expire entry carries the reservation's id).
 *
 * @example
 * ```ts
 * holderOf({ kind: 'amend', requestId: 'a1', reservationId: 'cart-1', ... }) === 'cart-1';
 * ```
 */
export function holderOf(entry: Pick<Entry, 'requestId' | 'reservationId'>): string {
  return entry.reservationId ?? entry.requestId;
}

/**
 * The reservation an entry belongs to, if any: what pins it against compaction while held.
 *
 * @example
 * ```ts
 * reservationOf({ kind: 'deduct', requestId: 'o1' }) === null;
 * ```
 */
export function reservationOf(entry: Pick<Entry, 'kind' | 'requestId' | 'reservationId'>): string | null {
  if (entry.reservationId !== undefined) return entry.reservationId;
  return RESERVATION_KINDS.has(entry.kind) ? entry.requestId : null;
}

const RESERVATION_KINDS: ReadonlySet<string> = new Set(['reserve', 'commit', 'release', 'expire']);

/**
 * Whether a reservation is over for good: not held and no live hold left. Only then may
 * compaction take its entries; its record goes with the entry that ended it.
 *
 * @example
 * ```ts
 * if (reservation === null || isSettled(reservation)) dropEntry();
 * ```
 */
export function isSettled(reservation: Pick<StoredReservation, 'state' | 'holds'>): boolean {
  return reservation.state !== 'held' && reservation.holds.length === 0;
}

/**
 * Whether an entry ends (part of) a reservation: a commit, release or expire entry. When
 * compaction takes one and the reservation is settled, the reservation's record, its reserve's
 * request record and its reversal tally go with it: the end is then older than the window, so
 * no retry inside the window can need them.
 *
 * @example
 * ```ts
 * if (endsReservation(entry) && isSettled(reservation)) dropReservation(entry.requestId);
 * ```
 */
export function endsReservation(entry: Pick<Entry, 'kind'>): boolean {
  return entry.kind === 'commit' || entry.kind === 'release' || entry.kind === 'expire';
}

/**
 * Whether an entry's request record is its own to drop with it (restock, deduct, adjust,
 * reverse, policy, amend); a reserve's record goes with its reservation, commit, release and
 * expire entries have none of their own.
 *
 * @example
 * ```ts
 * if (ownsRecord(entry)) deleteRequest(entry.requestId);
 * ```
 */
export function ownsRecord(entry: Pick<Entry, 'kind'>): boolean {
  return !RESERVATION_KINDS.has(entry.kind);
}

/**
 * A verify item's fold of the kept entries, with the checkpoint of the compacted ones added.
 *
 * @example
 * ```ts
 * return { sku, stored, holds, ...withCheckpoint(foldOfKeptEntries, checkpointOf(sku)) };
 * ```
 */
export function withCheckpoint(
  fold: Pick<VerifyItem, 'folded' | 'foldedHolds' | 'buyers'>,
  cp: Checkpoint | null,
): Pick<VerifyItem, 'folded' | 'foldedHolds' | 'buyers'> {
  if (cp === null) return fold;
  const folded = { ...fold.folded, onHand: fold.folded.onHand + cp.onHand, reserved: fold.folded.reserved + cp.reserved, version: fold.folded.version + cp.version };
  const holds = new Map(cp.holds);
  for (const h of fold.foldedHolds) addTo(holds, h.reservationId, h.qty);
  const foldedHolds = [...holds].filter(([, qty]) => qty !== 0).map(([reservationId, qty]) => ({ reservationId, qty }));
  const buyers = new Map(fold.buyers.map((b) => [b.buyer, { ...b }]));
  for (const [buyer, taken] of cp.buyers) {
    const b = buyers.get(buyer) ?? { buyer, stored: 0, folded: 0 };
    buyers.set(buyer, { ...b, folded: b.folded + taken });
  }
  return { folded, foldedHolds, buyers: [...buyers.values()].filter((b) => b.stored !== 0 || b.folded !== 0) };
}

function addTo(map: Map<string, number>, key: string, qty: number): void {
  const sum = (map.get(key) ?? 0) + qty;
  if (sum === 0) map.delete(key);
  else map.set(key, sum);
}
