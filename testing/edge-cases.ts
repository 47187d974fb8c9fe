import { LIMITS, StockLedger } from '../src/index.js';
import type { Entry, Level, StockStore } from '../src/index.js';
import { assertEqual, check, ConformanceError, fail, show } from './assert.js';
import { checkInvariants } from './invariants.js';
import { runOp, type Op, type Outcome } from './ops.js';
import { seededFailure } from './property.js';
import { readAllEntries } from './reservation-races.js';
import { seededRandom } from './random.js';

type StoreFactory = () => StockStore | Promise<StockStore>;

/** Separators a store might join two caller strings with; U+0000 included (callers may send it). */
const SEPARATORS = ['\u0000', ':', '|'] as const;

/**
 * Keys built from two caller strings must not collide. For each separator `s`: reservation `a`
 * holds `b{s}c` and `c`, reservation `a{s}b` holds `c` (joined with `s`, both pairs are
 * `a{s}b{s}c`). The short hold of `a{s}b` falls due; a commit of `a` first expires it, then
 * sells. Past `a`'s expiry nothing may stay reserved, no hold may be left to sweep, and verify()
 * is ok. The same for the reversal tally of a request id and a SKU: deduct `a` of `b{s}c` and
 * deduct `a{s}b` of `c` are each reversed in full.
 *
 * @example
 * ```ts
 * await compositeKeyCase(() => new MemoryStore());
 * ```
 */
export async function compositeKeyCase(createStore: StoreFactory): Promise<void> {
  for (const separator of SEPARATORS) {
    try {
      await holdKeys(await createStore(), separator);
      await reversalKeys(await createStore(), separator);
    } catch (error) {
      if (!(error instanceof ConformanceError)) throw error;
      throw new ConformanceError(`with separator ${show(separator)}: ${error.message}`, { cause: error });
    }
  }
}

