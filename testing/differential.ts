import fc from 'fast-check';
import { LIMITS, StockLedger } from '../src/index.js';
import type { AdjustInput, AmendInput, AnyOfLine, CountLine, DeductInput, JsonObject, Line, OrderLine, ReserveInput, RestockInput, ReverseInput, RevokeInput, SetPolicyInput, StockStore } from '../src/index.js';
import { ConformanceError, assertEqual, show } from './assert.js';
import { checkInvariants, type ExpectedOperation } from './invariants.js';
import { ReferenceModel } from './model.js';
import { describeOp, isRequestOp, runOp, skusOf, type Outcome, type RequestOp, type WriteOp } from './ops.js';
import { commandsReplayPath, runProperty } from './property.js';

const MAX = LIMITS.quantityMax;

/**
 * A small SKU pool at the edges of every encoding a store may use. Separators a store might
 * join keys with (`:`, `|`, U+0000, also first and last), so that a composite key of a
 * reservation id and a SKU can collide if a store builds one by joining: reservation `a`
 * holding `b\u0000c` against reservation `a\u0000b` holding `c` (both pools hold all four).
 * `\uffff` and `😀` (and U+10FFFF) sort one way by UTF-16 code units (JavaScript's order, the
 * contract's) and the other way by code points (UTF-8 bytes, an engine's default collation).
 * The first three are drawn more often, so that SKUs are shared.
 */
export const SKU_POOL: readonly string[] = [
  'A', 'c', 'b\u0000c', 'b:c', 'b|c', '\u0000A', 'A\u0000', '\uffff', '😀', '\u{10FFFF}', 'sku {x}:1\n',
];
/**
 * A small request id pool, so replays and conflicts happen often. Reservation ids come from it
 * too (they share the request-id space). Ids that are prefixes of others (`a`, `a\u0000b`,
 * `a:b`, `a|b`, `a\u0000`; `order-1`, `order-10`), separators, and characters on both sides of
 * U+FFFF. Fresh ids (`n1`, `n10`, ...) are prefixes of each other too.
 */
export const REQUEST_ID_POOL: readonly string[] = [
  'a', 'a\u0000b', 'a:b', 'a|b', 'a\u0000', 'order-1', 'order-10', '\u0000', '\uffff', '😀', '\u{10FFFF}', 'id {x}:1\n',
];
/** Buyers: two plain ones, and two at the edges of a key encoding (U+0000, outside the BMP). */
export const BUYER_POOL: readonly string[] = ['alice', 'bob', 'b\u0000', '😀'];
/** SKUs drawn more often than the rest of {@link SKU_POOL}: `c` and `b\u0000c` make the collision. */
const HOT_SKUS = 3;
/** Ids drawn from the pool more often than the rest: `a` and `a\u0000b`, the other side of it. */
const HOT_IDS = 2;
/** Most calls of a failing run printed with its failure (the last ones). */
const TRACE_LINES_MAX = 80;
/** A SKU never written: must read as all zeros. */
const UNTOUCHED_SKU = 'never written';
/** An id never used: `reservation()` must read null. */
const UNKNOWN_ID = 'never used';

const META_POOL: readonly JsonObject[] = [
  { order: 'o-1' },
  { by: 'alice', why: ['stocktake', 2], nested: { a: 1, b: null, c: true } },
  { 'odd {x}:1\n': 'é😀', n: -1.5 },
];

interface World {
  model: ReferenceModel;
  /** The ledger clock's time: it moves forward, and now and then back. */
  now: number;
  /** The latest time any call was made at: the final checks read no earlier. */
  latest: number;
  /** Every request op, commit and release sent so far, for replays and changed re-sends. */
  sent: WriteOp[];
  /** What was applied (not replays), for the all-or-none check. */
  applied: ExpectedOperation[];
  /** Every id a reserve was sent with (applied or not), in order: the known reservations. */
  reserved: string[];
  /** Ids of request ops that were rejected (so never recorded): what a revoke closes. */
  rejected: string[];
  fresh: number;
  /** What this run did, call by call, for the failure message (the counterexample's steps resolve against the state). */
  trace: string[];
}

interface Real {
  ledger: StockLedger;
  clock: { now: number };
}

/** A request id: from the pool, never used, used by an earlier op, or one revoked so far. */
type IdSpec = { t: 'pool'; i: number } | { t: 'fresh' } | { t: 'used'; k: number } | { t: 'revoked'; k: number };
/** The id a revoke closes: any, or one whose op was rejected (the late-duplicate case). */
type RevokeIdSpec = IdSpec | { t: 'rejected'; k: number };
/** A reservation id: of a reservation held now, of any reservation, or any id (mostly not a reservation). */
type ReservationSpec = { t: 'live'; k: number } | { t: 'known'; k: number } | IdSpec;
type OfSpec = IdSpec | { t: 'deduct'; k: number } | { t: 'reservation'; k: number };
type QtySpec = { t: 'n'; n: number } | { t: 'fill' } | { t: 'overfill' } | { t: 'max' } | { t: 'available' } | { t: 'over' };
/**
 * An `anyOf` line: more alternatives after the line's SKU (duplicates dropped), `split` and
 * `prefer` left out (the defaults) or given.
 */
type AltSpec = { more: number[]; split: boolean | undefined; prefer: 'order' | 'mostAvailable' | undefined };
/** A deduct or reserve line: one SKU, or with `alt` an `anyOf` line (whose `available` is the alternatives' sum). */
type LineSpec = { sku: number; qty: QtySpec; alt: AltSpec | null };
type VersionSpec = { t: 'none' } | { t: 'current' } | { t: 'stale' } | { t: 'n'; n: number };
/** A counted on-hand: a number, what is there, the limit, or one past it (QUANTITY_LIMIT). */
type CountSpec = { t: 'n'; n: number } | { t: 'current' } | { t: 'max' } | { t: 'over' };
/** One count of an adjust, with its own expected version. */
type CountLineSpec = { sku: number; onHand: CountSpec; version: VersionSpec };
type ReverseQtySpec = { t: 'n'; n: number } | { t: 'remaining' } | { t: 'over' };
type CommitQtySpec = { t: 'n'; n: number } | { t: 'held' } | { t: 'part' } | { t: 'over' };
type TtlSpec = { t: 'n'; n: number } | { t: 'max' };
/**
 * A policy field: left out, null (reset), a number, or (backorderMax) the allowance that
 * leaves `available` exactly at 0 plus `d` (-1: BELOW_RESERVED when something is reserved).
 */
type PolicyFieldSpec = { t: 'keep' } | { t: 'null' } | { t: 'n'; n: number } | { t: 'edge'; d: number };

