import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type JsonObject } from 'stock-ledger';
import { canonicalJson, compareCodePoints, fingerprint } from 'stock-ledger/store';
import { toAdjust, toDeduct, toReserve, toRestock, toReverse, toRevoke } from '../src/validate.js';

const sku = fc.string({ minLength: 1, maxLength: 12, unit: 'binary' }).filter((s) => s.isWellFormed());
const qty = fc.integer({ min: 1, max: 1000 });
const line = fc.record({ sku, qty });
const meta = fc.option(
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.boolean(), fc.constant(null)), { maxKeys: 4 }),
  { nil: undefined },
);
const linesOf = (lines: Array<{ sku: string; qty: number }>): Array<[string, number]> => lines.map((l) => [l.sku, l.qty]);

describe('fingerprints', () => {
  it('written directly, they equal the canonical JSON of the normalized payload', () => {
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 5 }), meta, fc.integer({ min: 1, max: 10 ** 6 }), (lines, m, ttlMs) => {
        const at = 1000;
        const metaValue = (m ?? null) as JsonObject | null;
        const withMeta = <T extends object>(input: T): T => (m === undefined ? input : { ...input, meta: m });
        const deduct = toDeduct(withMeta({ requestId: 'r', lines }), at);
        expect(deduct.fingerprint).toBe(fingerprint(canonicalJson(['deduct', linesOf(deduct.lines), metaValue])));
        const reserve = toReserve(withMeta({ requestId: 'r', lines, ttlMs }), at);
        expect(reserve.fingerprint).toBe(fingerprint(canonicalJson(['reserve', linesOf(reserve.lines), ttlMs, metaValue])));
        const first = lines[0] as { sku: string; qty: number };
        const restock = toRestock(withMeta({ requestId: 'r', sku: first.sku, qty: first.qty }), at);
        expect(restock.fingerprint).toBe(fingerprint(canonicalJson(['restock', first.sku, first.qty, metaValue])));
        const adjust = toAdjust(withMeta({ requestId: 'r', sku: first.sku, onHand: first.qty, expectedVersion: 3 }), at);
        expect(adjust.fingerprint).toBe(fingerprint(canonicalJson(['adjust', first.sku, first.qty, 3, metaValue])));
        const reverse = toReverse(withMeta({ requestId: 'r', of: 'o', lines }), at);
        expect(reverse.fingerprint).toBe(fingerprint(canonicalJson(['reverse', 'o', linesOf(reverse.lines ?? []), metaValue])));
        const revoke = toRevoke(withMeta({ requestId: 'r' }), at);
        expect(revoke.fingerprint).toBe(fingerprint(canonicalJson(['revoke', metaValue])));
      }),
    );
  });

  it('does not depend on the order of meta keys, and differs when the payload does', () => {
    const a = toDeduct({ requestId: 'r', sku: 'A', qty: 1, meta: { x: 1, y: [1, { b: 2, a: 1 }] } }, 0);
    const b = toDeduct({ requestId: 'r', sku: 'A', qty: 1, meta: { y: [1, { a: 1, b: 2 }], x: 1 } }, 0);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(toDeduct({ requestId: 'r', sku: 'A', qty: 2 }, 0).fingerprint).not.toBe(a.fingerprint);
  });

  it('a revoke is told apart by its meta alone, in any key order, and never equals another kind', () => {
    const a = toRevoke({ requestId: 'r', meta: { why: 'cancelled', by: 'ops' } }, 0);
    expect(toRevoke({ requestId: 'r', meta: { by: 'ops', why: 'cancelled' } }, 5).fingerprint).toBe(a.fingerprint);
    expect(toRevoke({ requestId: 'other', meta: { why: 'cancelled', by: 'ops' } }, 0).fingerprint).toBe(a.fingerprint);
    expect(toRevoke({ requestId: 'r' }, 0).fingerprint).not.toBe(a.fingerprint);
    expect(toRevoke({ requestId: 'r', meta: {} }, 0).fingerprint).not.toBe(toRevoke({ requestId: 'r' }, 0).fingerprint);
    expect(toRevoke({ requestId: 'r' }, 0)).toMatchObject({ kind: 'revoke', requestId: 'r', meta: null, at: 0 });
  });

  it('long payloads are stored as a digest that cannot collide with inline JSON', () => {
    const long = toDeduct({ requestId: 'r', sku: 'A'.repeat(200), qty: 1, meta: { note: 'x'.repeat(200) } }, 0);
    expect(long.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe('compareCodePoints', () => {
  it('orders strings exactly as their UTF-8 bytes (the order SQLite keeps text in)', () => {
    const text = fc.string({ maxLength: 6, unit: 'binary' }).filter((s) => s.isWellFormed());
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(Math.sign(compareCodePoints(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
      { numRuns: 2000 },
    );
    expect(compareCodePoints('😀', 'ｘ')).toBeGreaterThan(0);
    expect('😀' < 'ｘ').toBe(true);
  });
});
