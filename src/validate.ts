import { InvalidInputError } from './errors.js';
import { canonicalJson, fingerprint } from './fingerprint.js';
import { LIMITS } from './limits.js';
import { byCodeUnits } from './order.js';
import type {
  AdjustCommand, Alternatives, AmendCommand, Command, Count, CommitCommand, DeductCommand, ExtendCommand, GivenLine, HoldCursor, ReleaseCommand, RestockCommand, ReserveCommand, ReverseCommand, RevokeCommand,
  SetPolicyCommand, SweepCommand,
} from './store.js';
import type { JsonObject, JsonValue, Line, StockPolicy } from './types.js';

type Bag = Record<string, unknown>;

function bag(value: unknown, field: string): Bag {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError(field, 'must be an object');
  }
  return value as Bag;
}

/** A well-formed string of 1 to `bytesMax` UTF-8 bytes. */
function text(value: unknown, field: string, bytesMax: number): string {
  if (typeof value !== 'string') throw new InvalidInputError(field, 'must be a string');
  if (value.length === 0) throw new InvalidInputError(field, 'must not be empty');
  // Stryker disable next-line ConditionalExpression: a fast path; the byte count below refuses the same strings
  if (value.length > bytesMax) throw new InvalidInputError(field, `must be at most ${bytesMax} UTF-8 bytes`);
  if (!value.isWellFormed()) throw new InvalidInputError(field, 'must be well-formed Unicode (no lone surrogates)');
  // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no count.
  // Stryker disable next-line ConditionalExpression,EqualityOperator,StringLiteral: the first test only skips counting short strings; '' is utf8 too
  if (value.length * 3 > bytesMax && Buffer.byteLength(value, 'utf8') > bytesMax) throw new InvalidInputError(field, `must be at most ${bytesMax} UTF-8 bytes`);
  return value;
}

/** A well-formed SKU. */
export function checkSku(value: unknown, field = 'sku'): string {
  return text(value, field, LIMITS.skuBytesMax);
}

/** A well-formed request or reservation id. */
export function checkRequestId(value: unknown, field = 'requestId'): string {
  return text(value, field, LIMITS.requestIdBytesMax);
}

/** An integer from `min` to {@link LIMITS.quantityMax}. */
function integer(value: unknown, field: string, min: number): number {
  // Stryker disable next-line ConditionalExpression: Number.isInteger is false for a non-number anyway
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new InvalidInputError(field, 'must be an integer');
  if (value < min) throw new InvalidInputError(field, `must be at least ${min}`);
  if (value > LIMITS.quantityMax) throw new InvalidInputError(field, `must be at most ${LIMITS.quantityMax}`);
  return value;
}

/** A positive quantity up to {@link LIMITS.quantityMax}. */
export function checkQty(value: unknown, field = 'qty'): number {
  return integer(value, field, 1);
}

/** Nodes a `meta` walk may visit: every node is at least one byte of JSON, so more cannot fit. */
interface Budget {
  nodesLeft: number;
}