async function holdKeys(store: StockStore, s: string): Promise<void> {
  const [skuJoined, sku, id, idJoined] = [`b${s}c`, 'c', 'a', `a${s}b`];
  const clock = { now: 1000 };
  const ledger = new StockLedger({ store, clock: () => clock.now });
  try {
    await ledger.restockOrThrow({ requestId: 'po-1', sku: skuJoined, qty: 5 });
    await ledger.restockOrThrow({ requestId: 'po-2', sku, qty: 5 });
    await ledger.reserveOrThrow({ requestId: id, lines: [{ sku: skuJoined, qty: 2 }, { sku, qty: 1 }], ttlMs: 60_000 });
    await ledger.reserveOrThrow({ requestId: idJoined, lines: [{ sku, qty: 1 }], ttlMs: 10 });
    clock.now = 1010;
    const sold = await ledger.commitOrThrow({ reservationId: id });
    assertEqual(sold.entries.map((e) => [e.kind, e.sku, e.onHandDelta, e.reservedDelta]),
      [['commit', skuJoined, -2, -2], ['commit', sku, -1, -1]], `the commit of ${show(id)}`);
    const expired = (await readAllEntries(ledger)).filter((e) => e.kind === 'expire');
    assertEqual(expired.map((e) => [e.requestId, e.sku]), [[idJoined, sku]], 'the expiry the commit wrote first');
    clock.now = 1000 + 60_000 + 1;
    assertEqual(await ledger.stocks([skuJoined, sku]), [
      { sku: skuJoined, onHand: 3, reserved: 0, available: 3, version: 3 },
      { sku, onHand: 4, reserved: 0, available: 4, version: 5 },
    ], 'levels past every expiry');
    assertEqual(await ledger.sweepExpired(), { expired: 0, more: false, entries: [] }, 'a sweep past every expiry: nothing left held');
    assertEqual([(await ledger.reservation(id))?.state, (await ledger.reservation(idJoined))?.state], ['committed', 'expired'], 'states');
    const report = await ledger.verify();
    check(report.ok, () => `verify() after the commit: ${show(report.drift)}`);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

async function reversalKeys(store: StockStore, s: string): Promise<void> {
  const ledger = new StockLedger({ store, clock: () => 1000 });
  try {
    await ledger.restockOrThrow({ requestId: 'po-1', sku: `b${s}c`, qty: 5 });
    await ledger.restockOrThrow({ requestId: 'po-2', sku: 'c', qty: 5 });
    await ledger.deductOrThrow({ requestId: 'a', sku: `b${s}c`, qty: 2 });
    await ledger.deductOrThrow({ requestId: `a${s}b`, sku: 'c', qty: 2 });
    await ledger.reverseOrThrow({ requestId: 'refund-1', of: 'a', lines: [{ sku: `b${s}c`, qty: 2 }] });
    const second = await ledger.reverse({ requestId: 'refund-2', of: `a${s}b`, lines: [{ sku: 'c', qty: 2 }] });
    assertEqual(second.ok ? second.levels : second, [{ sku: 'c', onHand: 5, reserved: 0, available: 5, version: 3 }], `the reverse of ${show(`a${s}b`)}`);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

/** Holds of the expiry-cap case: past `LIMITS.expiriesPerSkuMax` on one SKU. */
const CAP_HOLDS = LIMITS.expiriesPerSkuMax + 25;
/** Stride of the TTL permutation (prime, coprime to {@link CAP_HOLDS}): expiry order is not id order. */
const TTL_STRIDE = 7919;

/**
 * More due holds on one SKU than one operation expires (`LIMITS.expiriesPerSkuMax`), and more
 * due holds in the ledger than one sweep does (`LIMITS.sweepHoldsMax`): reservations of one unit
 * of `HOT` and one of `WARM` each, with distinct TTLs in an order unlike their ids'. Once all are
 * due, reads count every one as expired. A deduct of everything expires the soonest
 * `expiriesPerSkuMax` holds of HOT and is then refused: the holds past the cap still block, and
 * only they (as LIMITS documents). A sweep expires the soonest `sweepHoldsMax` holds anywhere and
 * says there are more; the same deduct then expires the rest of HOT and applies; a last sweep
 * clears WARM.
 *
 * @example
 * ```ts
 * await expiryCapCase(() => new MemoryStore());
 * ```
 */
export async function expiryCapCase(createStore: StoreFactory): Promise<void> {
  const start = 1_000_000;
  const clock = { now: start };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    const onHand = CAP_HOLDS + 10;
    await ledger.restockOrThrow({ requestId: 'po-hot', sku: 'HOT', qty: onHand });
    await ledger.restockOrThrow({ requestId: 'po-warm', sku: 'WARM', qty: onHand });
    const ttl = (i: number): number => 1 + ((i * TTL_STRIDE) % CAP_HOLDS);
    // At once: stores that batch concurrent calls (group commit) write them in a few steps.
    const held = await Promise.all(Array.from({ length: CAP_HOLDS }, (_, i) =>
      ledger.reserve({ requestId: `h${i}`, lines: [{ sku: 'HOT', qty: 1 }, { sku: 'WARM', qty: 1 }], ttlMs: ttl(i) })));
    check(held.every((r) => r.ok), () => `a reserve of the flood was refused: ${show(held.find((r) => !r.ok))}`);
    clock.now = start + CAP_HOLDS + 1;
    const due = { onHand, reserved: 0, available: onHand, version: 1 + 2 * CAP_HOLDS };
    assertEqual(await ledger.stocks(['HOT', 'WARM']), [{ sku: 'HOT', ...due }, { sku: 'WARM', ...due }], 'levels once every hold is due');
    await deductPastTheCap(ledger, onHand);
    assertEqual(await ledger.stocks(['HOT', 'WARM']), [{ sku: 'HOT', ...due }, { sku: 'WARM', ...due }], 'levels after the refused deduct wrote expiries');
    await sweepPastTheLimit(ledger);
    const sold = await ledger.deduct({ requestId: 'big', sku: 'HOT', qty: onHand });
    assertEqual(sold.ok ? sold.levels : sold, [{ sku: 'HOT', onHand: 0, reserved: 0, available: 0, version: due.version + 1 }],
      'the same deduct once the holds past the cap are cleared');
    const rest = await ledger.sweepExpired();
    assertEqual([rest.expired, rest.more, new Set(rest.entries.map((e) => e.sku))], [20, false, new Set(['WARM'])], 'the last sweep');
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

/** A reservation's place in expiry order (0: the soonest); its TTL is one more. */
const rankOf = (i: number): number => (i * TTL_STRIDE) % CAP_HOLDS;

/** The reservations whose ranks in expiry order run from `first` to `last`. */
function idsByExpiry(first: number, last: number): Set<string> {
  const ids = new Set<string>();
  for (let i = 0; i < CAP_HOLDS; i += 1) if (rankOf(i) >= first && rankOf(i) <= last) ids.add(`h${i}`);
  check(ids.size === last - first + 1, () => 'the TTLs are not a permutation');
  return ids;
}

async function deductPastTheCap(ledger: StockLedger, onHand: number): Promise<void> {
  const cap = LIMITS.expiriesPerSkuMax;
  const before = (await readAllEntries(ledger)).length;
  assertEqual(await ledger.deduct({ requestId: 'big', sku: 'HOT', qty: onHand }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: 'HOT', requested: onHand, available: onHand - (CAP_HOLDS - cap) },
    `a deduct of everything with ${CAP_HOLDS} due holds (${CAP_HOLDS - cap} past the cap still block)`);
  const written = (await readAllEntries(ledger)).slice(before);
  check(written.every((e) => e.kind === 'expire' && e.sku === 'HOT'), () => 'the refused deduct wrote something besides expiries of HOT');
  assertEqual(new Set(written.map((e) => e.requestId)), idsByExpiry(0, cap - 1), `the ${cap} holds it expired: the soonest`);
  assertEqual(await ledger.request('big'), null, 'the refused deduct records nothing');
  const [latest = ''] = idsByExpiry(CAP_HOLDS - 1, CAP_HOLDS - 1);
  assertEqual((await ledger.reservation(latest))?.state, 'expired', 'a hold past the cap, not yet expired in storage, reads as expired');
}

async function sweepPastTheLimit(ledger: StockLedger): Promise<void> {
  const first = await ledger.sweepExpired();
  assertEqual([first.expired, first.more], [LIMITS.sweepHoldsMax, true], 'a sweep with more holds due than it may expire');
  // What is due: the 25 latest holds of HOT and every hold of WARM; the soonest are WARM's.
  check(first.entries.every((e) => e.sku === 'WARM'), () => 'the first sweep expired a hold of HOT before sooner ones of WARM');
  assertEqual(new Set(first.entries.map((e) => e.requestId)), idsByExpiry(0, LIMITS.sweepHoldsMax - 1), 'the holds the first sweep expired');
  assertSoonestFirst(first.entries);
  const next = await ledger.sweepExpired({ limit: 10 });
  assertEqual([next.expired, next.more], [10, true], 'a sweep of 10');
  // Ranks 1000 to 1004, of both SKUs: ties of one reservation fall due together.
  assertEqual(new Set(next.entries.map((e) => e.requestId)), idsByExpiry(LIMITS.sweepHoldsMax, LIMITS.sweepHoldsMax + 4), 'the holds a sweep of 10 expired');
  assertSoonestFirst(next.entries);
}

/** A sweep's expiries are in expiry order: ranks never go down. */
function assertSoonestFirst(entries: readonly Entry[]): void {
  const rank = (id: string): number => rankOf(Number(id.slice(1)));
  entries.forEach((e, i) => {
    const previous = entries[i - 1];
    if (previous !== undefined && rank(previous.requestId) > rank(e.requestId)) fail(`a sweep expired ${show(previous.requestId)} before the sooner ${show(e.requestId)}`);
  });
}

/** How far the second ledger's clock is behind the first's. */
const SKEW_MS = 5_000;
/** SKUs both ledgers work on. */
const SKEW_SKUS = ['A', 'B\u0000'] as const;
/** Calls in flight at once per wave, from both ledgers. */
const SKEW_WAVE_CALLS = 10;
/** Most sweeps the end of the run calls to clear every hold (each expires up to the sweep limit). */
const SKEW_SWEEPS_MAX = 100;

/** Options of {@link skewedClocksCase}. */
export interface SkewedClocksOptions {
  /** Seed of the run; a failure prints it (replay with `STOCK_LEDGER_SEED`). */
  seed: number;
  /** Rounds of concurrent calls. */
  waves: number;
}

/**
 * Two ledgers on one store, one clock {@link SKEW_MS} behind the other: reserves, commits,
 * releases, deducts, restocks, revokes and sweeps from both at once, on the same SKUs and
 * reservations, while the clocks move (forward, and now and then back). After every wave the
 * invariants hold (read through the ledger ahead), both ledgers read levels within bounds, and
 * no SKU is oversold: its on-hand is what the applied calls' own entries say, and never below 0.
 *
 * @example
 * ```ts
 * await skewedClocksCase(() => new MemoryStore(), { seed: 42, waves: 20 });
 * ```
 */
export async function skewedClocksCase(createStore: StoreFactory, options: SkewedClocksOptions): Promise<void> {
  const random = seededRandom(options.seed);
  const store = await createStore();
  const clock = { now: 1_000_000, latest: 1_000_000 };
  const ahead = new StockLedger({ store, clock: () => clock.now });
  const behind = new StockLedger({ store, clock: () => clock.now - SKEW_MS });
  const world: SkewWorld = { random, ids: [], moved: new Map(SKEW_SKUS.map((sku) => [sku, 0])), serial: 0 };
  try {
    for (const sku of SKEW_SKUS) await skewApply(world, ahead, { kind: 'restock', input: { requestId: `po-${sku}`, sku, qty: 30 } });
    for (let wave = 0; wave < options.waves; wave += 1) {
      await Promise.all(Array.from({ length: SKEW_WAVE_CALLS }, () => skewApply(world, random() < 0.5 ? ahead : behind, skewOp(world))));
      // The invariants read at a time no write is after; then the clock goes on from where it was.
      const resume = clock.now;
      clock.now = clock.latest;
      await checkSkewWave(world, ahead, behind, clock.now);
      clock.now = resume + Math.floor(random() * 3000) - (random() < 0.2 ? 4000 : 0);
      clock.latest = Math.max(clock.latest, clock.now);
    }
    clock.now = clock.latest + 10 * SKEW_MS;
    for (let i = 0; i < SKEW_SWEEPS_MAX && (await ahead.sweepExpired()).more; i += 1);
    for (const ledger of [ahead, behind]) {
      const levels = await ledger.stocks([...SKEW_SKUS]);
      check(levels.every((l) => l.reserved === 0), () => `levels once every hold is swept: ${show(levels)}`);
    }
    await checkSkewWave(world, ahead, behind, clock.now);
  } catch (error) {
    throw seededFailure('skewed clocks', options.seed, error);
  } finally {
    await ahead.close();
  }
}

interface SkewWorld {
  random: () => number;
  /** Ids of every reserve sent. */
  ids: string[];
  /** Per SKU, the on-hand change of every first application so far. */
  moved: Map<string, number>;
  serial: number;
}

/** One random call: mostly on the reservations both ledgers share. */
function skewOp(w: SkewWorld): Op {
  const r = w.random();
  const sku = SKEW_SKUS[Math.floor(w.random() * SKEW_SKUS.length)] as string;
  const known = w.ids[Math.floor(w.random() * w.ids.length)];
  const id = `s${(w.serial += 1)}`;
  if (r < 0.35 || known === undefined) {
    w.ids.push(id);
    const lines = w.random() < 0.3 ? SKEW_SKUS.map((s) => ({ sku: s, qty: 1 })) : [{ sku, qty: 1 + Math.floor(w.random() * 3) }];
    return { kind: 'reserve', input: { requestId: id, lines, ttlMs: 1 + Math.floor(w.random() * 2 * SKEW_MS) } };
  }
  if (r < 0.5) return { kind: 'commit', input: { reservationId: known } };
  if (r < 0.58) return { kind: 'release', input: { reservationId: known } };
  if (r < 0.75) return { kind: 'deduct', input: { requestId: id, sku, qty: 1 + Math.floor(w.random() * 3) } };
  if (r < 0.82) return { kind: 'restock', input: { requestId: id, sku, qty: 1 + Math.floor(w.random() * 4) } };
  if (r < 0.9) return { kind: 'revoke', input: { requestId: w.random() < 0.5 ? known : id } };
  return { kind: 'sweep', input: { limit: 1 + Math.floor(w.random() * 3) } };
}

/** Runs one call and books the on-hand change of a first application (ids are unique: nothing may throw). */
async function skewApply(w: SkewWorld, ledger: StockLedger, op: Op): Promise<void> {
  const outcome: Outcome = await runOp(ledger, op);
  if (outcome !== null && 'thrown' in outcome) fail(`${op.kind} threw ${outcome.thrown}`);
  if (outcome === null || !('ok' in outcome) || !outcome.ok || outcome.replayed) return;
  for (const e of outcome.entries) w.moved.set(e.sku, (w.moved.get(e.sku) ?? 0) + e.onHandDelta);
}

async function checkSkewWave(w: SkewWorld, ahead: StockLedger, behind: StockLedger, now: number): Promise<void> {
  const { levels } = await checkInvariants(ahead);
  for (const sku of SKEW_SKUS) {
    const onHand = levels.get(sku)?.onHand ?? 0;
    check(onHand === w.moved.get(sku) && onHand >= 0, () => `${show(sku)} at ${now}: onHand ${onHand}, the applied calls moved it by ${w.moved.get(sku)}`);
  }
  const late: Level[] = await behind.stocks([...SKEW_SKUS]);
  for (const l of late) {
    check(l.reserved >= 0 && l.reserved <= l.onHand && l.available === l.onHand - l.reserved, () => `read ${SKEW_MS} ms behind at ${now}: ${show(l)}`);
  }
}