type WriteSpec =
  /** `shorthand`: one line is sent as `sku` + `qty` (else as `lines`). */
  | { kind: 'restock'; id: IdSpec; lines: Array<{ sku: number; qty: QtySpec }>; shorthand: boolean; meta: number }
  | { kind: 'deduct'; id: IdSpec; lines: LineSpec[]; shorthand: boolean; meta: number; buyer: number }
  /** A stocktake: lines of distinct SKUs (a drawn duplicate is dropped); `shorthand` as for a restock. */
  | { kind: 'adjust'; id: IdSpec; lines: CountLineSpec[]; shorthand: boolean; meta: number }
  | {
      kind: 'reverse'; id: IdSpec; of: OfSpec; meta: number;
      /** `taken`: the SKU is picked among those the original took (else from the whole pool). */
      lines: Array<{ sku: number; taken: boolean; qty: ReverseQtySpec }> | null;
    }
  | { kind: 'reserve'; id: IdSpec; lines: LineSpec[]; ttl: TtlSpec; meta: number; buyer: number }
  | {
      kind: 'commit'; id: ReservationSpec;
      /** `held`: the SKU is picked among those the reservation holds (else from the whole pool). */
      lines: Array<{ sku: number; held: boolean; qty: CommitQtySpec }> | null;
    }
  | { kind: 'release'; id: ReservationSpec }
  | { kind: 'extend'; id: ReservationSpec; ttl: TtlSpec }
  | { kind: 'amend'; id: IdSpec; reservation: ReservationSpec; lines: LineSpec[]; meta: number }
  | { kind: 'revoke'; id: RevokeIdSpec; meta: number }
  | { kind: 'policy'; id: IdSpec; sku: number; backorderMax: PolicyFieldSpec; lowStockAt: PolicyFieldSpec; buyerMax: PolicyFieldSpec; meta: number }
  | { kind: 'sweep'; limit: number | null };

type ReplayVariant = 'same' | 'reorder-meta' | 'split-lines' | 'other-form';
/** Which earlier op a replay or changed re-send repeats: any, a reserve, commit or release, or a revoke. */
type Earlier = { k: number; of: 'any' | 'reservations' | 'revokes' };
/** How a re-send changes an earlier op; `revoke` swaps a revoke and any other kind under the same id. */
type Mutation = 'qty' | 'meta' | 'kind' | 'sku' | 'version' | 'revoke';
/**
 * Move the clock forward by some ms, back by some ms, or to (around) the `expiresAt` of a known
 * reservation: never back unless `back`, so that holds fall due; with `back`, also to before
 * an expiry that was already written.
 */
type ClockSpec =
  | { t: 'by'; ms: number }
  | { t: 'back'; ms: number }
  | { t: 'to'; /** 0: the soonest expiry. */ k: number; deltaMs: number; back: boolean };

const pick = <T>(pool: readonly T[], i: number): T => pool[((i % pool.length) + pool.length) % pool.length] as T;

function resolveId(w: World, spec: IdSpec): string {
  if (spec.t === 'pool') return pick(REQUEST_ID_POOL, spec.i);
  if (spec.t === 'fresh') return `n${(w.fresh += 1)}`;
  if (spec.t === 'revoked') {
    const revoked = w.model.requestIds().filter((id) => w.model.kindOf(id) === 'revoke');
    return revoked.length === 0 ? pick(REQUEST_ID_POOL, spec.k) : pick(revoked, spec.k);
  }
  const used = w.sent[spec.k % Math.max(1, w.sent.length)];
  if (used === undefined) return pick(REQUEST_ID_POOL, spec.k);
  return isRequestOp(used) ? used.input.requestId : (used as Extract<WriteOp, { kind: 'commit' | 'release' | 'extend' }>).input.reservationId;
}

function resolveRevokeId(w: World, spec: RevokeIdSpec): string {
  if (spec.t !== 'rejected') return resolveId(w, spec);
  return w.rejected.length === 0 ? resolveId(w, { t: 'used', k: spec.k }) : pick(w.rejected, w.rejected.length - 1 - spec.k);
}

function resolveReservation(w: World, spec: ReservationSpec): string {
  if (spec.t !== 'live' && spec.t !== 'known') return resolveId(w, spec);
  const known = w.reserved.filter((id) => w.model.reservation(id, w.now) !== null);
  const live = known.filter((id) => w.model.reservation(id, w.now)?.state === 'held');
  const from = spec.t === 'live' && live.length > 0 ? live : known.length > 0 ? known : w.reserved;
  return from.length === 0 ? pick(REQUEST_ID_POOL, spec.k) : pick(from, spec.k);
}

function resolveOf(w: World, spec: OfSpec): string {
  if (spec.t === 'deduct') {
    const deducts = w.model.requestIds().filter((id) => w.model.kindOf(id) === 'deduct');
    return deducts.length === 0 ? pick(REQUEST_ID_POOL, spec.k) : pick(deducts, spec.k);
  }
  if (spec.t === 'reservation') {
    // Mostly committed reservations (reversible), else any known one (not reversible).
    const committed = w.reserved.filter((id) => w.model.reservation(id, w.now)?.state === 'committed');
    const from = committed.length > 0 && spec.k % 4 !== 0 ? committed : w.reserved;
    return from.length === 0 ? pick(REQUEST_ID_POOL, spec.k) : pick(from, spec.k);
  }
  return resolveId(w, spec);
}

const withMeta = <T extends object>(input: T, meta: number): T & { meta?: JsonObject } =>
  meta < 0 ? input : { ...input, meta: structuredClone(pick(META_POOL, meta)) };

const clampQty = (n: number): number => Math.min(MAX, Math.max(1, n));

/** A buyer from the pool (index >= 0), or none. */
const withBuyer = <T extends object>(input: T, buyer: number): T & { buyer?: string } =>
  buyer < 0 ? input : { ...input, buyer: pick(BUYER_POOL, buyer) };

/** Lines of a deduct or reserve, with quantities relative to what is available now. */
function resolveLines(w: World, specs: LineSpec[]): OrderLine[] {
  return specs.map(({ sku: i, qty: q, alt }): OrderLine => {
    const skus = [...new Set([i, ...(alt?.more ?? [])].map((k) => pick(SKU_POOL, k)))];
    const available = skus.reduce((sum, sku) => sum + w.model.levelAt(sku, w.now).available, 0);
    const qty = q.t === 'n' ? q.n : q.t === 'available' ? clampQty(available) : q.t === 'over' ? clampQty(available + 1) : MAX;
    if (alt === null) return { sku: skus[0] as string, qty };
    const line: AnyOfLine = { anyOf: skus, qty };
    if (alt.split !== undefined) line.split = alt.split;
    if (alt.prefer !== undefined) line.prefer = alt.prefer;
    return line;
  });
}

