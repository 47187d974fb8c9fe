/**
 * Every input check names the field and says what it must be, exactly: these messages are what
 * a caller reads when a request is refused, so each one is pinned here. Each refusal is
 * `INVALID_INPUT`, raised before the store is touched (the store here counts its calls).
 */
import { LIMITS, StockLedger, isStockLedgerError } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import type { StockStore } from 'stock-ledger';
import { describe, expect, it } from 'vitest';

const big = 'x'.repeat(LIMITS.skuBytesMax + 1);

/** [call, what is wrong, input, field, message] */
const CASES: Array<[string, string, unknown, string, string]> = [
  ['restock', 'input not an object', 5, "input", "input: must be an object"],
  ['restock', 'input array', [], "input", "input: must be an object"],
  ['restock', 'requestId number', { requestId: 1, sku: 'A', qty: 1 }, "requestId", "requestId: must be a string"],
  ['restock', 'requestId empty', { requestId: '', sku: 'A', qty: 1 }, "requestId", "requestId: must not be empty"],
  ['restock', 'requestId too long', { requestId: 'r'.repeat(LIMITS.requestIdBytesMax + 1), sku: 'A', qty: 1 }, "requestId", "requestId: must be at most 128 UTF-8 bytes"],
  ['restock', 'requestId too many bytes', { requestId: 'é'.repeat(LIMITS.requestIdBytesMax / 2 + 1), sku: 'A', qty: 1 }, "requestId", "requestId: must be at most 128 UTF-8 bytes"],
  ['restock', 'requestId lone surrogate', { requestId: '\ud800', sku: 'A', qty: 1 }, "requestId", "requestId: must be well-formed Unicode (no lone surrogates)"],
  ['restock', 'sku missing', { requestId: 'r', qty: 1 }, "sku", "sku: must be a string"],
  ['restock', 'sku too long', { requestId: 'r', sku: big, qty: 1 }, "sku", "sku: must be at most 256 UTF-8 bytes"],
  ['restock', 'qty 0', { requestId: 'r', sku: 'A', qty: 0 }, "qty", "qty: must be at least 1"],
  ['restock', 'qty 1.5', { requestId: 'r', sku: 'A', qty: 1.5 }, "qty", "qty: must be an integer"],
  ['restock', 'qty string', { requestId: 'r', sku: 'A', qty: '1' }, "qty", "qty: must be an integer"],
  ['restock', 'qty over max', { requestId: 'r', sku: 'A', qty: LIMITS.quantityMax + 1 }, "qty", "qty: must be at most 1000000000000000"],
  ['restock', 'meta array', { requestId: 'r', sku: 'A', qty: 1, meta: [] }, "meta", "meta: must be a plain JSON object"],
  ['restock', 'meta null', { requestId: 'r', sku: 'A', qty: 1, meta: null }, "meta", "meta: must be a plain JSON object"],
  ['restock', 'meta Date', { requestId: 'r', sku: 'A', qty: 1, meta: { at: new Date(0) } }, "meta.at", "meta.at: must hold only JSON values (plain objects, arrays, strings, finite numbers, booleans, null)"],
  ['restock', 'meta NaN', { requestId: 'r', sku: 'A', qty: 1, meta: { n: Number.NaN } }, "meta.n", "meta.n: must be a finite number"],
  ['restock', 'meta lone surrogate value', { requestId: 'r', sku: 'A', qty: 1, meta: { s: '\udc00' } }, "meta.s", "meta.s: must be well-formed Unicode"],
  ['restock', 'meta lone surrogate key', { requestId: 'r', sku: 'A', qty: 1, meta: { ['\udc00']: 1 } }, "meta", "meta: keys must be well-formed Unicode"],
  // eslint-disable-next-line no-sparse-arrays -- the hole is the point of this case
  ['restock', 'meta sparse', { requestId: 'r', sku: 'A', qty: 1, meta: { list: [1, , 3] } }, "meta.list[1]", "meta.list[1]: must not be a hole in a sparse array"],
  ['restock', 'meta deep', { requestId: 'r', sku: 'A', qty: 1, meta: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } }, "meta.a.b.c.d.e.f.g.h", "meta.a.b.c.d.e.f.g.h: nests deeper than 8"],
  ['restock', 'meta too big', { requestId: 'r', sku: 'A', qty: 1, meta: { s: 'x'.repeat(LIMITS.metaBytesMax) } }, "meta", "meta: must be at most 4096 bytes as JSON"],
  ['restock', 'meta too many nodes', { requestId: 'r', sku: 'A', qty: 1, meta: { list: Array.from({ length: LIMITS.metaBytesMax + 1 }, () => 0) } }, "meta", "meta: must be at most 4096 bytes as JSON"],
  ['restock', 'meta undefined value', { requestId: 'r', sku: 'A', qty: 1, meta: { u: undefined } }, "meta.u", "meta.u: must hold only JSON values (plain objects, arrays, strings, finite numbers, booleans, null)"],
  ['deduct', 'lines not array', { requestId: 'r', lines: {} }, "lines", "lines: must be an array"],
  ['deduct', 'buyer empty', { requestId: 'r', sku: 'A', qty: 1, buyer: '' }, "buyer", "buyer: must not be empty"],
  ['reserve', 'buyer number', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000, buyer: 7 }, "buyer", "buyer: must be a string"],
  ['setPolicy', 'input not an object', 5, "input", "input: must be an object"],
  ['buyerTotals', 'query not an object', 5, "query", "query: must be an object"],
  ['setPolicy', 'no field', { requestId: 'r', sku: 'A' }, "input", "input: must set at least one of backorderMax, lowStockAt, buyerMax"],
  ['setPolicy', 'buyerMax negative', { requestId: 'r', sku: 'A', buyerMax: -1 }, "buyerMax", "buyerMax: must be at least 0"],
  ['buyerTotals', 'buyer missing', { skus: ['A'] }, "buyer", "buyer: must be a string"],
  ['deduct', 'lines empty', { requestId: 'r', lines: [] }, "lines", "lines: must not be empty"],
  ['deduct', 'lines too many', { requestId: 'r', lines: Array.from({ length: LIMITS.linesPerOperationMax + 1 }, () => ({ sku: 'A', qty: 1 })) }, "lines", "lines: must have at most 100 lines"],
  ['deduct', 'line not object', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }, 'B'] }, "lines[1]", "lines[1]: must be an object"],
  // eslint-disable-next-line no-sparse-arrays -- the hole is the point of this case
  ['deduct', 'a hole in lines', { requestId: 'r', lines: [, { sku: 'A', qty: 1 }] }, "lines[0]", "lines[0]: must be an object"],
  // eslint-disable-next-line no-sparse-arrays -- the hole is the point of this case
  ['deduct', 'a hole in lines with anyOf', { requestId: 'r', lines: [{ anyOf: ['A'], qty: 1 }, , { sku: 'A', qty: 1 }] }, "lines[1]", "lines[1]: must be an object"],
  ['deduct', 'anyOf: too many lines', { requestId: 'r', lines: [...Array.from({ length: LIMITS.linesPerOperationMax }, () => ({ sku: 'A', qty: 1 })), { anyOf: ['A'], qty: 1 }] }, "lines", "lines: must have at most 100 lines"],
  ['deduct', 'anyOf: too many SKUs', { requestId: 'r', lines: Array.from({ length: 7 }, (_, i) => ({ anyOf: Array.from({ length: 16 }, (_, j) => `S${i}-${j}`), qty: 1 })) }, "lines", "lines: must name at most 100 SKUs, alternatives included"],
  ['deduct', 'a null line', { requestId: 'r', lines: [null, { sku: 'A', qty: 1 }] }, "lines[0]", "lines[0]: must be an object"],
  ['deduct', 'an undefined line', { requestId: 'r', lines: [undefined, { anyOf: ['A'], qty: 1 }] }, "lines[0]", "lines[0]: must be an object"],
  ['reserve', 'anyOf: one-SKU lines count towards the SKUs named', { requestId: 'r', ttlMs: 1000, lines: [...Array.from({ length: 90 }, (_, i) => ({ sku: `P${i}`, qty: 1 })), { anyOf: Array.from({ length: 16 }, (_, j) => `S${j}`), qty: 1 }] }, "lines", "lines: must name at most 100 SKUs, alternatives included"],
  ['deduct', 'anyOf: a line not an object', { requestId: 'r', lines: [{ anyOf: ['A'], qty: 1 }, 7] }, "lines[1]", "lines[1]: must be an object"],
  ['deduct', 'anyOf: a one-SKU line bad', { requestId: 'r', lines: [{ anyOf: ['A'], qty: 1 }, { sku: '', qty: 1 }] }, "lines[1].sku", "lines[1].sku: must not be empty"],
  ['deduct', 'anyOf: a one-SKU qty bad', { requestId: 'r', lines: [{ anyOf: ['A'], qty: 1 }, { sku: 'B', qty: 0 }] }, "lines[1].qty", "lines[1].qty: must be at least 1"],
  ['deduct', 'anyOf: merged over max', { requestId: 'r', lines: [{ sku: 'A', qty: LIMITS.quantityMax }, { anyOf: ['A'], qty: 1 }, { sku: 'A', qty: 1 }] }, "lines[2].qty (merged with earlier lines of A)", "lines[2].qty (merged with earlier lines of A): must be at most 1000000000000000"],
  ['deduct', 'anyOf and sku', { requestId: 'r', lines: [{ anyOf: ['A'], sku: 'A', qty: 1 }] }, "lines[0]", "lines[0]: give either sku or anyOf, not both"],
  ['deduct', 'anyOf empty', { requestId: 'r', lines: [{ anyOf: [], qty: 1 }] }, "lines[0].anyOf", "lines[0].anyOf: must be an array of 1 to 16 SKUs"],
  ['reserve', 'anyOf too long', { requestId: 'r', lines: [{ sku: 'B', qty: 1 }, { anyOf: Array.from({ length: 17 }, (_, j) => `S${j}`), qty: 1 }], ttlMs: 1000 }, "lines[1].anyOf", "lines[1].anyOf: must be an array of 1 to 16 SKUs"],
  ['deduct', 'anyOf a SKU bad', { requestId: 'r', lines: [{ anyOf: ['A', ''], qty: 1 }] }, "lines[0].anyOf[1]", "lines[0].anyOf[1]: must not be empty"],
  ['deduct', 'anyOf twice', { requestId: 'r', lines: [{ anyOf: ['A', 'B', 'A'], qty: 1 }] }, "lines[0].anyOf", "lines[0].anyOf: must not name a SKU twice"],
  ['deduct', 'anyOf qty bad', { requestId: 'r', lines: [{ anyOf: ['A'], qty: 1.5 }] }, "lines[0].qty", "lines[0].qty: must be an integer"],
  ['deduct', 'anyOf split bad', { requestId: 'r', lines: [{ anyOf: ['A'], qty: 1, split: 1 }] }, "lines[0].split", "lines[0].split: must be a boolean"],
  ['deduct', 'anyOf prefer bad', { requestId: 'r', lines: [{ anyOf: ['A'], qty: 1, prefer: 'cheap' }] }, "lines[0].prefer", "lines[0].prefer: must be 'order' or 'mostAvailable'"],
  ['amend', 'input not an object', 3, 'input', 'input: must be an object'],
  ['amend', 'requestId missing', { reservationId: 'c', lines: [{ sku: 'A', qty: 1 }] }, 'requestId', 'requestId: must be a string'],
  ['amend', 'reservationId missing', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }] }, 'reservationId', 'reservationId: must be a string'],
  ['amend', 'lines missing', { requestId: 'r', reservationId: 'c' }, 'lines', 'lines: must be an array'],
  ['amend', 'meta bad', { requestId: 'r', reservationId: 'c', lines: [{ sku: 'A', qty: 1 }], meta: 1 }, 'meta', 'meta: must be a plain JSON object'],
  ['deduct', 'line sku bad', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }, { sku: '', qty: 1 }] }, "lines[1].sku", "lines[1].sku: must not be empty"],
  ['deduct', 'line qty bad', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: -1 }] }, "lines[1].qty", "lines[1].qty: must be at least 1"],
  ['deduct', 'merged over max', { requestId: 'r', lines: [{ sku: 'A', qty: LIMITS.quantityMax }, { sku: 'A', qty: 1 }] }, "lines[1].qty (merged with earlier lines of A)", "lines[1].qty (merged with earlier lines of A): must be at most 1000000000000000"],
  ['deduct', 'both forms', { requestId: 'r', sku: 'A', qty: 1, lines: [{ sku: 'A', qty: 1 }] }, "lines", "lines: give either lines or sku and qty, not both"],
  ['deduct', 'shorthand sku only', { requestId: 'r', sku: 'A' }, "qty", "qty: must be an integer"],
  ['deduct', 'shorthand qty only', { requestId: 'r', qty: 1 }, "sku", "sku: must be a string"],
  ['deduct', 'nothing', { requestId: 'r' }, "lines", "lines: must be an array"],
  ['adjust', 'onHand negative', { requestId: 'r', sku: 'A', onHand: -1 }, "onHand", "onHand: must be a non-negative safe integer"],
  ['adjust', 'onHand 1.5', { requestId: 'r', sku: 'A', onHand: 1.5 }, "onHand", "onHand: must be a non-negative safe integer"],
  ['adjust', 'onHand string', { requestId: 'r', sku: 'A', onHand: '1' }, "onHand", "onHand: must be a non-negative safe integer"],
  ['adjust', 'onHand unsafe', { requestId: 'r', sku: 'A', onHand: 2 ** 53 }, "onHand", "onHand: must be a non-negative safe integer"],
  ['adjust', 'expectedVersion negative', { requestId: 'r', sku: 'A', onHand: 1, expectedVersion: -1 }, "expectedVersion", "expectedVersion: must be a non-negative safe integer"],
  ['adjust', 'expectedVersion string', { requestId: 'r', sku: 'A', onHand: 1, expectedVersion: '1' }, "expectedVersion", "expectedVersion: must be a non-negative safe integer"],
  ['adjust', 'expectedVersion 0.5', { requestId: 'r', sku: 'A', onHand: 1, expectedVersion: 0.5 }, "expectedVersion", "expectedVersion: must be a non-negative safe integer"],
  ['reverse', 'of missing', { requestId: 'r' }, "of", "of: must be a string"],
  ['reverse', 'of itself', { requestId: 'r', of: 'r' }, "of", "of: must name another request than requestId"],
  ['reverse', 'lines bad', { requestId: 'r', of: 'o', lines: [] }, "lines", "lines: must not be empty"],
  ['reserve', 'ttl 0', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }], ttlMs: 0 }, "ttlMs", "ttlMs: must be an integer from 1 to 31622400000"],
  ['reserve', 'ttl over', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }], ttlMs: LIMITS.ttlMsMax + 1 }, "ttlMs", "ttlMs: must be an integer from 1 to 31622400000"],
  ['reserve', 'ttl string', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }], ttlMs: '1' }, "ttlMs", "ttlMs: must be an integer from 1 to 31622400000"],
  ['reserve', 'ttl 1.5', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1.5 }, "ttlMs", "ttlMs: must be an integer from 1 to 31622400000"],
  ['reserve', 'ttl missing', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }] }, "ttlMs", "ttlMs: must be an integer from 1 to 31622400000"],
  ['commit', 'reservationId missing', {}, "reservationId", "reservationId: must be a string"],
  ['commit', 'lines bad', { reservationId: 'c', lines: 'A' }, "lines", "lines: must be an array"],
  ['release', 'reservationId number', { reservationId: 7 }, "reservationId", "reservationId: must be a string"],
  ['release', 'input null', null, "input", "input: must be an object"],
  ['restock', 'both forms', { requestId: 'r', sku: 'A', qty: 1, lines: [{ sku: 'A', qty: 1 }] }, "lines", "lines: give either lines or sku and qty, not both"],
  ['restock', 'nothing', { requestId: 'r' }, "lines", "lines: must be an array"],
  ['restock', 'lines empty', { requestId: 'r', lines: [] }, "lines", "lines: must not be empty"],
  ['restock', 'too many lines', { requestId: 'r', lines: Array.from({ length: LIMITS.linesPerOperationMax + 1 }, (_, i) => ({ sku: `S${i}`, qty: 1 })) }, "lines", "lines: must have at most 100 lines"],
  ['restock', 'line qty bad', { requestId: 'r', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 0 }] }, "lines[1].qty", "lines[1].qty: must be at least 1"],
  ['restock', 'merged over max', { requestId: 'r', lines: [{ sku: 'A', qty: LIMITS.quantityMax }, { sku: 'B', qty: 1 }, { sku: 'A', qty: 1 }] }, "lines[2].qty (merged with earlier lines of A)", "lines[2].qty (merged with earlier lines of A): must be at most 1000000000000000"],
  ['adjust', 'both forms', { requestId: 'r', sku: 'A', onHand: 1, lines: [{ sku: 'A', onHand: 1 }] }, "lines", "lines: give either lines or sku and onHand, not both"],
  ['adjust', 'lines and a top-level expectedVersion', { requestId: 'r', expectedVersion: 1, lines: [{ sku: 'A', onHand: 1 }] }, "lines", "lines: give either lines or sku and onHand, not both"],
  ['adjust', 'nothing', { requestId: 'r' }, "lines", "lines: must be an array"],
  ['adjust', 'lines empty', { requestId: 'r', lines: [] }, "lines", "lines: must not be empty"],
  ['adjust', 'too many lines', { requestId: 'r', lines: Array.from({ length: LIMITS.linesPerOperationMax + 1 }, (_, i) => ({ sku: `S${i}`, onHand: 1 })) }, "lines", "lines: must have at most 100 lines"],
  ['adjust', 'line not an object', { requestId: 'r', lines: [{ sku: 'A', onHand: 1 }, 'B'] }, "lines[1]", "lines[1]: must be an object"],
  ['adjust', 'line sku bad', { requestId: 'r', lines: [{ sku: 'A', onHand: 1 }, { sku: '', onHand: 1 }] }, "lines[1].sku", "lines[1].sku: must not be empty"],
  ['adjust', 'line onHand bad', { requestId: 'r', lines: [{ sku: 'A', onHand: 1 }, { sku: 'B', onHand: -1 }] }, "lines[1].onHand", "lines[1].onHand: must be a non-negative safe integer"],
  ['adjust', 'line expectedVersion bad', { requestId: 'r', lines: [{ sku: 'A', onHand: 1, expectedVersion: 0.5 }] }, "lines[0].expectedVersion", "lines[0].expectedVersion: must be a non-negative safe integer"],
  ['adjust', 'a SKU twice', { requestId: 'r', lines: [{ sku: 'A', onHand: 1 }, { sku: 'B', onHand: 1 }, { sku: 'A', onHand: 1 }] }, "lines[2].sku", "lines[2].sku: must not repeat a SKU (counts are not added)"],
  ['revoke', 'requestId missing', {}, "requestId", "requestId: must be a string"],
  ['revoke', 'meta bad', { requestId: 'r', meta: 'x' }, "meta", "meta: must be a plain JSON object"],
  ['sweepExpired', 'input string', 'x', "input", "input: must be an object"],
  ['sweepExpired', 'limit 0', { limit: 0 }, "limit", "limit: must be an integer from 1 to 1000"],
  ['sweepExpired', 'limit over', { limit: LIMITS.sweepHoldsMax + 1 }, "limit", "limit: must be an integer from 1 to 1000"],
  ['sweepExpired', 'limit 1.5', { limit: 1.5 }, "limit", "limit: must be an integer from 1 to 1000"],
  ['sweepExpired', 'limit string', { limit: '1' }, "limit", "limit: must be an integer from 1 to 1000"],
  ['entries', 'query string', 'x', "query", "query: must be an object"],
  ['entries', 'after negative', { after: -1 }, "after", "after: must be a non-negative safe integer"],
  ['entries', 'after 1.5', { after: 1.5 }, "after", "after: must be a non-negative safe integer"],
  ['entries', 'after string', { after: '1' }, "after", "after: must be a non-negative safe integer"],
  ['entries', 'limit 0', { limit: 0 }, "limit", "limit: must be an integer from 1 to 1000"],
  ['entries', 'limit over', { limit: LIMITS.entriesPageMax + 1 }, "limit", "limit: must be an integer from 1 to 1000"],
  ['entries', 'limit 2.5', { limit: 2.5 }, "limit", "limit: must be an integer from 1 to 1000"],
  ['entries', 'sku bad', { sku: '' }, "sku", "sku: must not be empty"],
  ['stocks', 'not array', 'A', "skus", "skus: must be an array"],
  ['stocks', 'too many', Array.from({ length: LIMITS.skusPerReadMax + 1 }, (_, i) => `S${i}`), "skus", "skus: must have at most 1000 SKUs"],
  ['stocks', 'one bad', ['A', ''], "skus[1]", "skus[1]: must not be empty"],
  ['stock', 'bad', 5, "sku", "sku: must be a string"],
  ['reservation', 'bad', '', "reservationId", "reservationId: must not be empty"],
  ['request', 'bad', 3, "requestId", "requestId: must be a string"],
  ['restock', 'meta bad value in an array', { requestId: 'r', sku: 'A', qty: 1, meta: { list: [1, Number.NaN] } }, 'meta.list[1]', 'meta.list[1]: must be a finite number'],
  ['restock', 'meta arrays nested too deep', { requestId: 'r', sku: 'A', qty: 1, meta: { a: [[[[[[[[1]]]]]]]] } }, 'meta.a[0][0][0][0][0][0][0]', 'meta.a[0][0][0][0][0][0][0]: nests deeper than 8'],
  ['deduct', 'input not an object', 'x', 'input', 'input: must be an object'],
  ['adjust', 'input not an object', 7, 'input', 'input: must be an object'],
  ['reverse', 'input not an object', [], 'input', 'input: must be an object'],
  ['reserve', 'input not an object', true, 'input', 'input: must be an object'],
  ['commit', 'input not an object', 'c', 'input', 'input: must be an object'],
  ['revoke', 'input not an object', 1, 'input', 'input: must be an object'],
  ['extend', 'input not an object', 'c', 'input', 'input: must be an object'],
  ['extend', 'reservationId missing', { ttlMs: 1000 }, 'reservationId', 'reservationId: must be a string'],
  ['extend', 'ttlMs 0', { reservationId: 'c', ttlMs: 0 }, 'ttlMs', `ttlMs: must be an integer from 1 to ${LIMITS.ttlMsMax}`],
  ['holds', 'query not an object', 'A', 'query', 'query: must be an object'],
  ['holds', 'sku missing', {}, 'sku', 'sku: must be a string'],
  ['holds', 'limit 0', { sku: 'A', limit: 0 }, 'limit', 'limit: must be an integer from 1 to 1000'],
  ['holds', 'after a number', { sku: 'A', after: 5 }, 'after', 'after: must be the `next` of a previous holds() page'],
  ['holds', 'after an array that reads as a cursor', { sku: 'A', after: ['5:a'] }, 'after', 'after: must be the `next` of a previous holds() page'],
  ['holds', 'after without an id', { sku: 'A', after: '5:' }, 'after', 'after: must not be empty'],
  ['holds', 'after past safe integers', { sku: 'A', after: '9007199254740993:a' }, 'after', 'after: must be the `next` of a previous holds() page'],
];