function jsonValue(value: unknown, field: string, depth: number, budget: Budget): JsonValue {
  // Stryker disable next-line AssignmentOperator,ConditionalExpression,EqualityOperator: a bound on the walk's work; the byte check after it refuses the same meta with the same error
  budget.nodesLeft -= 1;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: the same bound, as above
  if (budget.nodesLeft < 0) throw new InvalidInputError('meta', `must be at most ${LIMITS.metaBytesMax} bytes as JSON`);
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new InvalidInputError(field, 'must be well-formed Unicode');
    return value;
  }
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidInputError(field, 'must be a finite number');
    // JSON has no -0: every store that keeps meta as JSON gives back 0, so every store does.
    return value === 0 ? 0 : value;
  }
  if (depth >= LIMITS.metaDepthMax) throw new InvalidInputError(field, `nests deeper than ${LIMITS.metaDepthMax}`);
  if (Array.isArray(value)) {
    const out: JsonValue[] = [];
    for (let i = 0; i < value.length; i += 1) {
      // A hole would fingerprint as `undefined` but be stored as null: refuse it.
      if (!(i in value)) throw new InvalidInputError(`${field}[${i}]`, 'must not be a hole in a sparse array');
      out.push(jsonValue(value[i], `${field}[${i}]`, depth + 1, budget));
    }
    return out;
  }
  if (typeof value === 'object' && isPlain(value)) {
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) {
      if (!key.isWellFormed()) throw new InvalidInputError(field, 'keys must be well-formed Unicode');
      // defineProperty, so a key named `__proto__` stays an ordinary key.
      // Stryker disable next-line BooleanLiteral: the meta is frozen right after, whatever these say
      Object.defineProperty(out, key, { value: jsonValue(item, `${field}.${key}`, depth + 1, budget), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  throw new InvalidInputError(field, 'must hold only JSON values (plain objects, arrays, strings, finite numbers, booleans, null)');
}

/** An object literal or a prototype-less dictionary: nothing with behaviour (Date, Map, class). */
function isPlain(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A plain JSON object within the size and depth limits, copied; null when absent. */
export function checkMeta(value: unknown): JsonObject | null {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError('meta', 'must be a plain JSON object');
  }
  const meta = jsonValue(value, 'meta', 0, { nodesLeft: LIMITS.metaBytesMax }) as JsonObject;
  // Stryker disable next-line StringLiteral: '' is utf8 too
  if (Buffer.byteLength(canonicalJson(meta), 'utf8') > LIMITS.metaBytesMax) {
    throw new InvalidInputError('meta', `must be at most ${LIMITS.metaBytesMax} bytes as JSON`);
  }
  return deepFreeze(meta);
}

/** Frozen, so stores can hand the same meta to every reader without copying it. */
function deepFreeze<T extends JsonValue>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** An array of 1 to {@link LIMITS.linesPerOperationMax} lines, not yet checked one by one. */
function lineArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new InvalidInputError(field, 'must be an array');
  if (value.length === 0) throw new InvalidInputError(field, 'must not be empty');
  if (value.length > LIMITS.linesPerOperationMax) {
    throw new InvalidInputError(field, `must have at most ${LIMITS.linesPerOperationMax} lines`);
  }
  return value as unknown[];
}

/** Lines checked, duplicates merged (the sum within the limit), sorted by SKU. */
export function checkLines(value: unknown, field = 'lines'): Line[] {
  // Array.from visits holes too (as undefined): a sparse array's hole is a bad line, not no line.
  return merged(Array.from(lineArray(value, field), (raw, at) => {
    const line = bag(raw, `${field}[${at}]`);
    return { sku: checkSku(line['sku'], `${field}[${at}].sku`), qty: checkQty(line['qty'], `${field}[${at}].qty`), at };
  }), field);
}

/** One-SKU lines merged (a sum past the limit is named by the line `at` that passes it), sorted by SKU. */
function merged(lines: Array<Line & { at: number }>, field: string): Line[] {
  const totals = new Map<string, number>();
  for (const { sku, qty, at } of lines) totals.set(sku, checkQty((totals.get(sku) ?? 0) + qty, `${field}[${at}].qty (merged with earlier lines of ${sku})`));
  return [...totals].sort(([a], [b]) => byCodeUnits(a, b)).map(([sku, qty]) => ({ sku, qty }));
}

/** Lines of a deduct or reserve: the one-SKU lines merged, and every line as given when one is an `anyOf` line. */
export function checkOrderLines(value: unknown): { lines: Line[]; given: GivenLine[] | null } {
  const field = 'lines';
  if (!Array.isArray(value) || !value.some(isAnyOf)) return { lines: checkLines(value, field), given: null };
  if (value.length > LIMITS.linesPerOperationMax) throw new InvalidInputError(field, `must have at most ${LIMITS.linesPerOperationMax} lines`);
  const given = Array.from(value as unknown[], (raw, i): GivenLine => {
    const line = bag(raw, `${field}[${i}]`);
    if (!isAnyOf(line)) return { sku: checkSku(line['sku'], `${field}[${i}].sku`), qty: checkQty(line['qty'], `${field}[${i}].qty`) };
    if (line['sku'] !== undefined) throw new InvalidInputError(`${field}[${i}]`, 'give either sku or anyOf, not both');
    return checkAlternatives(line, `${field}[${i}]`);
  });
  const skus = new Set(given.flatMap((l) => ('sku' in l ? [l.sku] : l.anyOf)));
  if (skus.size > LIMITS.linesPerOperationMax) throw new InvalidInputError(field, `must name at most ${LIMITS.linesPerOperationMax} SKUs, alternatives included`);
  return { lines: merged(given.flatMap((l, at) => ('sku' in l ? [{ ...l, at }] : [])), field), given };
}

function isAnyOf(line: unknown): boolean {
  return typeof line === 'object' && line !== null && (line as Bag)['anyOf'] !== undefined;
}

/** An `anyOf` line: distinct alternatives, a quantity, `split` and `prefer` filled in. */
function checkAlternatives(line: Bag, field: string): Alternatives {
  const anyOf = line['anyOf'];
  if (!Array.isArray(anyOf) || anyOf.length === 0 || anyOf.length > LIMITS.alternativesPerLineMax) {
    throw new InvalidInputError(`${field}.anyOf`, `must be an array of 1 to ${LIMITS.alternativesPerLineMax} SKUs`);
  }
  const skus = anyOf.map((sku, j) => checkSku(sku, `${field}.anyOf[${j}]`));
  if (new Set(skus).size !== skus.length) throw new InvalidInputError(`${field}.anyOf`, 'must not name a SKU twice');
  const split = line['split'] === undefined ? false : line['split'];
  if (typeof split !== 'boolean') throw new InvalidInputError(`${field}.split`, 'must be a boolean');
  const prefer = line['prefer'] === undefined ? 'order' : line['prefer'];
  if (prefer !== 'order' && prefer !== 'mostAvailable') throw new InvalidInputError(`${field}.prefer`, "must be 'order' or 'mostAvailable'");
  return { anyOf: skus, qty: checkQty(line['qty'], `${field}.qty`), split, prefer };
}

/**
 * Canonical JSON of lines as given, `[["A",1],[["B","C"],2,true,"order"]]`: an `anyOf` line
 * starts with an array, so this never equals the merged form of one-SKU lines.
 */
function givenJson(given: GivenLine[]): string {
  return canonicalJson(given.map((l) => ('sku' in l ? [l.sku, l.qty] : [l.anyOf, l.qty, l.split, l.prefer])));
}

/** The lines' part of a fingerprint: merged one-SKU lines, or every line as given. */
const orderLinesJson = (lines: Line[], given: GivenLine[] | null): string => (given === null ? linesJson(lines) : givenJson(given));

/** Canonical JSON of lines as `[[sku, qty], ...]`, written directly: this runs on every operation. */
function linesJson(lines: Line[]): string {
  let out = '[';
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i] as Line;
    out += `${i === 0 ? '' : ','}[${JSON.stringify(line.sku)},${line.qty}]`;
  }
  return `${out}]`;
}