/** Turns an abstract write into a concrete op at the current time, reading the model for "current" values. */
function resolveWrite(w: World, spec: WriteSpec): WriteOp {
  const m = w.model;
  switch (spec.kind) {
    case 'restock': {
      const lines = spec.lines.map(({ sku: i, qty: q }) => {
        const sku = pick(SKU_POOL, i);
        const onHand = m.level(sku).onHand;
        return { sku, qty: q.t === 'n' ? q.n : q.t === 'fill' ? clampQty(MAX - onHand) : q.t === 'overfill' ? clampQty(MAX - onHand + 1) : MAX };
      });
      const requestId = resolveId(w, spec.id);
      const [only] = lines;
      const input: RestockInput = withMeta(spec.shorthand && only !== undefined && lines.length === 1 ? { requestId, ...only } : { requestId, lines }, spec.meta);
      return { kind: 'restock', input };
    }
    case 'deduct': {
      const requestId = resolveId(w, spec.id);
      const lines = resolveLines(w, spec.lines);
      const first = lines[0] as Line;
      const input: DeductInput = spec.shorthand && lines.length === 1 && 'sku' in first
        ? withBuyer(withMeta({ requestId, sku: first.sku, qty: first.qty }, spec.meta), spec.buyer)
        : withBuyer(withMeta({ requestId, lines }, spec.meta), spec.buyer);
      return { kind: 'deduct', input };
    }
    case 'adjust': {
      const first = (c: CountLineSpec, i: number): boolean => spec.lines.findIndex((d) => pick(SKU_POOL, d.sku) === pick(SKU_POOL, c.sku)) === i;
      const lines = spec.lines.filter(first).map((c) => resolveCount(w, c));
      const requestId = resolveId(w, spec.id);
      const [only] = lines;
      const input: AdjustInput = withMeta(spec.shorthand && only !== undefined && lines.length === 1 ? { requestId, ...only } : { requestId, lines }, spec.meta);
      return { kind: 'adjust', input };
    }
    case 'reverse': {
      const requestId = resolveId(w, spec.id);
      const of = resolveOf(w, spec.of);
      const base = { requestId, of };
      if (spec.lines === null) return { kind: 'reverse', input: withMeta(base, spec.meta) };
      const taken = SKU_POOL.filter((sku) => m.reversible(of, sku) > 0);
      const lines = spec.lines.map(({ sku: i, taken: fromTaken, qty: q }) => {
        const sku = fromTaken && taken.length > 0 ? pick(taken, i) : pick(SKU_POOL, i);
        const left = m.reversible(of, sku);
        return { sku, qty: q.t === 'n' ? q.n : q.t === 'remaining' ? clampQty(left) : clampQty(left + 1) };
      });
      const input: ReverseInput = withMeta({ ...base, lines }, spec.meta);
      return { kind: 'reverse', input };
    }
    case 'amend': {
      const input: AmendInput = withMeta({ requestId: resolveId(w, spec.id), reservationId: resolveReservation(w, spec.reservation), lines: resolveLines(w, spec.lines) }, spec.meta);
      return { kind: 'amend', input };
    }
    case 'reserve': {
      const ttlMs = spec.ttl.t === 'max' ? LIMITS.ttlMsMax : spec.ttl.n;
      const input: ReserveInput = withBuyer(withMeta({ requestId: resolveId(w, spec.id), lines: resolveLines(w, spec.lines), ttlMs }, spec.meta), spec.buyer);
      return { kind: 'reserve', input };
    }
    case 'commit': {
      const reservationId = resolveReservation(w, spec.id);
      if (spec.lines === null) return { kind: 'commit', input: { reservationId } };
      const held = m.reservation(reservationId, w.now)?.lines ?? [];
      const lines = spec.lines.map(({ sku: i, held: fromHeld, qty: q }) => {
        const sku = fromHeld && held.length > 0 ? pick(held, i).sku : pick(SKU_POOL, i);
        const holding = held.find((l) => l.sku === sku)?.qty ?? 0;
        const qty = q.t === 'n' ? q.n : q.t === 'held' ? clampQty(holding) : q.t === 'part' ? clampQty(holding - 1) : clampQty(holding + 1);
        return { sku, qty };
      });
      return { kind: 'commit', input: { reservationId, lines } };
    }
    case 'release':
      return { kind: 'release', input: { reservationId: resolveReservation(w, spec.id) } };
    case 'extend':
      return { kind: 'extend', input: { reservationId: resolveReservation(w, spec.id), ttlMs: spec.ttl.t === 'max' ? LIMITS.ttlMsMax : spec.ttl.n } };
    case 'revoke': {
      const input: RevokeInput = withMeta({ requestId: resolveRevokeId(w, spec.id) }, spec.meta);
      return { kind: 'revoke', input };
    }
    case 'policy':
      return { kind: 'setPolicy', input: resolvePolicy(w, spec) };
    case 'sweep':
      return { kind: 'sweep', input: spec.limit === null ? {} : { limit: spec.limit } };
  }
}

/** One count, relative to the SKU's level now (a version that is current, stale, or any). */
function resolveCount(w: World, spec: CountLineSpec): CountLine {
  const sku = pick(SKU_POOL, spec.sku);
  const level = w.model.levelAt(sku, w.now);
  const c = spec.onHand;
  // A count is never negative (adjust refuses one): on a backordered SKU, 'current' counts 0.
  const onHand = c.t === 'n' ? c.n : c.t === 'current' ? Math.max(0, level.onHand) : c.t === 'max' ? MAX : MAX + 1;
  const v = spec.version;
  if (v.t === 'none') return { sku, onHand };
  return { sku, onHand, expectedVersion: v.t === 'n' ? v.n : v.t === 'current' ? level.version : level.version > 0 ? level.version - 1 : level.version + 1 };
}

function resolvePolicy(w: World, spec: Extract<WriteSpec, { kind: 'policy' }>): SetPolicyInput {
  const sku = pick(SKU_POOL, spec.sku);
  const input: SetPolicyInput = withMeta({ requestId: resolveId(w, spec.id), sku }, spec.meta);
  const value = (f: PolicyFieldSpec): number | null | undefined => {
    if (f.t === 'keep') return undefined;
    if (f.t === 'null') return null;
    if (f.t === 'n') return f.n;
    const level = w.model.levelAt(sku, w.now);
    return Math.max(0, level.reserved - level.onHand + f.d);
  };
  const backorderMax = value(spec.backorderMax);
  const lowStockAt = value(spec.lowStockAt);
  const buyerMax = value(spec.buyerMax);
  if (backorderMax !== undefined) input.backorderMax = backorderMax;
  if (lowStockAt !== undefined) input.lowStockAt = lowStockAt;
  if (buyerMax !== undefined) input.buyerMax = buyerMax;
  return input;
}

/** Same keys and values, object keys in reverse order (must not change the fingerprint). */
function reorderKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reorderKeys) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).reverse()) out[key] = reorderKeys((value as Record<string, unknown>)[key]);
    return out as T;
  }
  return value;
}

/**
 * Lines said another way with the same meaning: one-SKU lines reversed, and the first split
 * in two; with an `anyOf` line (order matters then) the same lines, defaults said or left out.
 */
function sameLinesOtherwise(lines: readonly OrderLine[]): OrderLine[] {
  if (lines.every((l): l is Line => 'sku' in l)) return splitLines(lines);
  return lines.map((l) => ('sku' in l ? { ...l } : otherDefaults(l)));
}

/** An `anyOf` line with `split` and `prefer` at their defaults said when left out, left out when said. */
function otherDefaults(line: AnyOfLine): AnyOfLine {
  const out: AnyOfLine = { anyOf: [...line.anyOf], qty: line.qty };
  if (line.split === undefined) out.split = false;
  else if (line.split) out.split = true;
  if (line.prefer === undefined) out.prefer = 'order';
  else if (line.prefer === 'mostAvailable') out.prefer = 'mostAvailable';
  return out;
}

/** Lines said another way with the same merged meaning: reversed, and the first line split in two. */
function splitLines(lines: readonly Line[]): Line[] {
  const out: Line[] = [];
  for (const line of [...lines].reverse()) {
    if (out.length === 0 && line.qty >= 2) out.push({ sku: line.sku, qty: 1 }, { sku: line.sku, qty: line.qty - 1 });
    else out.push({ ...line });
  }
  return out;
}

