import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LIMITS, type JsonObject } from 'stock-ledger';
import { byCodeUnits, canonicalJson, compareCodePoints, fingerprint } from 'stock-ledger/store';
import { toAdjust, toDeduct, toReserve, toRestock, toReverse, toRevoke, toSetPolicy } from '../src/validate.js';

const sku = fc.string({ minLength: 1, maxLength: 12, unit: 'binary' }).filter((s) => s.isWellFormed());
const qty = fc.integer({ min: 1, max: 1000 });
const line = fc.record({ sku, qty });
const meta = fc.option(
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.boolean(), fc.constant(null)), { maxKeys: 4 }),
  { nil: undefined },
);
const linesOf = (lines: Array<{ sku: string; qty: number }>): Array<[string, number]> => lines.map((l) => [l.sku, l.qty]);

describe('fingerprints', () => {
  it('are pinned for setPolicy and for a buyer: they are stored, so a change would turn replays into conflicts after an upgrade', () => {
    expect(toSetPolicy({ requestId: 'p', sku: 'A', backorderMax: 5 }, 1).fingerprint).toBe(fingerprint('["policy","A",5,"keep","keep",null]'));
    expect(toSetPolicy({ requestId: 'p', sku: 'A', lowStockAt: null, buyerMax: 2, meta: { b: 1, a: 2 } }, 1).fingerprint)
      .toBe(fingerprint('["policy","A","keep",null,2,{"a":2,"b":1}]'));
    expect(toSetPolicy({ requestId: 'p', sku: 'A', backorderMax: null }, 1).fingerprint).toBe(toSetPolicy({ requestId: 'p', sku: 'A', backorderMax: 0 }, 1).fingerprint);
    expect(toDeduct({ requestId: 'd', sku: 'A', qty: 1, buyer: 'ann' }, 1).fingerprint).toBe(fingerprint('["deduct",[["A",1]],null,"ann"]'));
    // No buyer: the fingerprint every deduct and reserve had before buyers existed.
    expect(toDeduct({ requestId: 'd', sku: 'A', qty: 1 }, 1).fingerprint).toBe(fingerprint('["deduct",[["A",1]],null]'));
    expect(toReserve({ requestId: 'r', lines: [{ sku: 'A', qty: 1 }], ttlMs: 9, buyer: 'ann' }, 1).fingerprint).toBe(fingerprint('["reserve",[["A",1]],9,null,"ann"]'));
  });

  it('are pinned for restock and adjust lines: one line is the one-SKU text of before, several an array of lines', () => {
    expect(toRestock({ requestId: 'r', lines: [{ sku: 'A', qty: 2 }] }, 1).fingerprint).toBe(fingerprint('["restock","A",2,null]'));
    expect(toRestock({ requestId: 'r', lines: [{ sku: 'B', qty: 1 }, { sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }] }, 1).fingerprint)
      .toBe(fingerprint('["restock",[["A",2],["B",2]],null]'));
    expect(toAdjust({ requestId: 'a', lines: [{ sku: 'A', onHand: 0 }] }, 1).fingerprint).toBe(fingerprint('["adjust","A",0,null,null]'));
    expect(toAdjust({ requestId: 'a', lines: [{ sku: 'B', onHand: 3, expectedVersion: 4 }, { sku: 'A', onHand: 0 }], meta: { x: 1 } }, 1).fingerprint)
      .toBe(fingerprint('["adjust",[["A",0,null],["B",3,4]],{"x":1}]'));
  });

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
        const order = toRestock(withMeta({ requestId: 'r', lines }), at);
        const [one] = order.lines;
        expect(order.fingerprint).toBe(fingerprint(canonicalJson(
          order.lines.length === 1 && one !== undefined ? ['restock', one.sku, one.qty, metaValue] : ['restock', linesOf(order.lines), metaValue],
        )));
        const counts = [...new Map(lines.map((l, i) => [l.sku, { sku: l.sku, onHand: l.qty, ...(i % 2 === 0 ? { expectedVersion: i } : {}) }])).values()];
        const stocktake = toAdjust(withMeta({ requestId: 'r', lines: counts }), at);
        const printed = stocktake.lines.map((c) => [c.sku, c.onHand, c.expectedVersion]);
        expect(stocktake.fingerprint).toBe(fingerprint(canonicalJson(printed.length === 1 ? ['adjust', ...(printed[0] ?? []), metaValue] : ['adjust', printed, metaValue])));
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

describe('byCodeUnits', () => {
  it('is -1, 0 or 1 as JavaScript orders the strings', () => {
    expect([byCodeUnits('a', 'b'), byCodeUnits('b', 'a'), byCodeUnits('a', 'a'), byCodeUnits('😀', 'ｘ')]).toEqual([-1, 1, 0, -1]);
  });
});

/** The reference: keys sorted by code unit, written with map and join. */
function reference(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  const object = value as Record<string, unknown>;
  return `{${Object.keys(object).sort().map((key) => `${JSON.stringify(key)}:${reference(object[key])}`).join(',')}}`;
}

describe('canonicalJson, exactly', () => {
  it("is the JSON of the value with every object's keys sorted, for any JSON value", () => {
    const json = fc.jsonValue({ maxDepth: 4 }).filter((v) => JSON.stringify(v) !== undefined);
    fc.assert(
      fc.property(json, (value) => {
        const normalized = JSON.parse(JSON.stringify(value)) as JsonObject; // -0 and the like as JSON has them
        expect(canonicalJson(normalized)).toBe(reference(normalized));
      }),
      { numRuns: 500 },
    );
  });

  it('writes objects with several keys, nested, and numbers as JSON does', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 0, y: -1.5 } })).toBe('{"a":[true,null,"x"],"b":1,"c":{"y":-1.5,"z":0}}');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson(1e21)).toBe('1e+21');
    expect(canonicalJson('a"b')).toBe('"a\\"b"');
  });
});

describe('fingerprint, inline or digest', () => {
  it('keeps a payload of up to LIMITS.fingerprintInlineCharsMax characters as it is, and digests a longer one', () => {
    const inline = `[${'"'}${'x'.repeat(LIMITS.fingerprintInlineCharsMax - 4)}${'"'}]`;
    expect(inline).toHaveLength(LIMITS.fingerprintInlineCharsMax);
    expect(fingerprint(inline)).toBe(inline);
    const longer = `[${'"'}${'x'.repeat(LIMITS.fingerprintInlineCharsMax - 3)}${'"'}]`;
    expect(fingerprint(longer)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(fingerprint(longer)).toBe(fingerprint(longer));
    expect(fingerprint(`${longer} `)).not.toBe(fingerprint(longer));
  });
});

describe('compareCodePoints at the edges of the surrogate range', () => {
  it('puts every character above U+FFFF after U+E000 to U+FFFF, from the first (U+10000) to the last', () => {
    for (const astral of ['\u{10000}', '\u{103FF}', '\u{10FFFF}']) {
      for (const high of ['\uE000', '\uFFFF']) {
        expect(compareCodePoints(astral, high)).toBeGreaterThan(0);
        expect(compareCodePoints(high, astral)).toBeLessThan(0);
      }
    }
    expect(compareCodePoints('\uD7FF', '\u{10000}')).toBeLessThan(0);
    expect(compareCodePoints('ab', 'a')).toBeGreaterThan(0);
    expect(compareCodePoints('a', 'a')).toBe(0);
  });
});
