import { LIMITS, StockLedger, isStockLedgerError } from '../src/index.js';
import type { StockStore } from '../src/index.js';
import type { Command, ExecuteOptions, StoreCapabilities } from '../src/store-kit.js';
import { assertEqual, fail, show } from './assert.js';
import { checkInvariants } from './invariants.js';

const MAX = LIMITS.quantityMax;
const ID = 'bad-1';

/** One call that must reject with INVALID_INPUT. */
interface BadCall {
  name: string;
  call: (ledger: StockLedger) => unknown;
}

/** Strings that are not valid ids or SKUs: empty, too long in UTF-8 bytes, lone surrogates, not strings. */
function badTexts(bytesMax: number): Array<[string, unknown]> {
  return [
    ['empty', ''],
    [`${bytesMax + 1} ASCII bytes`, 'x'.repeat(bytesMax + 1)],
    [`${bytesMax + 2} bytes of 2-byte chars (${(bytesMax + 2) / 2} chars)`, 'é'.repeat((bytesMax + 2) / 2)],
    [`${bytesMax + 4} bytes of 4-byte chars`, '😀'.repeat(bytesMax / 4 + 1)],
    ['lone high surrogate', '\uD800'],
    ['lone low surrogate inside', 'a\uDC00b'],
    ['reversed surrogate pair', '\uDE00\uD83D'],
    ['number', 5],
    ['null', null],
    ['undefined', undefined],
    ['object', { id: 'x' }],
  ];
}

const BAD_QTYS: Array<[string, unknown]> = [
  ['zero', 0], ['negative', -1], ['fractional', 1.5], ['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity],
  ['string', '1'], ['over the limit', MAX + 1], ['2^53', 2 ** 53], ['null', null], ['undefined', undefined],
  ['boolean', true], ['bigint', 1n], ['object', {}],
];

function deepMeta(depth: number): Record<string, unknown> {
  let meta: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < depth; i += 1) meta = { nested: meta };
  return meta;
}

const BAD_METAS: Array<[string, unknown]> = [
  ['string', 'x'], ['number', 1], ['array', [1]], ['null', null], ['function', () => 1], ['Date', new Date(0)],
  [`over ${LIMITS.metaBytesMax} bytes`, { note: 'x'.repeat(LIMITS.metaBytesMax) }],
  [`deeper than ${LIMITS.metaDepthMax}`, deepMeta(LIMITS.metaDepthMax + 2)],
  ['NaN value', { n: NaN }], ['Infinity value', { n: Infinity }], ['lone surrogate value', { s: '\uD800' }],
  ['lone surrogate key', { ['\uD800']: 1 }], ['function value', { f: () => 1 }], ['bigint value', { b: 1n }],
];

const BAD_INPUTS: Array<[string, unknown]> = [['null', null], ['undefined', undefined], ['string', 'x'], ['number', 42], ['array', []]];

/**
 * Second arguments of a write that no store accepts: not an object, or a `transaction` that is
 * not an object (a store that cannot join one refuses any).
 */
const BAD_OPTIONS: Array<[string, unknown]> = [
  ['null', null], ['string', 'tx'], ['number', 1], ['transaction null', { transaction: null }], ['transaction string', { transaction: 'tx' }],
];

function lines(count: number): Array<{ sku: string; qty: number }> {
  return Array.from({ length: count }, (_, i) => ({ sku: `L${i}`, qty: 1 }));
}

const BAD_LINES: Array<[string, unknown]> = [
  ['empty array', []], ['string', 'A'], ['object', { sku: 'A', qty: 1 }], ['null', null],
  ['array with null', [null]], ['array with a string', ['A']], ['line without qty', [{ sku: 'A' }]],
  ['line without sku', [{ qty: 1 }]], ['line with qty 0', [{ sku: 'A', qty: 0 }]], ['line with empty sku', [{ sku: '', qty: 1 }]],
  [`${LIMITS.linesPerOperationMax + 1} lines`, lines(LIMITS.linesPerOperationMax + 1)],
  ['duplicates merging past the limit', [{ sku: 'A', qty: MAX }, { sku: 'A', qty: 1 }]],
];

// Loose views of the ledger's methods, to pass what the types forbid.
type Loose = (input?: unknown, options?: unknown) => Promise<unknown>;
type Method =
  | 'restock' | 'deduct' | 'adjust' | 'reverse' | 'reserve' | 'revoke' | 'setPolicy' | 'amend' | 'commit' | 'release' | 'extend' | 'sweepExpired'
  | 'stock' | 'stocks' | 'entries' | 'request' | 'reservation' | 'buyerTotals' | 'compact' | 'levels';
const op = (ledger: StockLedger, name: Method): Loose => (ledger[name] as Loose).bind(ledger);

/** The reservation the bad commits and releases name: held for a minute, so they would apply if let through. */
const HOLD = 'seed-hold';

