import type { VerifyItem } from './store.js';
import type { Drift } from './types.js';

/**
 * The drift of one SKU, or null when its stored counters equal its folded entries and keep
 * `0 <= reserved <= onHand`.
 *
 * @example
 * ```ts
 * verifyItem({ sku: 'A', stored: { onHand: 1, reserved: 0, version: 1 }, folded: { onHand: 1, reserved: 0, version: 1 } }) === null;
 * ```
 */
export function verifyItem(item: VerifyItem): Drift | null {
  const { stored, folded } = item;
  const problems: string[] = [];
  for (const key of ['onHand', 'reserved', 'version'] as const) {
    if (stored[key] !== folded[key]) problems.push(`${key}: stored ${stored[key]}, entries fold to ${folded[key]}`);
  }
  if (stored.reserved < 0) problems.push('reserved is negative');
  if (stored.onHand < stored.reserved) problems.push('onHand is below reserved');
  return problems.length === 0 ? null : { sku: item.sku, stored, folded, problems };
}