/** Merged and sorted, to compare lines by meaning. */
function merged(lines: readonly Line[]): string {
  const totals = new Map<string, number>();
  for (const l of lines) totals.set(l.sku, (totals.get(l.sku) ?? 0) + l.qty);
  return JSON.stringify([...totals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The same request, written differently but normalizing to the same payload. */
function replayOf(w: World, op: WriteOp, variant: ReplayVariant): WriteOp {
  const copy = structuredClone(op);
  if (copy.kind === 'commit') {
    const { reservationId, lines } = copy.input;
    const held = w.model.reservation(reservationId, w.now)?.lines;
    if (variant === 'split-lines' && lines !== undefined) return { kind: 'commit', input: { reservationId, lines: splitLines(lines) } };
    if (variant === 'other-form' && held !== undefined) {
      // All that is held, said with lines or without.
      if (lines === undefined) return { kind: 'commit', input: { reservationId, lines: splitLines(held) } };
      if (merged(lines) === merged(held)) return { kind: 'commit', input: { reservationId } };
    }
    return copy;
  }
  if (copy.kind === 'release' || copy.kind === 'extend' || copy.kind === 'sweep') return copy;
  switch (variant) {
    case 'same':
      return copy;
    case 'reorder-meta':
      if (copy.input.meta !== undefined) copy.input.meta = reorderKeys(copy.input.meta);
      return copy;
    case 'split-lines':
      if (copy.kind === 'deduct' && 'lines' in copy.input) return { kind: 'deduct', input: { ...copy.input, lines: sameLinesOtherwise(copy.input.lines) } };
      if (copy.kind === 'reverse' && copy.input.lines !== undefined) return { kind: 'reverse', input: { ...copy.input, lines: splitLines(copy.input.lines) } };
      if (copy.kind === 'reserve') return { kind: 'reserve', input: { ...copy.input, lines: sameLinesOtherwise(copy.input.lines) } };
      if (copy.kind === 'amend') return { kind: 'amend', input: { ...copy.input, lines: sameLinesOtherwise(copy.input.lines) } };
      if (copy.kind === 'restock' && 'lines' in copy.input) return { kind: 'restock', input: { ...copy.input, lines: splitLines(copy.input.lines) } };
      // Counts cannot be split (they are not added): reordered only.
      if (copy.kind === 'adjust' && 'lines' in copy.input) return { kind: 'adjust', input: { ...copy.input, lines: [...copy.input.lines].reverse() } };
      return copy;
    case 'other-form': {
      if (copy.kind === 'setPolicy') return { kind: 'setPolicy', input: otherPolicyForm(copy.input) };
      if (copy.kind === 'restock') return { kind: 'restock', input: otherLineForm(copy.input) };
      if (copy.kind === 'adjust') return { kind: 'adjust', input: otherLineForm(copy.input) };
      if (copy.kind !== 'deduct') return copy;
      const { meta, requestId } = copy.input;
      const base = meta === undefined ? { requestId } : { requestId, meta };
      if (!('lines' in copy.input)) return { kind: 'deduct', input: { ...base, lines: [{ sku: copy.input.sku, qty: copy.input.qty }] } };
      const [only, ...rest] = copy.input.lines;
      if (only === undefined || rest.length > 0 || !('sku' in only)) return copy;
      return { kind: 'deduct', input: { ...base, sku: only.sku, qty: only.qty } };
    }
  }
}

/**
 * A restock or adjust said in the other form: the shorthand as one line, one line as the
 * shorthand (several lines stay as they are).
 */
function otherLineForm<L extends object>(input: ({ requestId: string; meta?: JsonObject } & L) | { requestId: string; meta?: JsonObject; lines: L[] }): { requestId: string; meta?: JsonObject } & (L | { lines: L[] }) {
  const { requestId, meta } = input;
  const base = meta === undefined ? { requestId } : { requestId, meta };
  if (!('lines' in input)) {
    const { requestId: _id, meta: _meta, ...line } = input;
    return { ...base, lines: [line as unknown as L] };
  }
  const [only, ...rest] = input.lines;
  return only === undefined || rest.length > 0 ? input : { ...base, ...only };
}

/** The same policy said another way: a reset as its default value, and the default value as a reset. */
function otherPolicyForm(input: SetPolicyInput): SetPolicyInput {
  const out = { ...input };
  if (out.backorderMax === null) out.backorderMax = 0;
  else if (out.backorderMax === 0) out.backorderMax = null;
  return out;
}

const bump = (n: number): number => (n < MAX ? n + 1 : n - 1);
const otherSku = (sku: string): string => pick(SKU_POOL, SKU_POOL.indexOf(sku) + 1);

/** Lines with the first one changed: another SKU (an `anyOf` line becomes its first SKU alone), or another quantity. */
function changeFirst<L extends OrderLine>(lines: readonly L[], mutation: Mutation): Array<L | Line> {
  const [first, ...rest] = lines;
  if (first === undefined) return [{ sku: pick(SKU_POOL, 0), qty: 1 }];
  if (!('sku' in first)) {
    return [mutation === 'sku' ? { sku: first.anyOf[0] as string, qty: first.qty } : { ...first, qty: bump(first.qty) }, ...rest];
  }
  return [mutation === 'sku' ? { sku: otherSku(first.sku), qty: first.qty } : { sku: first.sku, qty: bump(first.qty) }, ...rest];
}

/**
 * The same id with a changed payload: a conflict if that id was applied (for a commit: if that
 * reservation was committed with other lines); else evaluated afresh.
 */
function mutate(w: World, op: WriteOp, mutation: Mutation): WriteOp {
  const copy = structuredClone(op);
  if (copy.kind === 'sweep') return copy;
  if (mutation === 'revoke') return swapRevoke(copy);
  // An extend has no payload to conflict with: a changed one is another extend, or a release.
  if (copy.kind === 'extend') {
    return mutation === 'kind' ? { kind: 'release', input: { reservationId: copy.input.reservationId } } : { ...copy, input: { ...copy.input, ttlMs: copy.input.ttlMs > 1 ? copy.input.ttlMs - 1 : 2 } };
  }
  if (copy.kind === 'revoke') {
    // A revoke's payload is its meta: any change is another meta (or none).
    if (mutation === 'kind') return { kind: 'deduct', input: { requestId: copy.input.requestId, sku: pick(SKU_POOL, 0), qty: 1 } };
    if (copy.input.meta === undefined || mutation === 'meta') copy.input.meta = { ...(copy.input.meta ?? {}), changed: true };
    else delete copy.input.meta;
    return copy;
  }
  if (copy.kind === 'release') {
    const { reservationId } = copy.input;
    const first = w.model.reservation(reservationId, w.now)?.lines[0];
    if (mutation === 'kind' || first === undefined) return { kind: 'commit', input: { reservationId } };
    return { kind: 'commit', input: { reservationId, lines: [{ sku: first.sku, qty: 1 }] } };
  }
  if (copy.kind === 'commit') {
    const { reservationId, lines } = copy.input;
    const held = w.model.reservation(reservationId, w.now)?.lines ?? [];
    switch (mutation) {
      case 'kind':
        return { kind: 'release', input: { reservationId } };
      case 'meta':
      case 'version':
        // Lines dropped (all that is held), or all that is held made partial.
        if (lines !== undefined) return { kind: 'commit', input: { reservationId } };
        if (held.length === 0) return { kind: 'commit', input: { reservationId, lines: [{ sku: pick(SKU_POOL, 0), qty: 1 }] } };
        return { kind: 'commit', input: { reservationId, lines: held.map((l, i) => (i === 0 ? { ...l, qty: Math.max(1, l.qty - 1) } : l)) } };
      case 'qty':
      case 'sku':
        return { kind: 'commit', input: { reservationId, lines: changeFirst(lines ?? held, mutation) } };
    }
  }
  const { requestId, meta } = copy.input;
  const firstSku = skusOf(copy)[0] ?? pick(SKU_POOL, 0);
  switch (mutation) {
    case 'meta':
      copy.input.meta = { ...(meta ?? {}), changed: true };
      return copy;
    case 'kind':
      if (copy.kind === 'deduct') return { kind: 'restock', input: { requestId, sku: firstSku, qty: 1 } };
      return { kind: 'deduct', input: { requestId, sku: firstSku, qty: 1 } };
    case 'version':
      if (copy.kind === 'adjust') {
        const count = firstCount(copy.input);
        if (count.expectedVersion === undefined) count.expectedVersion = 0;
        else delete count.expectedVersion;
        return copy;
      }
      if (copy.kind === 'reserve') {
        copy.input.ttlMs = copy.input.ttlMs < LIMITS.ttlMsMax ? copy.input.ttlMs + 1 : copy.input.ttlMs - 1;
        return copy;
      }
      if (copy.kind === 'deduct') {
        // Another buyer, or none where there was one: another payload.
        if (copy.input.buyer === undefined) copy.input.buyer = pick(BUYER_POOL, 0);
        else if (copy.input.buyer === pick(BUYER_POOL, 0)) copy.input.buyer = pick(BUYER_POOL, 1);
        else delete copy.input.buyer;
        return copy;
      }
      return mutate(w, copy, 'qty');
    case 'qty':
    case 'sku': {
      switch (copy.kind) {
        case 'restock':
          if ('lines' in copy.input) copy.input.lines = changeFirst(copy.input.lines, mutation);
          else if (mutation === 'sku') copy.input.sku = otherSku(copy.input.sku);
          else copy.input.qty = bump(copy.input.qty);
          return copy;
        case 'adjust': {
          // In a stocktake, another SKU may repeat one: INVALID_INPUT on both sides.
          const count = firstCount(copy.input);
          if (mutation === 'sku') count.sku = otherSku(count.sku);
          else count.onHand = bump(count.onHand);
          return copy;
        }
        case 'deduct': {
          const lines = 'lines' in copy.input ? copy.input.lines : [{ sku: copy.input.sku, qty: copy.input.qty }];
          return { kind: 'deduct', input: { ...(meta === undefined ? {} : { meta }), requestId, lines: changeFirst(lines, mutation) } };
        }
        case 'reverse':
          copy.input.lines = copy.input.lines === undefined ? [{ sku: firstSku, qty: 1 }] : changeFirst(copy.input.lines, mutation);
          return copy;
        case 'reserve':
        case 'amend':
          copy.input.lines = changeFirst(copy.input.lines, mutation);
          return copy;
        case 'setPolicy':
          if (mutation === 'sku') copy.input.sku = otherSku(copy.input.sku);
          else copy.input.lowStockAt = copy.input.lowStockAt === undefined ? 3 : copy.input.lowStockAt === null ? 0 : bump(copy.input.lowStockAt);
          return copy;
      }
    }
  }
}

/** The first count of an adjust (the input itself for the shorthand), to change in place. */
function firstCount(input: AdjustInput): CountLine {
  return 'lines' in input ? (input.lines[0] as CountLine) : input;
}

/**
 * The same id under the other side of a revoke: a revoke of an op's id (of a reservation's id,
 * for a commit or release), or a restock under a revoke's id.
 */
function swapRevoke(op: Exclude<WriteOp, { kind: 'sweep' }>): WriteOp {
  if (op.kind === 'revoke') return { kind: 'restock', input: { requestId: op.input.requestId, sku: pick(SKU_POOL, 1), qty: 1 } };
  const requestId = op.kind === 'commit' || op.kind === 'release' || op.kind === 'extend' ? op.input.reservationId : op.input.requestId;
  const meta = op.kind === 'commit' || op.kind === 'release' || op.kind === 'extend' ? undefined : op.input.meta;
  return { kind: 'revoke', input: meta === undefined ? { requestId } : { requestId, meta } };
}

/** An outcome in a few words, for the trace. */
function brief(outcome: Outcome): string {
  if (outcome === null) return 'null';
  if ('thrown' in outcome) return `threw ${outcome.thrown}`;
  if ('expired' in outcome) return `expired ${outcome.expired}, more ${outcome.more}`;
  if (!('ok' in outcome)) return show(outcome);
  if (!outcome.ok) return outcome.code;
  return `${outcome.replayed ? 'replayed' : 'applied'}, entries ${outcome.entries.map((e) => e.seq).join(',')}`;
}

function isRejection(outcome: Outcome): boolean {
  return outcome !== null && 'ok' in outcome && !outcome.ok;
}

function isFirstApplication(outcome: Outcome): boolean {
  return outcome !== null && 'ok' in outcome && outcome.ok && 'replayed' in outcome && !outcome.replayed;
}

/** Sends one write at the current time to both sides and compares the outcome, then every read. */
async function exchange(w: World, r: Real, op: WriteOp): Promise<void> {
  r.clock.now = w.now;
  w.latest = Math.max(w.latest, w.now);
  // Read before the op: a commit or release covers every SKU the reservation holds.
  const heldSkus = op.kind === 'commit' || op.kind === 'release' ? (w.model.reservation(op.input.reservationId, w.now)?.lines ?? []).map((l) => l.sku) : [];
  const expected = w.model.apply(op, w.now);
  const actual = await runOp(r.ledger, op);
  if (op.kind !== 'sweep') w.sent.push(op);
  if (op.kind === 'reserve' && !w.reserved.includes(op.input.requestId)) w.reserved.push(op.input.requestId);
  if (isRequestOp(op) && isRejection(actual) && !w.rejected.includes(op.input.requestId)) w.rejected.push(op.input.requestId);
  if (isFirstApplication(actual)) {
    if (isRequestOp(op)) w.applied.push({ requestId: op.input.requestId, skus: skusOf(op) });
    else if (op.kind === 'commit' || op.kind === 'release') w.applied.push({ requestId: op.input.reservationId, kind: op.kind, skus: heldSkus });
  }
  w.trace.push(`at ${w.now}: ${describeOp(op)} -> ${brief(actual)}`);
  assertEqual(actual, expected, `outcome of ${describeOp(op)} at ${w.now}`);
  await compareReads(w, r, `after ${describeOp(op)} at ${w.now}`);
}

/** Levels of every SKU and every known reservation, read at the current time, are the model's. */
async function compareReads(w: World, r: Real, when: string): Promise<void> {
  const skus = [...SKU_POOL, UNTOUCHED_SKU, pick(SKU_POOL, 0)];
  assertEqual(await r.ledger.stocks(skus), skus.map((sku) => w.model.levelAt(sku, w.now)), `levels ${when}`);
  for (const buyer of BUYER_POOL) {
    assertEqual(await r.ledger.buyerTotals({ buyer, skus }), skus.map((sku) => ({ sku, buyer, taken: w.model.buyerTakenAt(sku, buyer, w.now) })),
      `buyerTotals of ${show(buyer)} ${when}`);
  }
  for (const id of [...w.reserved, UNKNOWN_ID]) {
    assertEqual(await r.ledger.reservation(id), w.model.reservation(id, w.now), `reservation(${show(id)}) ${when}`);
  }
}

abstract class Step implements fc.AsyncCommand<World, Real> {
  protected last: string | null = null;
  check(): boolean {
    return true;
  }
  abstract run(w: World, r: Real): Promise<void>;
  abstract describe(): string;
  toString(): string {
    return this.last ?? this.describe();
  }
}

class WriteStep extends Step {
  constructor(readonly spec: WriteSpec, readonly dtMs: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    w.now += this.dtMs;
    const op = resolveWrite(w, this.spec);
    this.last = `+${this.dtMs}ms ${describeOp(op)}`;
    await exchange(w, r, op);
  }
  describe(): string {
    return `write ${show(this.spec)} after ${this.dtMs}ms`;
  }
}

/** An earlier op, for a replay or a changed re-send. */
function earlier(w: World, { k, of }: Earlier): WriteOp | undefined {
  const wanted = of === 'reservations'
    ? w.sent.filter((op) => op.kind === 'reserve' || op.kind === 'commit' || op.kind === 'release')
    : of === 'revokes' ? w.sent.filter((op) => op.kind === 'revoke') : w.sent;
  const from = wanted.length > 0 ? wanted : w.sent;
  return from.length === 0 ? undefined : pick(from, from.length - 1 - k);
}

class ReplayStep extends Step {
  constructor(readonly which: Earlier, readonly variant: ReplayVariant, readonly dtMs: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const original = earlier(w, this.which);
    if (original === undefined) return;
    w.now += this.dtMs;
    const op = replayOf(w, original, this.variant);
    this.last = `+${this.dtMs}ms replay(${this.variant}) ${describeOp(op)}`;
    await exchange(w, r, op);
  }
  describe(): string {
    return `replay ${show(this.which)} ${this.variant}`;
  }
}

class ConflictStep extends Step {
  constructor(readonly which: Earlier, readonly mutation: Mutation, readonly dtMs: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const original = earlier(w, this.which);
    if (original === undefined) return;
    w.now += this.dtMs;
    const op = mutate(w, original, this.mutation);
    this.last = `+${this.dtMs}ms changed(${this.mutation}) ${describeOp(op)}`;
    await exchange(w, r, op);
  }
  describe(): string {
    return `changed payload of ${show(this.which)} (${this.mutation})`;
  }
}

/**
 * Moves the clock, forward or back, then compares every read: due holds must read as expired,
 * and after a move back, holds not yet expired in storage hold again while a reservation
 * with an expired hold stays expired.
 */
class ClockStep extends Step {
  constructor(readonly spec: ClockSpec) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    w.now = clockTarget(w, this.spec);
    w.latest = Math.max(w.latest, w.now);
    r.clock.now = w.now;
    this.last = `clock ${show(this.spec)} -> ${w.now}`;
    w.trace.push(`clock -> ${w.now}`);
    await compareReads(w, r, `at ${w.now}`);
  }
  describe(): string {
    return `clock ${show(this.spec)}`;
  }
}

/** Where a clock move lands: never below 0 (the ledger refuses a negative clock). */
function clockTarget(w: World, spec: ClockSpec): number {
  if (spec.t === 'by') return w.now + spec.ms;
  if (spec.t === 'back') return Math.max(0, w.now - spec.ms);
  // Mostly the soonest expiries of holds still held, so some fall due while others still hold;
  // moving back, any reservation's, so that a written expiry ends up in the future.
  const reservations = w.reserved.flatMap((id) => w.model.reservation(id, w.now) ?? []);
  const held = reservations.filter((x) => x.state === 'held');
  const expiries = (held.length > 0 && !spec.back ? held : reservations).map((x) => x.expiresAt).sort((a, b) => a - b);
  const target = expiries[Math.min(spec.k, expiries.length - 1)];
  if (target === undefined) return w.now;
  return spec.back ? Math.max(0, target + spec.deltaMs) : Math.max(w.now, target + spec.deltaMs);
}

class EntriesStep extends Step {
  constructor(readonly after: { t: 'n'; n: number } | { t: 'end'; plus: number }, readonly sku: number | null, readonly limit: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const all = w.model.entries();
    const after = this.after.t === 'n' ? this.after.n : all.length + this.after.plus;
    const sku = this.sku === null ? null : pick(SKU_POOL, this.sku);
    const query = sku === null ? { after, limit: this.limit } : { after, sku, limit: this.limit };
    this.last = `entries(${show(query)})`;
    w.trace.push(this.last);
    const page = await r.ledger.entries(query);
    const expected = all.filter((e) => e.seq > after && (sku === null || e.sku === sku)).slice(0, this.limit);
    const last = expected[expected.length - 1];
    assertEqual(page, { entries: expected, next: last === undefined ? null : last.seq }, this.last);
  }
  describe(): string {
    return `entries ${show([this.after, this.sku, this.limit])}`;
  }
}

class RequestStep extends Step {
  constructor(readonly id: IdSpec) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const requestId = this.id.t === 'fresh' ? `n${w.fresh + 1}` : resolveId(w, this.id);
    this.last = `request(${show(requestId)})`;
    w.trace.push(this.last);
    assertEqual(await r.ledger.request(requestId), w.model.request(requestId), this.last);
  }
  describe(): string {
    return `request ${show(this.id)}`;
  }
}

const weighted = <T>(...items: Array<[number, fc.Arbitrary<T>]>): fc.Arbitrary<T> =>
  fc.oneof(...items.map(([weight, arbitrary]) => ({ weight, arbitrary })));

const skuIndex = weighted<number>([4, fc.nat({ max: HOT_SKUS - 1 })], [3, fc.nat({ max: SKU_POOL.length - 1 })]);
const metaIndex = weighted<number>([4, fc.constant(-1)], [2, fc.nat({ max: META_POOL.length - 1 })]);
/** Mostly a buyer (so SKUs with a buyerMax sell), sometimes none. */
const buyerIndex = weighted<number>([1, fc.constant(-1)], [3, fc.nat({ max: BUYER_POOL.length - 1 })]);
const dtMs = weighted<number>([2, fc.constant(0)], [1, fc.integer({ min: 1, max: 10 })], [3, fc.integer({ min: 1, max: 1000 })]);
const idSpec = weighted<IdSpec>(
  [5, fc.constant({ t: 'fresh' as const })],
  [2, weighted<number>([1, fc.nat({ max: HOT_IDS - 1 })], [2, fc.nat({ max: REQUEST_ID_POOL.length - 1 })]).map((i) => ({ t: 'pool' as const, i }))],
  [1, fc.nat({ max: 60 }).map((k) => ({ t: 'used' as const, k }))],
  [1, fc.nat({ max: 10 }).map((k) => ({ t: 'revoked' as const, k }))],
);
/** Mostly ids that were rejected (closing them is what revoke is for), else any. */
const revokeIdSpec = weighted<RevokeIdSpec>(
  [3, fc.nat({ max: 3 }).map((k) => ({ t: 'rejected' as const, k }))],
  [3, idSpec],
);
const reservationSpec = weighted<ReservationSpec>(
  [6, fc.nat({ max: 30 }).map((k) => ({ t: 'live' as const, k }))],
  [3, fc.nat({ max: 30 }).map((k) => ({ t: 'known' as const, k }))],
  [1, idSpec],
);
const smallQty = (max: number): fc.Arbitrary<{ t: 'n'; n: number }> => fc.integer({ min: 1, max }).map((n) => ({ t: 'n' as const, n }));
const restockQty = weighted<QtySpec>(
  [8, smallQty(40)],
  [1, fc.constantFrom<QtySpec>({ t: 'fill' }, { t: 'overfill' }, { t: 'max' })],
);
/** Mostly one line (often sent as the shorthand), sometimes a purchase order of several (a SKU may repeat: merged). */
const restockLines = weighted(
  [3, fc.array(fc.record({ sku: skuIndex, qty: restockQty }), { minLength: 1, maxLength: 1 })],
  [2, fc.array(fc.record({ sku: skuIndex, qty: restockQty }), { minLength: 2, maxLength: 5 })],
);
/** A count per line, each with its own expected version: current, stale or any. */
const countLine = fc.record({
  sku: skuIndex,
  onHand: weighted<CountSpec>(
    [6, fc.nat({ max: 30 }).map((n) => ({ t: 'n' as const, n }))],
    [2, fc.constant({ t: 'current' as const })],
    [1, fc.constantFrom<CountSpec>({ t: 'max' }, { t: 'over' })],
  ),
  version: weighted<VersionSpec>(
    [3, fc.constant({ t: 'none' as const })],
    [3, fc.constant({ t: 'current' as const })],
    [2, fc.constant({ t: 'stale' as const })],
    [1, fc.nat({ max: 5 }).map((n) => ({ t: 'n' as const, n }))],
  ),
});
/** Mostly one count, sometimes a stocktake of several SKUs (a repeated SKU is dropped when resolved). */
const countLines = weighted(
  [3, fc.array(countLine, { minLength: 1, maxLength: 1 })],
  [2, fc.array(countLine, { minLength: 2, maxLength: 5 })],
);
const lineQty = weighted<QtySpec>(
  [8, smallQty(4)],
  [2, fc.constantFrom<QtySpec>({ t: 'available' }, { t: 'over' })],
  [1, fc.constant<QtySpec>({ t: 'max' })],
);
/** Mostly one-SKU lines; an `anyOf` line now and then, over 2 to 4 SKUs (duplicates dropped). */
const altSpec = weighted<AltSpec | null>(
  [4, fc.constant(null)],
  [1, fc.record({
    more: fc.array(skuIndex, { minLength: 1, maxLength: 3 }),
    split: fc.constantFrom(undefined, false, true, true),
    prefer: fc.constantFrom(undefined, 'order' as const, 'mostAvailable' as const),
  })],
);
const lineSpecs = weighted(
  [3, fc.array(fc.record({ sku: skuIndex, qty: lineQty, alt: altSpec }), { minLength: 1, maxLength: 2 })],
  [1, fc.array(fc.record({ sku: skuIndex, qty: lineQty, alt: altSpec }), { minLength: 3, maxLength: 5 })],
);
/** Holds ask for what is there more often than deducts do, so that there is something to commit. */
const holdQty = weighted<QtySpec>(
  [12, smallQty(3)],
  [1, fc.constant<QtySpec>({ t: 'available' })],
  [1, fc.constantFrom<QtySpec>({ t: 'over' }, { t: 'max' })],
);
const holdLineSpecs = weighted(
  [3, fc.array(fc.record({ sku: skuIndex, qty: holdQty, alt: altSpec }), { minLength: 1, maxLength: 3 })],
  [1, fc.array(fc.record({ sku: skuIndex, qty: holdQty, alt: altSpec }), { minLength: 4, maxLength: 5 })],
);
/** Short TTLs (often equal, so holds fall due together), some long ones, and the longest allowed. */
const ttlSpec = weighted<TtlSpec>(
  [2, fc.constantFrom(1, 2, 5, 10, 100).map((n) => ({ t: 'n' as const, n }))],
  [2, fc.integer({ min: 1, max: 3000 }).map((n) => ({ t: 'n' as const, n }))],
  [3, fc.constantFrom(60_000, 86_400_000).map((n) => ({ t: 'n' as const, n }))],
  [1, fc.constant({ t: 'max' as const })],
);

const writeSpec: fc.Arbitrary<WriteSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('restock' as const), id: idSpec, lines: restockLines, shorthand: fc.boolean(), meta: metaIndex }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('deduct' as const), id: idSpec, meta: metaIndex, shorthand: fc.boolean(), lines: lineSpecs, buyer: buyerIndex }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('adjust' as const), id: idSpec, lines: countLines, shorthand: fc.boolean(), meta: metaIndex }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('reverse' as const), id: idSpec, meta: metaIndex,
      of: weighted<OfSpec>(
        [4, fc.nat({ max: 20 }).map((k) => ({ t: 'deduct' as const, k }))],
        [2, fc.nat({ max: 20 }).map((k) => ({ t: 'reservation' as const, k }))],
        [1, idSpec],
      ),
      lines: fc.option(
        fc.array(
          fc.record({
            sku: skuIndex,
            taken: weighted<boolean>([4, fc.constant(true)], [1, fc.constant(false)]),
            qty: weighted<ReverseQtySpec>([2, smallQty(2)], [3, fc.constant({ t: 'remaining' as const })], [1, fc.constant({ t: 'over' as const })]),
          }),
          { minLength: 1, maxLength: 2 },
        ),
        { nil: null, freq: 2 },
      ),
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('reserve' as const), id: idSpec, lines: holdLineSpecs, ttl: ttlSpec, meta: metaIndex, buyer: buyerIndex }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('amend' as const), id: idSpec, reservation: reservationSpec, lines: holdLineSpecs, meta: metaIndex }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('commit' as const), id: reservationSpec,
      lines: fc.option(
        fc.array(
          fc.record({
            sku: skuIndex,
            held: weighted<boolean>([5, fc.constant(true)], [1, fc.constant(false)]),
            qty: weighted<CommitQtySpec>(
              [2, smallQty(3)],
              [2, fc.constant({ t: 'held' as const })],
              [2, fc.constant({ t: 'part' as const })],
              [1, fc.constant({ t: 'over' as const })],
            ),
          }),
          { minLength: 1, maxLength: 2 },
        ),
        { nil: null, freq: 2 },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), id: reservationSpec }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('extend' as const), id: reservationSpec, ttl: ttlSpec }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('revoke' as const), id: revokeIdSpec, meta: metaIndex }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('policy' as const), id: idSpec, sku: skuIndex, meta: metaIndex,
      backorderMax: weighted<PolicyFieldSpec>(
        [2, fc.constant({ t: 'keep' as const })],
        [1, fc.constant({ t: 'null' as const })],
        [4, fc.nat({ max: 8 }).map((n) => ({ t: 'n' as const, n }))],
        [2, fc.constantFrom(-1, 0).map((d) => ({ t: 'edge' as const, d }))],
        [1, fc.constant({ t: 'n' as const, n: MAX })],
      ),
      lowStockAt: weighted<PolicyFieldSpec>(
        [4, fc.constant({ t: 'keep' as const })],
        [1, fc.constant({ t: 'null' as const })],
        [2, fc.nat({ max: 10 }).map((n) => ({ t: 'n' as const, n }))],
      ),
      buyerMax: weighted<PolicyFieldSpec>(
        [4, fc.constant({ t: 'keep' as const })],
        [1, fc.constant({ t: 'null' as const })],
        [3, fc.nat({ max: 4 }).map((n) => ({ t: 'n' as const, n }))],
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('sweep' as const),
      limit: weighted<number | null>([2, fc.constant(null)], [2, fc.integer({ min: 1, max: 3 })], [1, fc.constant(LIMITS.sweepHoldsMax)]),
    }),
  },
);