/** A buyer: a well-formed string like a request id; null when absent. */
function buyerOf(value: unknown): string | null {
  return value === undefined ? null : checkRequestId(value, 'buyer');
}

/**
 * The buyer's part of a fingerprint: nothing without one, so requests that name no buyer keep
 * the fingerprints they always had (a replay across an upgrade stays a replay).
 */
const buyerJson = (buyer: string | null): string => (buyer === null ? '' : `,${JSON.stringify(buyer)}`);

// Stryker disable next-line ConditionalExpression: canonicalJson(null) is 'null' too; this skips a call
const metaJson = (meta: JsonObject | null): string => (meta === null ? 'null' : canonicalJson(meta));

/**
 * The one-SKU shorthand (any of its `fields` given; the first two are the required ones) or
 * `lines`, never both. Neither is refused by the lines check: `lines` must be an array.
 */
function eitherForm<T>(b: Bag, fields: readonly string[], shorthand: () => T, lines: (value: unknown) => T): T {
  const short = fields.some((f) => b[f] !== undefined);
  if (short && b['lines'] !== undefined) throw new InvalidInputError('lines', `give either lines or ${fields[0]} and ${fields[1]}, not both`);
  return short ? shorthand() : lines(b['lines']);
}

/** A one-SKU line from the shorthand fields `sku` and `qty`. */
const shorthandLine = (b: Bag): Line[] => [{ sku: checkSku(b['sku']), qty: checkQty(b['qty']) }];