const BAD_TTLS: Array<[string, unknown]> = [
  ['zero', 0], ['negative', -1], ['fractional', 1.5], ['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity],
  [`over LIMITS.ttlMsMax (${LIMITS.ttlMsMax + 1})`, LIMITS.ttlMsMax + 1], ['2^53', 2 ** 53], ['string', '1000'], ['null', null],
  ['boolean', true], ['bigint', 1000n], ['object', {}],
];

const BAD_SWEEP_LIMITS: Array<[string, unknown]> = [
  ['0', 0], ['negative', -1], ['fractional', 1.5], ['NaN', NaN], ['Infinity', Infinity],
  [`over LIMITS.sweepHoldsMax (${LIMITS.sweepHoldsMax + 1})`, LIMITS.sweepHoldsMax + 1], ['string', '10'], ['boolean', true], ['object', {}],
];

/** Every bad call of every operation. */
function badCalls(): Record<string, BadCall[]> {
  const table: Record<string, BadCall[]> = {};
  const add = (group: string, name: string, call: (ledger: StockLedger) => unknown): void => {
    (table[group] ??= []).push({ name: `${group}: ${name}`, call });
  };
  const restock = { requestId: ID, sku: 'A', qty: 1 };
  const deduct = { requestId: ID, lines: [{ sku: 'A', qty: 1 }] };
  const adjust = { requestId: ID, sku: 'A', onHand: 1 };
  const reverse = { requestId: ID, of: 'seed-deduct' };
  const reserve = { requestId: ID, lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 };
  // A revoke has no field but its id and meta: every bad one of those must be refused too.
  const revoke = { requestId: ID, meta: { why: 'cancelled' } };
  const setPolicy = { requestId: ID, sku: 'A', backorderMax: 5 };
  const amend = { requestId: ID, reservationId: HOLD, lines: [{ sku: 'A', qty: 2 }] };
  const writes: Array<['restock' | 'deduct' | 'adjust' | 'reverse' | 'reserve' | 'revoke' | 'setPolicy' | 'amend', Record<string, unknown>]> = [
    ['restock', restock], ['deduct', deduct], ['adjust', adjust], ['reverse', reverse], ['reserve', reserve], ['revoke', revoke], ['setPolicy', setPolicy],
    ['amend', amend],
  ];
  for (const [name, valid] of writes) {
    for (const [what, input] of BAD_INPUTS) add(name, `input ${what}`, (l) => op(l, name)(input));
    for (const [what, options] of BAD_OPTIONS) add(name, `call options ${what}`, (l) => op(l, name)(valid, options));
    for (const [what, id] of badTexts(LIMITS.requestIdBytesMax)) add(name, `requestId ${what}`, (l) => op(l, name)({ ...valid, requestId: id }));
    add(name, 'requestId missing', (l) => {
      const { requestId: _, ...rest } = valid;
      return op(l, name)(rest);
    });
    for (const [what, meta] of BAD_METAS) add(name, `meta ${what}`, (l) => op(l, name)({ ...valid, meta }));
  }
  for (const [what, sku] of badTexts(LIMITS.skuBytesMax)) {
    add('restock', `sku ${what}`, (l) => op(l, 'restock')({ ...restock, sku }));
    add('deduct', `shorthand sku ${what}`, (l) => op(l, 'deduct')({ requestId: ID, sku, qty: 1 }));
    add('adjust', `sku ${what}`, (l) => op(l, 'adjust')({ ...adjust, sku }));
    add('setPolicy', `sku ${what}`, (l) => op(l, 'setPolicy')({ ...setPolicy, sku }));
  }
  // 0 and null are valid policy values; past the limit is refused here (a policy is no level).
  for (const [what, value] of [...BAD_QTYS.filter(([w]) => w !== 'zero' && w !== 'null' && w !== 'undefined'), ['over the limit', MAX + 1] as [string, unknown]]) {
    add('setPolicy', `backorderMax ${what}`, (l) => op(l, 'setPolicy')({ ...setPolicy, backorderMax: value }));
    add('setPolicy', `lowStockAt ${what}`, (l) => op(l, 'setPolicy')({ requestId: ID, sku: 'A', lowStockAt: value }));
  }
  for (const [what, buyer] of badTexts(LIMITS.requestIdBytesMax).filter(([w]) => w !== 'undefined')) {
    add('deduct', `buyer ${what}`, (l) => op(l, 'deduct')({ ...deduct, buyer }));
    add('reserve', `buyer ${what}`, (l) => op(l, 'reserve')({ ...reserve, buyer }));
  }
  for (const [what, value] of [...BAD_QTYS.filter(([w]) => w !== 'zero' && w !== 'null' && w !== 'undefined'), ['over the limit', MAX + 1] as [string, unknown]]) {
    add('setPolicy', `buyerMax ${what}`, (l) => op(l, 'setPolicy')({ requestId: ID, sku: 'A', buyerMax: value }));
  }
  add('setPolicy', 'no policy field at all', (l) => op(l, 'setPolicy')({ requestId: ID, sku: 'A' }));
  add('setPolicy', 'only fields set to undefined', (l) => op(l, 'setPolicy')({ requestId: ID, sku: 'A', backorderMax: undefined, lowStockAt: undefined }));
  add('setPolicy', 'sku missing', (l) => op(l, 'setPolicy')({ requestId: ID, backorderMax: 1 }));
  for (const [what, qty] of BAD_QTYS) {
    add('restock', `qty ${what}`, (l) => op(l, 'restock')({ ...restock, qty }));
    add('deduct', `line qty ${what}`, (l) => op(l, 'deduct')({ ...deduct, lines: [{ sku: 'A', qty }] }));
    add('deduct', `shorthand qty ${what}`, (l) => op(l, 'deduct')({ requestId: ID, sku: 'A', qty }));
    add('reverse', `line qty ${what}`, (l) => op(l, 'reverse')({ ...reverse, lines: [{ sku: 'A', qty }] }));
    // Zero is a valid count; past the limit (but safe) is a QUANTITY_LIMIT result, checked in boundaryCase.
    if (what !== 'zero' && what !== 'over the limit') add('adjust', `onHand ${what}`, (l) => op(l, 'adjust')({ ...adjust, onHand: qty }));
  }
  for (const [what, version] of [['negative', -1], ['fractional', 0.5], ['NaN', NaN], ['string', '0'], ['null', null], ['past 2^53', 2 ** 53]] as const) {
    add('adjust', `expectedVersion ${what}`, (l) => op(l, 'adjust')({ ...adjust, expectedVersion: version }));
  }
  for (const [what, value] of BAD_LINES) {
    add('deduct', `lines ${what}`, (l) => op(l, 'deduct')({ ...deduct, lines: value }));
    add('reverse', `lines ${what}`, (l) => op(l, 'reverse')({ ...reverse, lines: value }));
  }
  addBulk(add);
  add('deduct', 'no lines and no sku', (l) => op(l, 'deduct')({ requestId: ID }));
  add('deduct', 'both lines and sku/qty', (l) => op(l, 'deduct')({ ...deduct, sku: 'A', qty: 1 }));
  add('deduct', 'shorthand sku without qty', (l) => op(l, 'deduct')({ requestId: ID, sku: 'A' }));
  add('deduct', 'shorthand qty without sku', (l) => op(l, 'deduct')({ requestId: ID, qty: 1 }));
  for (const [what, of] of badTexts(LIMITS.requestIdBytesMax)) add('reverse', `of ${what}`, (l) => op(l, 'reverse')({ ...reverse, of }));
  add('reverse', 'of missing', (l) => op(l, 'reverse')({ requestId: ID }));
  add('reverse', 'of itself', (l) => op(l, 'reverse')({ requestId: ID, of: ID }));

  for (const [what, ttlMs] of BAD_TTLS) add('reserve', `ttlMs ${what}`, (l) => op(l, 'reserve')({ ...reserve, ttlMs }));
  add('reserve', 'ttlMs missing', (l) => op(l, 'reserve')({ requestId: ID, lines: reserve.lines }));
  for (const [what, value] of BAD_LINES) add('reserve', `lines ${what}`, (l) => op(l, 'reserve')({ ...reserve, lines: value }));
  add('reserve', 'lines missing', (l) => op(l, 'reserve')({ requestId: ID, ttlMs: 1000 }));
  add('reserve', 'the deduct shorthand (sku and qty, no lines)', (l) => op(l, 'reserve')({ requestId: ID, sku: 'A', qty: 1, ttlMs: 1000 }));
  for (const [what, qty] of BAD_QTYS) add('reserve', `line qty ${what}`, (l) => op(l, 'reserve')({ ...reserve, lines: [{ sku: 'A', qty }] }));
  for (const [what, value] of BAD_LINES) add('amend', `lines ${what}`, (l) => op(l, 'amend')({ ...amend, lines: value }));
  for (const [what, qty] of BAD_QTYS) add('amend', `line qty ${what}`, (l) => op(l, 'amend')({ ...amend, lines: [{ sku: 'A', qty }] }));
  for (const [what, id] of badTexts(LIMITS.requestIdBytesMax)) add('amend', `reservationId ${what}`, (l) => op(l, 'amend')({ ...amend, reservationId: id }));
  add('amend', 'lines missing', (l) => op(l, 'amend')({ requestId: ID, reservationId: HOLD }));
  add('amend', 'an anyOf line naming a SKU twice', (l) => op(l, 'amend')({ ...amend, lines: [{ anyOf: ['A', 'A'], qty: 1 }] }));

  for (const name of ['commit', 'release'] as const) {
    for (const [what, input] of BAD_INPUTS) add(name, `input ${what}`, (l) => op(l, name)(input));
    for (const [what, id] of badTexts(LIMITS.requestIdBytesMax)) add(name, `reservationId ${what}`, (l) => op(l, name)({ reservationId: id }));
    add(name, 'reservationId missing', (l) => op(l, name)({}));
    add(name, 'requestId instead of reservationId', (l) => op(l, name)({ requestId: HOLD }));
  }
  for (const [what, input] of BAD_INPUTS) add('extend', `input ${what}`, (l) => op(l, 'extend')(input));
  for (const [what, id] of badTexts(LIMITS.requestIdBytesMax)) add('extend', `reservationId ${what}`, (l) => op(l, 'extend')({ reservationId: id, ttlMs: 1000 }));
  add('extend', 'reservationId missing', (l) => op(l, 'extend')({ ttlMs: 1000 }));
  for (const [what, ttlMs] of BAD_TTLS) add('extend', `ttlMs ${what}`, (l) => op(l, 'extend')({ reservationId: HOLD, ttlMs }));
  add('extend', 'ttlMs missing', (l) => op(l, 'extend')({ reservationId: HOLD }));
  for (const [what, value] of [...BAD_LINES, ['null', null] as [string, unknown]]) {
    add('commit', `lines ${what}`, (l) => op(l, 'commit')({ reservationId: HOLD, lines: value }));
  }
  for (const [what, qty] of BAD_QTYS) add('commit', `line qty ${what}`, (l) => op(l, 'commit')({ reservationId: HOLD, lines: [{ sku: 'A', qty }] }));

  for (const [what, input] of BAD_INPUTS.filter(([what]) => what !== 'undefined')) add('sweepExpired', `input ${what}`, (l) => op(l, 'sweepExpired')(input));
  for (const [what, limit] of BAD_SWEEP_LIMITS) add('sweepExpired', `limit ${what}`, (l) => op(l, 'sweepExpired')({ limit }));

  for (const [what, id] of badTexts(LIMITS.requestIdBytesMax)) add('reservation', `id ${what}`, (l) => op(l, 'reservation')(id));

  for (const [what, sku] of badTexts(LIMITS.skuBytesMax)) {
    add('stock', `sku ${what}`, (l) => op(l, 'stock')(sku));
    add('stocks', `a sku ${what}`, (l) => op(l, 'stocks')(['A', sku]));
    if (sku !== undefined) add('entries', `sku ${what}`, (l) => op(l, 'entries')({ sku }));
  }
  for (const [what, skus] of [['string', 'A'], ['null', null], ['object', { 0: 'A' }], [`${LIMITS.skusPerReadMax + 1} SKUs`, lines(LIMITS.skusPerReadMax + 1).map((x) => x.sku)]] as const) {
    add('stocks', `skus ${what}`, (l) => op(l, 'stocks')(skus));
  }
  for (const [what, limit] of [['0', 0], [`${LIMITS.entriesPageMax + 1}`, LIMITS.entriesPageMax + 1], ['-1', -1], ['fractional', 2.5], ['NaN', NaN], ['string', '10'], ['null', null]] as const) {
    add('entries', `limit ${what}`, (l) => op(l, 'entries')({ limit }));
  }
  for (const [what, after] of [['negative', -1], ['fractional', 0.5], ['NaN', NaN], ['string', '0'], ['past 2^53', 2 ** 53]] as const) {
    add('entries', `after ${what}`, (l) => op(l, 'entries')({ after }));
  }
  for (const [what, query] of [['null', null], ['string', 'x'], ['number', 1]] as const) add('entries', `query ${what}`, (l) => op(l, 'entries')(query));
  for (const [what, id] of badTexts(LIMITS.requestIdBytesMax)) add('request', `id ${what}`, (l) => op(l, 'request')(id));
  for (const [what, input] of BAD_INPUTS) add('buyerTotals', `query ${what}`, (l) => op(l, 'buyerTotals')(input));
  for (const [what, buyer] of badTexts(LIMITS.requestIdBytesMax)) add('buyerTotals', `buyer ${what}`, (l) => op(l, 'buyerTotals')({ buyer, skus: ['A'] }));
  for (const [what, sku] of badTexts(LIMITS.skuBytesMax)) add('buyerTotals', `a sku ${what}`, (l) => op(l, 'buyerTotals')({ buyer: 'b', skus: ['A', sku] }));
  add('buyerTotals', 'skus missing', (l) => op(l, 'buyerTotals')({ buyer: 'b' }));
  add('buyerTotals', `${LIMITS.skusPerReadMax + 1} SKUs`, (l) => op(l, 'buyerTotals')({ buyer: 'b', skus: lines(LIMITS.skusPerReadMax + 1).map((x) => x.sku) }));
  addAnyOf(add);
  addOperatorReads(add);
  return table;
}

const BAD_WINDOWS: Array<[string, unknown]> = [
  ['negative', -1], ['fractional', 1.5], ['NaN', NaN], ['Infinity', Infinity], ['string', '1000'], ['null', null], ['object', {}],
  [`over LIMITS.windowMsMax (${LIMITS.windowMsMax + 1})`, LIMITS.windowMsMax + 1],
];

/** `compact()` and `levels()`: refused before the store is touched (compact sweeps nothing first). */
function addOperatorReads(add: (group: string, name: string, call: (ledger: StockLedger) => unknown) => void): void {
  for (const [what, windowMs] of BAD_WINDOWS) add('compact', `windowMs ${what}`, (l) => op(l, 'compact')({ windowMs }));
  add('compact', 'no windowMs and no retention on the ledger', (l) => op(l, 'compact')({}));
  for (const [what, before] of [['negative', -1], ['fractional', 0.5], ['string', '5'], ['past 2^53', 2 ** 53]] as const) {
    add('compact', `before ${what}`, (l) => op(l, 'compact')({ before }));
  }
  add('compact', 'both before and windowMs', (l) => op(l, 'compact')({ before: 5, windowMs: 5 }));
  for (const [what, input] of BAD_INPUTS.filter(([, v]) => v !== undefined)) add('compact', `input ${what}`, (l) => op(l, 'compact')(input));
  for (const [what, limit] of [['0', 0], [`${LIMITS.levelsPageMax + 1}`, LIMITS.levelsPageMax + 1], ['fractional', 2.5], ['NaN', NaN], ['string', '10'], ['null', null]] as const) {
    add('levels', `limit ${what}`, (l) => op(l, 'levels')({ limit }));
  }
  for (const [what, after] of badTexts(LIMITS.skuBytesMax)) if (after !== undefined) add('levels', `after ${what}`, (l) => op(l, 'levels')({ after }));
  for (const [what, most] of [['fractional', 0.5], ['NaN', NaN], ['Infinity', -Infinity], ['string', '5'], ['past 2^53', 2 ** 53], ['null', null]] as const) {
    add('levels', `availableAtMost ${what}`, (l) => op(l, 'levels')({ availableAtMost: most }));
  }
  for (const [what, input] of BAD_INPUTS.filter(([, v]) => v !== undefined)) add('levels', `query ${what}`, (l) => op(l, 'levels')(input));
}

function counts(count: number): Array<{ sku: string; onHand: number }> {
  return lines(count).map(({ sku }) => ({ sku, onHand: 1 }));
}

/** Stocktake lines no adjust accepts. */
const BAD_COUNTS: Array<[string, unknown]> = [
  ['empty array', []], ['string', 'A'], ['object', { sku: 'A', onHand: 1 }], ['null', null], ['array with null', [null]],
  ['line without onHand', [{ sku: 'A' }]], ['line without sku', [{ onHand: 1 }]], ['line with empty sku', [{ sku: '', onHand: 1 }]],
  ['line with onHand -1', [{ sku: 'A', onHand: -1 }]], ['line with onHand 1.5', [{ sku: 'A', onHand: 1.5 }]], ['line with onHand 2^53', [{ sku: 'A', onHand: 2 ** 53 }]],
  ['line with expectedVersion -1', [{ sku: 'A', onHand: 1, expectedVersion: -1 }]], ['line with expectedVersion null', [{ sku: 'A', onHand: 1, expectedVersion: null }]],
  ['a SKU twice', [{ sku: 'A', onHand: 1 }, { sku: 'B', onHand: 2 }, { sku: 'A', onHand: 1 }]],
  [`${LIMITS.linesPerOperationMax + 1} lines`, counts(LIMITS.linesPerOperationMax + 1)],
];

/** The lines forms of restock (a purchase order) and adjust (a stocktake), and mixing them with the shorthand. */
function addBulk(add: (group: string, name: string, call: (ledger: StockLedger) => unknown) => void): void {
  for (const [what, value] of BAD_LINES) add('restock', `lines ${what}`, (l) => op(l, 'restock')({ requestId: ID, lines: value }));
  add('restock', 'no lines and no sku', (l) => op(l, 'restock')({ requestId: ID }));
  add('restock', 'both lines and sku/qty', (l) => op(l, 'restock')({ requestId: ID, sku: 'A', qty: 1, lines: [{ sku: 'A', qty: 1 }] }));
  add('restock', 'lines and qty', (l) => op(l, 'restock')({ requestId: ID, qty: 1, lines: [{ sku: 'A', qty: 1 }] }));
  for (const [what, value] of BAD_COUNTS) add('adjust', `lines ${what}`, (l) => op(l, 'adjust')({ requestId: ID, lines: value }));
  add('adjust', 'no lines and no sku', (l) => op(l, 'adjust')({ requestId: ID }));
  add('adjust', 'both lines and sku/onHand', (l) => op(l, 'adjust')({ requestId: ID, sku: 'A', onHand: 1, lines: [{ sku: 'A', onHand: 1 }] }));
  add('adjust', 'lines and a top-level expectedVersion', (l) => op(l, 'adjust')({ requestId: ID, expectedVersion: 0, lines: [{ sku: 'A', onHand: 1 }] }));
}

/** `anyOf` lines no deduct or reserve accepts: each is tried in both, after a valid one-SKU line. */
const BAD_ANY_OF: Array<[string, unknown]> = [
  ['anyOf empty', { anyOf: [], qty: 1 }],
  ['anyOf a string', { anyOf: 'A', qty: 1 }],
  ['anyOf null', { anyOf: null, qty: 1 }],
  [`anyOf of ${LIMITS.alternativesPerLineMax + 1} SKUs`, { anyOf: lines(LIMITS.alternativesPerLineMax + 1).map((x) => x.sku), qty: 1 }],
  ['anyOf naming a SKU twice', { anyOf: ['A', 'B', 'A'], qty: 1 }],
  ['anyOf with a lone surrogate', { anyOf: ['A', '\uD800'], qty: 1 }],
  ['anyOf with an empty SKU', { anyOf: ['A', ''], qty: 1 }],
  ['anyOf with a number', { anyOf: ['A', 5], qty: 1 }],
  ['anyOf and sku both', { anyOf: ['A', 'B'], sku: 'A', qty: 1 }],
  ['anyOf without qty', { anyOf: ['A', 'B'] }],
  ['anyOf with qty 0', { anyOf: ['A', 'B'], qty: 0 }],
  ['anyOf with qty past the limit', { anyOf: ['A', 'B'], qty: MAX + 1 }],
  ['split a string', { anyOf: ['A', 'B'], qty: 1, split: 'yes' }],
  ['split null', { anyOf: ['A', 'B'], qty: 1, split: null }],
  ['prefer unknown', { anyOf: ['A', 'B'], qty: 1, prefer: 'cheapest' }],
  ['prefer null', { anyOf: ['A', 'B'], qty: 1, prefer: null }],
];

function addAnyOf(add: (group: string, name: string, call: (ledger: StockLedger) => unknown) => void): void {
  const plain = { sku: 'A', qty: 1 };
  for (const [what, line] of BAD_ANY_OF) {
    add('anyOf', `deduct: ${what}`, (l) => op(l, 'deduct')({ requestId: ID, lines: [plain, line] }));
    add('anyOf', `reserve: ${what}`, (l) => op(l, 'reserve')({ requestId: ID, lines: [line, plain], ttlMs: 60_000 }));
  }
  // Alternatives count towards the SKUs one request may name.
  const many = Array.from({ length: 7 }, (_, i) => ({ anyOf: lines(LIMITS.alternativesPerLineMax).map((x) => `${x.sku}-${i}`), qty: 1 }));
  add('anyOf', `deduct naming more than ${LIMITS.linesPerOperationMax} SKUs with alternatives`, (l) => op(l, 'deduct')({ requestId: ID, lines: many }));
  add('anyOf', `reserve naming more than ${LIMITS.linesPerOperationMax} SKUs with alternatives`, (l) => op(l, 'reserve')({ requestId: ID, lines: many, ttlMs: 60_000 }));
  add('anyOf', `deduct with ${LIMITS.linesPerOperationMax + 1} lines, one of them anyOf`, (l) => op(l, 'deduct')({ requestId: ID, lines: [...lines(LIMITS.linesPerOperationMax), { anyOf: ['A'], qty: 1 }] }));
}

/** Valid inputs right at the limits: must not be INVALID_INPUT (they were the other side of the table). */
function boundaryCalls(): BadCall[] {
  const atMost = (bytes: number): string[] => ['x'.repeat(bytes), 'é'.repeat(bytes / 2), '😀'.repeat(bytes / 4)];
  const calls: BadCall[] = [];
  atMost(LIMITS.skuBytesMax).forEach((sku, i) => calls.push({ name: `SKU of exactly ${LIMITS.skuBytesMax} bytes #${i}`, call: (l) => l.restock({ requestId: `edge-sku-${i}`, sku, qty: 1 }) }));
  atMost(LIMITS.requestIdBytesMax).forEach((requestId, i) => calls.push({ name: `request id of exactly ${LIMITS.requestIdBytesMax} bytes #${i}`, call: (l) => l.restock({ requestId, sku: 'edge', qty: 1 }) }));
  calls.push({ name: `qty ${MAX}`, call: (l) => l.restock({ requestId: 'edge-max', sku: 'edge-max', qty: MAX }) });
  calls.push({ name: `${LIMITS.linesPerOperationMax} lines`, call: (l) => l.deduct({ requestId: 'edge-lines', lines: lines(LIMITS.linesPerOperationMax) }) });
  calls.push({ name: `entries limit ${LIMITS.entriesPageMax}`, call: (l) => l.entries({ limit: LIMITS.entriesPageMax }) });
  calls.push({ name: 'entries limit 1', call: (l) => l.entries({ limit: 1 }) });
  calls.push({ name: `meta nested ${LIMITS.metaDepthMax} deep`, call: (l) => l.restock({ requestId: 'edge-meta', sku: 'edge', qty: 1, meta: deepMeta(LIMITS.metaDepthMax) as never }) });
  calls.push({ name: `${LIMITS.skusPerReadMax} SKUs read`, call: (l) => l.stocks(lines(LIMITS.skusPerReadMax).map((x) => x.sku)) });
  calls.push({ name: `reserve ttlMs ${LIMITS.ttlMsMax} (LIMITS.ttlMsMax)`, call: (l) => l.reserve({ requestId: 'edge-ttl-max', lines: [{ sku: 'edge', qty: 1 }], ttlMs: LIMITS.ttlMsMax }) });
  calls.push({ name: 'reserve ttlMs 1', call: (l) => l.reserve({ requestId: 'edge-ttl-1', lines: [{ sku: 'edge', qty: 1 }], ttlMs: 1 }) });
  calls.push({ name: `reserve of ${LIMITS.linesPerOperationMax} lines`, call: (l) => l.reserve({ requestId: 'edge-hold-lines', lines: lines(LIMITS.linesPerOperationMax), ttlMs: 1000 }) });
  calls.push({ name: `sweepExpired limit ${LIMITS.sweepHoldsMax}`, call: (l) => l.sweepExpired({ limit: LIMITS.sweepHoldsMax }) });
  calls.push({ name: 'sweepExpired limit 1', call: (l) => l.sweepExpired({ limit: 1 }) });
  calls.push({ name: `setPolicy backorderMax ${MAX} and lowStockAt 0`, call: (l) => l.setPolicy({ requestId: 'edge-policy-max', sku: 'edge-policy', backorderMax: MAX, lowStockAt: 0 }) });
  calls.push({ name: 'setPolicy with nulls (back to the defaults)', call: (l) => l.setPolicy({ requestId: 'edge-policy-null', sku: 'edge-policy', backorderMax: null, lowStockAt: null }) });
  calls.push({ name: 'sweepExpired without input', call: (l) => l.sweepExpired() });
  calls.push({ name: `anyOf of ${LIMITS.alternativesPerLineMax} SKUs`, call: (l) => l.deduct({ requestId: 'edge-any-of', lines: [{ anyOf: lines(LIMITS.alternativesPerLineMax).map((x) => x.sku), qty: 1 }] }) });
  calls.push({
    name: `reserve naming ${LIMITS.linesPerOperationMax} SKUs with alternatives`,
    call: (l) => l.reserve({ requestId: 'edge-any-of-hold', lines: [{ anyOf: lines(LIMITS.linesPerOperationMax).slice(0, 16).map((x) => x.sku), qty: 1 }, ...lines(LIMITS.linesPerOperationMax).slice(16)], ttlMs: 1000 }),
  });
  calls.push({ name: `restock of ${LIMITS.linesPerOperationMax} lines`, call: (l) => l.restock({ requestId: 'edge-po', lines: lines(LIMITS.linesPerOperationMax).map((x) => ({ sku: `po-${x.sku}`, qty: MAX })) }) });
  calls.push({ name: `adjust of ${LIMITS.linesPerOperationMax} counts`, call: (l) => l.adjust({ requestId: 'edge-stocktake', lines: counts(LIMITS.linesPerOperationMax).map((c) => ({ ...c, onHand: MAX, expectedVersion: 0 })) }) });
  calls.push({ name: `reservation id of exactly ${LIMITS.requestIdBytesMax} bytes`, call: (l) => l.reservation('😀'.repeat(LIMITS.requestIdBytesMax / 4)) });
  calls.push({ name: 'commit of an unknown reservation with lines at the limits', call: (l) => l.commit({ reservationId: 'x'.repeat(LIMITS.requestIdBytesMax), lines: [{ sku: 'edge', qty: MAX }] }) });
  return calls;
}

/** Counts every store call, to prove bad input never reaches the store. */
class CountingStore implements StockStore {
  calls = 0;
  /** The inner store's, so the ledger judges call options as it would for that store. */
  declare readonly capabilities?: StoreCapabilities;
  constructor(readonly inner: StockStore) {
    if (inner.capabilities !== undefined) this.capabilities = inner.capabilities;
  }
  execute(command: Command, options?: ExecuteOptions): ReturnType<StockStore['execute']> {
    this.calls += 1;
    return options === undefined ? this.inner.execute(command) : this.inner.execute(command, options);
  }
  stocks(skus: readonly string[], now: number): ReturnType<StockStore['stocks']> {
    this.calls += 1;
    return this.inner.stocks(skus, now);
  }
  entries(query: Parameters<StockStore['entries']>[0]): ReturnType<StockStore['entries']> {
    this.calls += 1;
    return this.inner.entries(query);
  }
  request(requestId: string): ReturnType<StockStore['request']> {
    this.calls += 1;
    return this.inner.request(requestId);
  }
  reservation(reservationId: string): ReturnType<StockStore['reservation']> {
    this.calls += 1;
    return this.inner.reservation(reservationId);
  }
  verifyChunk(query: Parameters<StockStore['verifyChunk']>[0]): ReturnType<StockStore['verifyChunk']> {
    this.calls += 1;
    return this.inner.verifyChunk(query);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function snapshot(ledger: StockLedger): Promise<unknown> {
  return {
    entries: await ledger.entries({ limit: LIMITS.entriesPageMax }),
    levels: await ledger.stocks(['A', 'B']),
    requests: [await ledger.request('seed-restock'), await ledger.request('seed-deduct'), await ledger.request(HOLD), await ledger.request(ID)],
    reservations: [await ledger.reservation(HOLD), await ledger.reservation(ID)],
  };
}

/** Names of the groups of {@link badInputCase}: one conformance case each. */
export const BAD_INPUT_GROUPS = [
  'restock', 'deduct', 'adjust', 'reverse', 'reserve', 'revoke', 'setPolicy', 'commit', 'release', 'extend', 'sweepExpired', 'stock', 'stocks', 'entries', 'request',
  'reservation', 'buyerTotals', 'anyOf', 'amend', 'compact', 'levels',
] as const;

/**
 * Every bad input of one operation rejects (never throws synchronously) with an INVALID_INPUT
 * `StockLedgerError`, before any store access, and leaves the ledger as it was; the request id
 * used stays free.
 */
export async function badInputCase(group: (typeof BAD_INPUT_GROUPS)[number], createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const store = new CountingStore(await createStore());
  const ledger = new StockLedger({ store });
  try {
    await ledger.restockOrThrow({ requestId: 'seed-restock', sku: 'A', qty: 10 });
    await ledger.deductOrThrow({ requestId: 'seed-deduct', lines: [{ sku: 'A', qty: 2 }] });
    await ledger.reserveOrThrow({ requestId: HOLD, lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
    const before = await snapshot(ledger);
    const problems: string[] = [];
    const calls = badCalls()[group] ?? [];
    if (calls.length < 5) fail(`the bad-input table of ${group} has only ${calls.length} rows`);
    for (const { name, call } of calls) {
      const callsBefore = store.calls;
      let promise: unknown;
      try {
        promise = call(ledger);
      } catch (error) {
        problems.push(`${name}: threw synchronously (${show(String(error))}) instead of returning a rejected promise`);
        continue;
      }
      if (!(promise instanceof Promise)) {
        problems.push(`${name}: did not return a promise`);
        continue;
      }
      try {
        const value = await promise;
        problems.push(`${name}: resolved with ${show(value)} instead of rejecting`);
      } catch (error) {
        if (!isStockLedgerError(error)) problems.push(`${name}: rejected with a non-StockLedgerError ${show(String(error))}`);
        else if (error.code !== 'INVALID_INPUT') problems.push(`${name}: rejected with code ${error.code}, expected INVALID_INPUT`);
      }
      if (store.calls !== callsBefore) problems.push(`${name}: reached the store (${store.calls - callsBefore} calls) before being rejected`);
    }
    if (problems.length > 0) fail(`${problems.length} bad input(s) not rejected properly:\n  - ${problems.join('\n  - ')}`);
    assertEqual(await snapshot(ledger), before, `the ledger after every bad ${group} input`);
    await checkInvariants(ledger);
    // Nothing was recorded under the id the bad inputs used: it is still free.
    const fresh = await ledger.restock({ requestId: ID, sku: 'B', qty: 1 });
    if (!fresh.ok || fresh.replayed) fail(`restock with the id of the bad inputs: expected a first application, got ${show(fresh)}`);
  } finally {
    await ledger.close();
  }
}

/** Inputs exactly at the limits are accepted (not INVALID_INPUT). */
export async function boundaryCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  // A clock of its own: the reserve with ttlMs 1 falls due when this case says, not between two
  // of the reads the invariant check makes.
  const clock = { now: 1_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    const problems: string[] = [];
    for (const { name, call } of boundaryCalls()) {
      try {
        await call(ledger);
      } catch (error) {
        problems.push(`${name}: ${isStockLedgerError(error) ? error.code : 'threw'} ${show(String(error))}`);
      }
    }
    if (problems.length > 0) fail(`inputs at the limits were refused:\n  - ${problems.join('\n  - ')}`);
    const [max] = await ledger.stocks(['edge-max']);
    assertEqual(max?.onHand, MAX, `onHand after restocking ${MAX}`);
    const over = await ledger.restock({ requestId: 'edge-over', sku: 'edge-max', qty: 1 });
    assertEqual(over, { ok: false, code: 'QUANTITY_LIMIT', sku: 'edge-max', requested: 1, onHand: MAX, limit: MAX }, 'restock past the limit');
    const counted = await ledger.adjust({ requestId: 'edge-count', sku: 'edge-max', onHand: MAX + 1 });
    assertEqual(counted, { ok: false, code: 'QUANTITY_LIMIT', sku: 'edge-max', requested: MAX + 1, onHand: MAX, limit: MAX }, 'adjust past the limit');
    clock.now += 10; // the 1 ms hold is due now, for every read alike
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}