const clockSpec = weighted<ClockSpec>(
  [2, fc.integer({ min: 0, max: 3 }).map((ms) => ({ t: 'by' as const, ms }))],
  [2, fc.integer({ min: 1, max: 1000 }).map((ms) => ({ t: 'by' as const, ms }))],
  [1, fc.integer({ min: 1000, max: 200_000 }).map((ms) => ({ t: 'by' as const, ms }))],
  [1, fc.constant({ t: 'by' as const, ms: LIMITS.ttlMsMax })],
  [4, fc.tuple(weighted<number>([4, fc.constant(0)], [1, fc.nat({ max: 5 })]), fc.constantFrom(-1, 0, 0, 0, 1))
    .map(([k, deltaMs]) => ({ t: 'to' as const, k, deltaMs, back: false }))],
  [1, fc.integer({ min: 1, max: 2000 }).map((ms) => ({ t: 'back' as const, ms }))],
  [1, fc.tuple(fc.nat({ max: 5 }), fc.constantFrom(-2, -1, 0, 1)).map(([k, deltaMs]) => ({ t: 'to' as const, k, deltaMs, back: true }))],
);

/** Mostly recent ops (k counts back from the last one). */
const earlierSpec: fc.Arbitrary<Earlier> = fc.record({
  k: weighted<number>([3, fc.nat({ max: 3 })], [1, fc.nat({ max: 60 })]),
  of: fc.constantFrom<Earlier['of']>('any', 'any', 'reservations', 'revokes'),
});