/**
 * The lines' part of a restock or adjust fingerprint: one line's fields inline (the text a
 * one-SKU operation always had, so stored records still replay), else the array of lines.
 */
function linesOrOneJson<L>(lines: L[], fields: (line: L) => string): string {
  if (lines.length === 1) return fields(lines[0] as L);
  return `[${lines.map((l) => `[${fields(l)}]`).join(',')}]`;
}

/** Normalizes a restock input: `lines` (a purchase order, merged like a deduct's), or the shorthand `sku` + `qty`. */
export function toRestock(input: unknown, at: number): RestockCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const lines = eitherForm(b, ['sku', 'qty'], () => shorthandLine(b), checkLines);
  const meta = checkMeta(b['meta']);
  const print = fingerprint(`["restock",${linesOrOneJson(lines, (l) => `${JSON.stringify(l.sku)},${l.qty}`)},${metaJson(meta)}]`);
  return { kind: 'restock', requestId, lines, meta, at, fingerprint: print };
}

/** Normalizes a deduct input: `lines`, or the one-SKU shorthand `sku` + `qty`. */
export function toDeduct(input: unknown, at: number): DeductCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const { lines, given } = eitherForm(b, ['sku', 'qty'], () => ({ lines: shorthandLine(b), given: null }), checkOrderLines);
  const meta = checkMeta(b['meta']);
  const buyer = buyerOf(b['buyer']);
  const print = fingerprint(`["deduct",${orderLinesJson(lines, given)},${metaJson(meta)}${buyerJson(buyer)}]`);
  return { kind: 'deduct', requestId, lines, given, meta, buyer, at, fingerprint: print };
}

/**
 * Normalizes an adjust input: `lines` (a stocktake: each SKU once, sorted), or the shorthand
 * `sku` + `onHand` (+ `expectedVersion`).
 */
export function toAdjust(input: unknown, at: number): AdjustCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const lines = eitherForm(b, ['sku', 'onHand', 'expectedVersion'], () => [countOf(b, '')], checkCounts);
  const meta = checkMeta(b['meta']);
  const print = fingerprint(`["adjust",${linesOrOneJson(lines, (l) => `${JSON.stringify(l.sku)},${l.onHand},${l.expectedVersion ?? 'null'}`)},${metaJson(meta)}]`);
  return { kind: 'adjust', requestId, lines, meta, at, fingerprint: print };
}

/**
 * The counts of a stocktake, sorted by SKU. A SKU twice is refused: a count sets on-hand, so two
 * counts of one SKU cannot be merged the way quantities are.
 */
function checkCounts(value: unknown): Count[] {
  const seen = new Set<string>();
  const counts = Array.from(lineArray(value, 'lines'), (raw, i) => {
    const count = countOf(bag(raw, `lines[${i}]`), `lines[${i}].`);
    if (seen.has(count.sku)) throw new InvalidInputError(`lines[${i}].sku`, 'must not repeat a SKU (counts are not added)');
    seen.add(count.sku);
    return count;
  });
  return counts.sort((a, b) => byCodeUnits(a.sku, b.sku));
}

/** One count: fields `sku`, `onHand` and `expectedVersion` under `prefix` (`''` for the shorthand). */
function countOf(b: Bag, prefix: string): Count {
  const sku = checkSku(b['sku'], `${prefix}sku`);
  const onHand = safeCount(b['onHand'], `${prefix}onHand`);
  const expectedVersion = b['expectedVersion'] === undefined ? null : safeCount(b['expectedVersion'], `${prefix}expectedVersion`);
  return { sku, onHand, expectedVersion };
}

