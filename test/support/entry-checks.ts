import type { Entry } from 'stock-ledger';
import { expect } from 'vitest';

/**
 * What every fault test checks of a ledger's whole entry list: `seq` grows by one per entry
 * (a lost or rolled-back write leaves no gap), and at most one entry per (requestId, kind,
 * SKU): nothing applied twice.
 *
 * @example
 * expectEntriesOnce(await readAllEntries(ledger));
 */
export function expectEntriesOnce(entries: readonly Entry[]): void {
  expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
  const keys = new Set<string>();
  for (const e of entries) {
    const key = JSON.stringify([e.requestId, e.kind, e.sku]);
    expect(keys.has(key), `entry ${key} appears twice`).toBe(false);
    keys.add(key);
  }
}