const writeStep = writeSpec.chain((spec) => dtMs.map((dt) => new WriteStep(spec, dt)));
const steps: Array<fc.Arbitrary<fc.AsyncCommand<World, Real>>> = [
  writeStep,
  writeStep,
  writeStep,
  writeStep,
  fc.tuple(earlierSpec, fc.constantFrom<ReplayVariant>('same', 'reorder-meta', 'split-lines', 'other-form'), dtMs)
    .map(([which, variant, dt]) => new ReplayStep(which, variant, dt)),
  fc.tuple(earlierSpec, fc.constantFrom<Mutation>('qty', 'meta', 'kind', 'sku', 'version', 'revoke'), dtMs)
    .map(([which, mutation, dt]) => new ConflictStep(which, mutation, dt)),
  clockSpec.map((spec) => new ClockStep(spec)),
  fc.tuple(
    weighted<{ t: 'n'; n: number } | { t: 'end'; plus: number }>(
      [3, fc.nat({ max: 8 }).map((n) => ({ t: 'n' as const, n }))],
      [1, fc.integer({ min: -1, max: 3 }).map((plus) => ({ t: 'end' as const, plus: Math.max(plus, 0) }))],
    ),
    fc.option(skuIndex, { nil: null }),
    weighted<number>([3, fc.integer({ min: 1, max: 4 })], [1, fc.constant(LIMITS.entriesPageMax)]),
  ).map(([after, sku, limit]) => new EntriesStep(after, sku, limit)),
  idSpec.map((id) => new RequestStep(id)),
];

