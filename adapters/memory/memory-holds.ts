import { compareCodePoints } from '../../src/store-kit.js';

/** One hold in the due index. */
export interface HoldItem {
  expiresAt: number;
  reservationId: string;
  sku: string;
  qty: number;
}

/** Expiry order, ties broken by code point (the order of the SQLite store's index). */
function before(a: HoldItem, b: HoldItem): boolean {
  if (a.expiresAt !== b.expiresAt) return a.expiresAt < b.expiresAt;
  if (a.reservationId !== b.reservationId) return compareCodePoints(a.reservationId, b.reservationId) < 0;
  return compareCodePoints(a.sku, b.sku) < 0;
}

/**
 * Holds sorted by expiry (then reservation id and SKU), so the due ones are a prefix: finding
 * them costs what they are, not what is held.
 */
export class HoldIndex {
  readonly #items: HoldItem[] = [];

  /** Position where `item` is or would go. */
  #position(item: HoldItem): number {
    let lo = 0;
    let hi = this.#items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.#items[mid] as HoldItem, item)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  add(item: HoldItem): void {
    this.#items.splice(this.#position(item), 0, item);
  }

  remove(item: HoldItem): void {
    const at = this.#position(item);
    const found = this.#items[at];
    if (found !== undefined && found.reservationId === item.reservationId && found.sku === item.sku) this.#items.splice(at, 1);
  }

  /** Holds with `expiresAt <= now`, soonest first, at most `limit`. */
  due(now: number, limit: number): HoldItem[] {
    const out: HoldItem[] = [];
    for (const item of this.#items) {
      if (item.expiresAt > now || out.length >= limit) break;
      out.push(item);
    }
    return out;
  }

  /** Units and count of the holds due at `now`. */
  dueTotals(now: number): { qty: number; count: number } {
    let qty = 0;
    let count = 0;
    for (const item of this.#items) {
      if (item.expiresAt > now) break;
      qty += item.qty;
      count += 1;
    }
    return { qty, count };
  }

  /**
   * Holds with `expiresAt > now` that come after `after` (by expiry, then reservation id), at
   * most `limit`: found by binary search, so a page costs what it returns.
   */
  live(now: number, after: { expiresAt: number; reservationId: string } | null, limit: number): HoldItem[] {
    // '' sorts before every id and SKU: the probes land on the first hold at or past them.
    let at = this.#position({ expiresAt: now + 1, reservationId: '', sku: '', qty: 0 });
    if (after !== null) at = Math.max(at, this.#position({ expiresAt: after.expiresAt, reservationId: after.reservationId, sku: '', qty: 0 }));
    const out: HoldItem[] = [];
    for (; at < this.#items.length && out.length < limit; at += 1) {
      const item = this.#items[at] as HoldItem;
      if (after !== null && item.expiresAt === after.expiresAt && item.reservationId === after.reservationId) continue;
      out.push(item);
    }
    return out;
  }

  /** Every hold, in expiry order (a read-only view: verify walks it). */
  items(): readonly HoldItem[] {
    return this.#items;
  }

  get size(): number {
    return this.#items.length;
  }
}