/** A non-negative safe integer: an on-hand count (past the quantity limit is `QUANTITY_LIMIT`, not bad input) or a version. */
function safeCount(value: unknown, field: string): number {
  // Stryker disable next-line ConditionalExpression: Number.isSafeInteger is false for a non-number anyway
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError(field, 'must be a non-negative safe integer');
  }
  return value;
}

/** Normalizes a reverse input. */
export function toReverse(input: unknown, at: number): ReverseCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const of = checkRequestId(b['of'], 'of');
  const lines = b['lines'] === undefined ? null : checkLines(b['lines']);
  const meta = checkMeta(b['meta']);
  if (of === requestId) throw new InvalidInputError('of', 'must name another request than requestId');
  const print = fingerprint(`["reverse",${JSON.stringify(of)},${lines === null ? 'null' : linesJson(lines)},${metaJson(meta)}]`);
  return { kind: 'reverse', requestId, of, lines, meta, at, fingerprint: print };
}

/** A hold's time to live: an integer from 1 to {@link LIMITS.ttlMsMax}. */
function checkTtl(ttlMs: unknown): number {
  // Stryker disable next-line ConditionalExpression: the Number.is... test is false for a non-number anyway
  if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > LIMITS.ttlMsMax) {
    throw new InvalidInputError('ttlMs', `must be an integer from 1 to ${LIMITS.ttlMsMax}`);
  }
  return ttlMs;
}

/** Normalizes a reserve input. */
export function toReserve(input: unknown, at: number): ReserveCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const { lines, given } = checkOrderLines(b['lines']);
  const ttlMs = checkTtl(b['ttlMs']);
  const meta = checkMeta(b['meta']);
  const buyer = buyerOf(b['buyer']);
  const print = fingerprint(`["reserve",${orderLinesJson(lines, given)},${ttlMs},${metaJson(meta)}${buyerJson(buyer)}]`);
  return { kind: 'reserve', requestId, lines, given, ttlMs, expiresAt: at + ttlMs, meta, buyer, at, fingerprint: print };
}

/**
 * The same command, attempted again at time `at`: what depends on the time moves with it
 * (a reservation's `expiresAt`), the rest, fingerprint included, stays.
 */
export function retimed<C extends Command>(command: C, at: number): C {
  if (command.kind === 'reserve' || command.kind === 'extend') return { ...command, at, expiresAt: at + command.ttlMs };
  return { ...command, at };
}

/** The policy fields a setPolicy may name, with the value `null` resets them to. */
const POLICY_FIELDS: ReadonlyArray<readonly [keyof StockPolicy, StockPolicy[keyof StockPolicy]]> = [['backorderMax', 0], ['lowStockAt', null], ['buyerMax', null]];

/**
 * Normalizes a setPolicy input: each field given is an integer from 0 to the quantity limit,
 * or null for its default; at least one is given. The fingerprint names every field, with
 * `"keep"` for those left out, so `{ lowStockAt: null }` and `{}` differ.
 */
export function toSetPolicy(input: unknown, at: number): SetPolicyCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const sku = checkSku(b['sku']);
  const set: Partial<StockPolicy> = {};
  const printed: string[] = [];
  for (const [field, reset] of POLICY_FIELDS) {
    const value = b[field];
    if (value === undefined) {
      printed.push('"keep"');
      continue;
    }
    const checked = value === null ? reset : integer(value, field, 0);
    Object.assign(set, { [field]: checked });
    printed.push(String(checked));
  }
  if (Object.keys(set).length === 0) throw new InvalidInputError('input', `must set at least one of ${POLICY_FIELDS.map(([f]) => f).join(', ')}`);
  const meta = checkMeta(b['meta']);
  const print = fingerprint(`["policy",${JSON.stringify(sku)},${printed.join(',')},${metaJson(meta)}]`);
  return { kind: 'policy', requestId, sku, set, meta, at, fingerprint: print };
}