/** A memory store that counts every call made to it. */
function countingStore(): { store: StockStore; calls: () => number } {
  const inner = new MemoryStore();
  let calls = 0;
  const store = new Proxy(inner, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls: () => calls };
}

describe('input checks: field and message', () => {
  it.each(CASES)('%s: %s', async (call, _what, input, field, message) => {
    const { store, calls } = countingStore();
    const ledger = new StockLedger({ store });
    const run = (ledger as unknown as Record<string, (input: unknown) => Promise<unknown>>)[call];
    if (run === undefined) throw new Error(`no call ${call}`);
    const error = await run.call(ledger, input).then(() => null, (e: unknown) => e);
    expect(isStockLedgerError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'INVALID_INPUT', field, message });
    expect(calls()).toBe(0);
  });
});

describe('input checks: exactly at the limits is accepted', () => {
  it(`${LIMITS.linesPerOperationMax} lines, one of them anyOf, naming ${LIMITS.linesPerOperationMax} SKUs`, async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const lines = [{ anyOf: Array.from({ length: 16 }, (_, j) => `S${j}`), qty: 1 }, ...Array.from({ length: LIMITS.linesPerOperationMax - 1 }, (_, i) => ({ sku: `S${i < 84 ? 16 + i : 0}`, qty: 1 }))];
    expect(await ledger.deduct({ requestId: 'edge', lines })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
  });

  it('a meta of exactly LIMITS.metaBytesMax bytes as canonical JSON, and a SKU of exactly skuBytesMax UTF-8 bytes', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const pad = LIMITS.metaBytesMax - JSON.stringify({ a: '', b: 1 }).length;
    const meta = { b: 1, a: 'x'.repeat(pad) };
    expect(JSON.stringify({ a: meta.a, b: 1 })).toHaveLength(LIMITS.metaBytesMax);
    expect(await ledger.restock({ requestId: 'r1', sku: 'A', qty: 1, meta })).toMatchObject({ ok: true });
    const longer = await ledger.restock({ requestId: 'r2', sku: 'A', qty: 1, meta: { ...meta, a: `${meta.a}x` } }).then(() => null, (e: unknown) => e);
    expect(longer).toMatchObject({ code: 'INVALID_INPUT', field: 'meta' });
    const sku = 'é'.repeat(LIMITS.skuBytesMax / 2);
    expect(await ledger.restock({ requestId: 'r3', sku, qty: 1 })).toMatchObject({ ok: true });
    expect(await ledger.restock({ requestId: 'r4', sku: `${sku}a`, qty: 1 }).then(() => null, (e: unknown) => e)).toMatchObject({ field: 'sku' });
  });
});