/**
 * Model-based differential test: random command sequences against the store and the
 * {@link ReferenceModel}: every operation (reservations and revokes included: of fresh, rejected,
 * applied and revoked ids, and later uses of revoked ids), replays, changed payloads, and clock
 * moves forward and back, on SKUs and ids at the edges of every key encoding. After every
 * command the outcome, the level of every SKU and the state of every known reservation (read at
 * the current time) must be the model's. At the end the whole entry feed and every request record
 * must be the model's, and the invariants hold.
 *
 * @example
 * ```ts
 * await differentialProperty('my-store: differential', () => new MyStore(), 400);
 * ```
 */
export async function differentialProperty(
  caseName: string,
  createStore: () => StockStore | Promise<StockStore>,
  numRuns: number,
): Promise<void> {
  const initialQty = weighted<number>([1, fc.constant(0)], [1, fc.nat({ max: 60 })], [3, fc.integer({ min: 10, max: 60 })]);
  // The hot SKUs always, a few more sometimes (the rest get stock from the commands' restocks).
  const initialStock = fc.array(initialQty, { minLength: HOT_SKUS + 2, maxLength: SKU_POOL.length });
  // A few reservations from the start (through the same checked path), so commits and releases have work.
  const initialHolds = fc.array(fc.tuple(holdLineSpecs, ttlSpec, metaIndex), { maxLength: 3 });
  const commands = fc.commands(steps, { maxCommands: 60, size: 'large', ...commandsReplayPath() });
  const property = fc.asyncProperty(initialStock, initialHolds, commands, async (initial, holds, commands) => {
    const clock = { now: 1_000_000 };
    const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
    const world: World = {
      model: new ReferenceModel(), now: clock.now, latest: clock.now, sent: [], applied: [], reserved: [], rejected: [], fresh: 0, trace: [],
    };
    try {
      for (const [i, qty] of initial.entries()) {
        if (qty > 0) await exchange(world, { ledger, clock }, { kind: 'restock', input: { requestId: `initial-${i}`, sku: pick(SKU_POOL, i), qty } });
      }
      for (const [i, [lines, ttl, meta]] of holds.entries()) {
        await exchange(world, { ledger, clock }, resolveWrite(world, { kind: 'reserve', id: { t: 'pool', i }, lines, ttl, meta, buyer: i - 1 }));
      }
      await fc.asyncModelRun(() => ({ model: world, real: { ledger, clock } }), commands);
      // The invariant checks read at a time no write is after (the clock may have moved back).
      clock.now = world.latest;
      await finalComparison(world, ledger);
    } catch (error) {
      if (!(error instanceof ConformanceError)) throw error;
      const trace = world.trace.length > TRACE_LINES_MAX ? ['...', ...world.trace.slice(-TRACE_LINES_MAX)] : world.trace;
      throw new ConformanceError(`${error.message}\nThe failing run, call by call (clock starts at 1000000):\n  ${trace.join('\n  ')}`, { cause: error });
    } finally {
      await ledger.close();
    }
  });
  await runProperty(caseName, property, numRuns);
}

async function finalComparison(w: World, ledger: StockLedger): Promise<void> {
  const { entries } = await checkInvariants(ledger, { operations: w.applied });
  assertEqual(entries, w.model.entries(), 'the whole entry feed');
  const sentIds = w.sent.filter((op): op is RequestOp => isRequestOp(op)).map((op) => op.input.requestId);
  const ids = new Set([...REQUEST_ID_POOL, ...sentIds, ...w.reserved]);
  for (const id of ids) assertEqual(await ledger.request(id), w.model.request(id), `request(${show(id)})`);
}