/** Normalizes a revoke input. */
export function toRevoke(input: unknown, at: number): RevokeCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const meta = checkMeta(b['meta']);
  return { kind: 'revoke', requestId, meta, at, fingerprint: fingerprint(`["revoke",${metaJson(meta)}]`) };
}

/** Normalizes a commit input. */
export function toCommit(input: unknown, at: number): CommitCommand {
  const b = bag(input, 'input');
  const reservationId = checkRequestId(b['reservationId'], 'reservationId');
  const lines = b['lines'] === undefined ? null : checkLines(b['lines']);
  return { kind: 'commit', reservationId, lines, at };
}

/** Normalizes a release input. */
export function toRelease(input: unknown, at: number): ReleaseCommand {
  const b = bag(input, 'input');
  return { kind: 'release', reservationId: checkRequestId(b['reservationId'], 'reservationId'), at };
}

/** Normalizes an amend input: the new lines of a held reservation, under the amend's own request id. */
export function toAmend(input: unknown, at: number): AmendCommand {
  const b = bag(input, 'input');
  const requestId = checkRequestId(b['requestId']);
  const reservationId = checkRequestId(b['reservationId'], 'reservationId');
  const { lines, given } = checkOrderLines(b['lines']);
  const meta = checkMeta(b['meta']);
  const print = fingerprint(`["amend",${JSON.stringify(reservationId)},${orderLinesJson(lines, given)},${metaJson(meta)}]`);
  return { kind: 'amend', requestId, reservationId, lines, given, meta, at, fingerprint: print };
}

/** Normalizes an extend input. */
export function toExtend(input: unknown, at: number): ExtendCommand {
  const b = bag(input, 'input');
  const reservationId = checkRequestId(b['reservationId'], 'reservationId');
  const ttlMs = checkTtl(b['ttlMs']);
  return { kind: 'extend', reservationId, ttlMs, expiresAt: at + ttlMs, at };
}

/** Normalizes a sweep input. */
export function toSweep(input: unknown, at: number): SweepCommand {
  // Stryker disable next-line ConditionalExpression: the ledger passes {} for a missing input already
  const b = input === undefined ? {} : bag(input, 'input');
  const limit = b['limit'] === undefined ? LIMITS.sweepHoldsMax : b['limit'];
  // Stryker disable next-line ConditionalExpression: the Number.is... test is false for a non-number anyway
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > LIMITS.sweepHoldsMax) {
    throw new InvalidInputError('limit', `must be an integer from 1 to ${LIMITS.sweepHoldsMax}`);
  }
  return { kind: 'sweep', limit, at };
}

/** Distinct, well-formed SKUs, at most {@link LIMITS.skusPerReadMax}. */
export function checkSkus(value: unknown): string[] {
  if (!Array.isArray(value)) throw new InvalidInputError('skus', 'must be an array');
  if (value.length > LIMITS.skusPerReadMax) throw new InvalidInputError('skus', `must have at most ${LIMITS.skusPerReadMax} SKUs`);
  return value.map((sku, i) => checkSku(sku, `skus[${i}]`));
}

/** Normalizes a buyerTotals query. */
export function toBuyerTotalsQuery(input: unknown): { buyer: string; skus: string[] } {
  const b = bag(input, 'query');
  return { buyer: checkRequestId(b['buyer'], 'buyer'), skus: checkSkus(b['skus']) };
}

/** Normalizes a holds query; the cursor is `<expiresAt>:<reservationId>`, as `holdsCursor` writes it. */
export function toHoldsQuery(input: unknown): { sku: string; after: HoldCursor | null; limit: number } {
  const b = bag(input, 'query');
  const sku = checkSku(b['sku']);
  const after = b['after'] === undefined || b['after'] === null ? null : holdCursorOf(b['after']);
  const limit = b['limit'] === undefined ? LIMITS.entriesPageDefault : limitOf(b['limit']);
  return { sku, after, limit };
}

/**
 * The cursor after a hold.
 *
 * @example
 * ```ts
 * holdsCursor({ expiresAt: 1700000000000, reservationId: 'cart-7' }); // '1700000000000:cart-7'
 * ```
 */
export function holdsCursor(hold: HoldCursor): string {
  return `${hold.expiresAt}:${hold.reservationId}`;
}

function holdCursorOf(value: unknown): HoldCursor {
  const bad = (): InvalidInputError => new InvalidInputError('after', 'must be the `next` of a previous holds() page');
  // Digits, then ':', then the reservation id (which may hold ':' itself).
  if (typeof value !== 'string' || !/^\d+:/.test(value)) throw bad();
  const colon = value.indexOf(':');
  const expiresAt = Number(value.slice(0, colon));
  if (!Number.isSafeInteger(expiresAt)) throw bad();
  return { expiresAt, reservationId: checkRequestId(value.slice(colon + 1), 'after') };
}

/** Normalizes an entries query. */
export function toEntriesQuery(input: unknown): { after: number | null; sku: string | null; limit: number } {
  // Stryker disable next-line ConditionalExpression: the ledger passes {} for a missing input already
  const b = input === undefined ? {} : bag(input, 'query');
  const after = b['after'] === undefined || b['after'] === null ? null : cursorOf(b['after']);
  const sku = b['sku'] === undefined ? null : checkSku(b['sku']);
  const limit = b['limit'] === undefined ? LIMITS.entriesPageDefault : limitOf(b['limit']);
  return { after, sku, limit };
}

function cursorOf(value: unknown): number {
  // Stryker disable next-line ConditionalExpression: Number.isSafeInteger is false for a non-number anyway
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError('after', 'must be a non-negative safe integer');
  }
  return value;
}

function limitOf(value: unknown): number {
  // Stryker disable next-line ConditionalExpression: the Number.is... test is false for a non-number anyway
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > LIMITS.entriesPageMax) {
    throw new InvalidInputError('limit', `must be an integer from 1 to ${LIMITS.entriesPageMax}`);
  }
  return value;
}

/**
 * The cutoff of a `compact()` call: `before` (a time in ms), or now minus `windowMs`, or now
 * minus the ledger's default window when the call names neither.
 */
export function toCompact(input: unknown, fallback: number | null, now: () => number): { before: number } {
  const b = input === undefined ? {} : bag(input, 'input');
  if (b['before'] !== undefined) {
    if (b['windowMs'] !== undefined) throw new InvalidInputError('before', 'give before or windowMs, not both');
    const before = b['before'];
    if (typeof before !== 'number' || !Number.isSafeInteger(before) || before < 0) throw new InvalidInputError('before', 'must be a time in ms from 0 to 2^53');
    return { before };
  }
  const given = b['windowMs'] === undefined ? fallback : b['windowMs'];
  if (given === null) throw new InvalidInputError('windowMs', 'is required: pass it (or before), or give the ledger retention.windowMs');
  return { before: now() - windowOf(given, 'windowMs') };
}

/** A retention window in ms: an integer from 0 to {@link LIMITS.windowMsMax}. */
export function windowOf(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > LIMITS.windowMsMax) {
    throw new InvalidInputError(field, `must be an integer from 0 to ${LIMITS.windowMsMax}`);
  }
  return value;
}

/** Normalizes a levels query. */
export function toLevelsQuery(input: unknown): { after: string | null; limit: number; availableAtMost: number | null } {
  const b = input === undefined ? {} : bag(input, 'query');
  const after = b['after'] === undefined ? null : checkSku(b['after'], 'after');
  const limit = b['limit'] === undefined ? LIMITS.entriesPageDefault : pageOf(b['limit'], LIMITS.levelsPageMax);
  const most = b['availableAtMost'];
  if (most !== undefined && (typeof most !== 'number' || !Number.isSafeInteger(most))) {
    throw new InvalidInputError('availableAtMost', 'must be a safe integer');
  }
  return { after, limit, availableAtMost: most ?? null };
}

function pageOf(value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidInputError('limit', `must be an integer from 1 to ${max}`);
  }
  return value;
}
