import { StockLedger, isStockLedgerError } from '../src/index.js';
import { runSeeds, seededFailure } from './property.js';
import { seededRandom } from './random.js';
import type { CommitResult, FeedEntry, ReleaseResult, Reservation, StockStore } from '../src/index.js';

/** A store factory as the conformance suite takes it. */
export type StoreFactory = () => StockStore | Promise<StockStore>;

/** A named, self-checking test. */
export interface RaceCase {
  name: string;
  timeoutMs: number;
  run: () => Promise<void>;
}

function fail(message: string): never {
  throw new Error(message);
}

function expectEqual(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

/** Every entry of a ledger, paging through `entries()` (bounded at 10,000 pages). */
export async function readAllEntries(ledger: StockLedger): Promise<FeedEntry[]> {
  const out: FeedEntry[] = [];
  let after = 0;
  for (let page = 0; page < 10_000; page += 1) {
    const { entries, next } = await ledger.entries({ after, limit: 1000 });
    out.push(...entries);
    if (next === null) return out;
    after = next;
  }
  return fail('entries did not end within 10,000 pages');
}

/**
 * What is wrong with these reservations, judged by the entries (every entry of the ledger, in
 * seq order): each reservation is in exactly one state, and its entries say the same. Reserve
 * entries always, matching its lines; commit entries iff committed (one per reserved SKU, selling
 * what `committed` says), release entries iff released (one per reserved SKU); expire entries only
 * if expired. An id with reserve entries has a reservation. Returns the problems found.
 */
export async function reservationProblems(ledger: StockLedger, entries: readonly FeedEntry[], ids: Iterable<string>): Promise<string[]> {
  const problems: string[] = [];
  for (const id of new Set(ids)) {
    const reservation = await ledger.reservation(id);
    const own = entries.filter((e) => e.requestId === id);
    const ofKind = (kind: FeedEntry['kind']): FeedEntry[] => own.filter((e) => e.kind === kind);
    const reserve = ofKind('reserve');
    if (reservation === null) {
      if (reserve.length > 0) problems.push(`reservation ${id} has reserve entries but reservation() is null`);
      continue;
    }
    const { state } = reservation;
    const kinds = new Set(own.map((e) => e.kind));
    if (reserve.length === 0) problems.push(`reservation ${id} has no reserve entries`);
    const held = linesHeld(reserve, entries.filter((e) => e.kind === 'amend' && e.reservationId === id));
    if (JSON.stringify(held) !== JSON.stringify(reservation.lines)) {
      problems.push(`reservation ${id} has lines ${JSON.stringify(reservation.lines)}, its reserve and amend entries hold ${JSON.stringify(held)}`);
    }
    if (kinds.has('commit') !== (state === 'committed')) problems.push(`reservation ${id} is ${state}; commit entries: ${kinds.has('commit')}`);
    if (kinds.has('release') !== (state === 'released')) problems.push(`reservation ${id} is ${state}; release entries: ${kinds.has('release')}`);
    if (kinds.has('expire') && state !== 'expired') problems.push(`reservation ${id} is ${state} but has expire entries`);
    if ((state === 'committed') !== (reservation.committed !== null)) {
      problems.push(`reservation ${id} is ${state} with committed ${JSON.stringify(reservation.committed)}`);
    }
    if (state === 'committed' || state === 'released') {
      const moves = ofKind(state === 'committed' ? 'commit' : 'release');
      const committed = reservation.committed ?? [];
      if (state === 'committed' && JSON.stringify(committed.map((c) => c.sku)) !== JSON.stringify(reservation.lines.map((l) => l.sku))) {
        problems.push(`reservation ${id}: committed ${JSON.stringify(committed)} does not list each reserved SKU once, in order`);
      }
      const soldOf = (sku: string): number => (state === 'released' ? 0 : (committed.find((c) => c.sku === sku)?.qty ?? NaN));
      const expected = reservation.lines.map((l) => [l.sku, -soldOf(l.sku), -l.qty]);
      const actual = moves.map((e) => [e.sku, e.onHandDelta, e.reservedDelta]);
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        problems.push(`reservation ${id} is ${state} (committed ${JSON.stringify(reservation.committed)}); its ${state} entries [sku, onHandDelta, reservedDelta] are ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
      }
    }
  }
  return problems;
}

/** The lines a reservation's reserve entries and then its amend entries leave, sorted by SKU (code units). */
function linesHeld(reserve: readonly FeedEntry[], amends: readonly FeedEntry[]): Array<{ sku: string; qty: number }> {
  const held = new Map<string, number>();
  for (const e of [...reserve, ...amends]) held.set(e.sku, (held.get(e.sku) ?? 0) + e.reservedDelta);
  return [...held].filter(([, qty]) => qty > 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, qty]) => ({ sku, qty }));
}

/**
 * {@link reservationProblems} over the whole entry feed, and `verify()` is ok; throws on the
 * first problems found.
 */
export async function checkReservations(ledger: StockLedger, ids: Iterable<string>): Promise<void> {
  const problems = await reservationProblems(ledger, await readAllEntries(ledger), ids);
  if (problems.length > 0) fail(problems.join('\n'));
  const report = await ledger.verify();
  if (!report.ok) fail(`verify() found drift: ${JSON.stringify(report.drift)}`);
}

async function stocked(store: StockStore, clock: () => number, sku: string, qty: number): Promise<StockLedger> {
  const ledger = new StockLedger({ store, clock });
  const r = await ledger.restock({ requestId: `stock-${sku}`, sku, qty });
  if (!r.ok) fail(`restock failed: ${JSON.stringify(r)}`);
  return ledger;
}

/**
 * A commit at the last held instant races an expiry at `expiresAt` (a sweep, or a deduct that
 * touches the SKU), through two ledgers whose clocks differ by 1 ms: exactly one wins.
 */
async function commitVersusExpiry(createStore: StoreFactory, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    const store = await createStore();
    const ledger = await stocked(store, () => 1_000_000, 'A', 5);
    const held = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 1000 });
    const expiresAt = held.reservation.expiresAt;
    const buyer = new StockLedger({ store, clock: () => expiresAt - 1 });
    const sweeper = new StockLedger({ store, clock: () => expiresAt });
    const expire = (): Promise<unknown> => (round % 2 === 0 ? sweeper.sweepExpired() : sweeper.deduct({ requestId: 'other', sku: 'A', qty: 5 }));
    let commit: CommitResult;
    if (round % 4 < 2) [commit] = await Promise.all([buyer.commit({ reservationId: 'cart' }), expire()]);
    else [, commit] = await Promise.all([expire(), buyer.commit({ reservationId: 'cart' })]);
    const state = (await sweeper.reservation('cart'))?.state;
    const level = await sweeper.stock('A');
    if (commit.ok) {
      expectEqual(state, 'committed', 'state after a winning commit');
      expectEqual(level.onHand, 2, 'onHand after the commit');
    } else {
      expectEqual(commit.code, 'RESERVATION_EXPIRED', 'the losing commit');
      expectEqual(state, 'expired', 'state after the expiry won');
    }
    expectEqual(level.reserved, 0, 'nothing stays reserved');
    await checkReservations(sweeper, ['cart']);
    await ledger.close();
  }
}

/** At `now === expiresAt` the hold is expired: expiry wins the tie (documented). */
async function commitAtExpiresAt(createStore: StoreFactory): Promise<void> {
  const store = await createStore();
  let now = 5000;
  const ledger = await stocked(store, () => now, 'A', 2);
  const held = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 10 });
  now = held.reservation.expiresAt - 1;
  expectEqual((await ledger.stock('A')).available, 0, 'available while held');
  now = held.reservation.expiresAt;
  expectEqual((await ledger.stock('A')).available, 2, 'available at expiresAt, before any write');
  const commit = await ledger.commit({ reservationId: 'cart' });
  expectEqual(commit.ok ? 'ok' : commit.code, 'RESERVATION_EXPIRED', 'commit at expiresAt');
  const release = await ledger.release({ reservationId: 'cart' });
  expectEqual(release.ok ? 'ok' : release.code, 'RESERVATION_EXPIRED', 'release at expiresAt');
  expectEqual((await ledger.reservation('cart'))?.state, 'expired', 'state');
  await checkReservations(ledger, ['cart']);
  await ledger.close();
}

/** Commit racing release: exactly one applies, the other is rejected by the state it left. */
async function commitVersusRelease(createStore: StoreFactory, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    const store = await createStore();
    const ledger = await stocked(store, () => 1000, 'A', 4);
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 4 }], ttlMs: 60_000 });
    let commit: CommitResult;
    let release: ReleaseResult;
    if (round % 2 === 0) [commit, release] = await Promise.all([ledger.commit({ reservationId: 'cart' }), ledger.release({ reservationId: 'cart' })]);
    else [release, commit] = await Promise.all([ledger.release({ reservationId: 'cart' }), ledger.commit({ reservationId: 'cart' })]);
    expectEqual([commit.ok, release.ok].filter(Boolean).length, 1, 'exactly one of commit and release applies');
    const state = (await ledger.reservation('cart'))?.state;
    if (commit.ok) {
      expectEqual(state, 'committed', 'state');
      expectEqual(release.ok ? 'ok' : release.code, 'RESERVATION_COMMITTED', 'the losing release');
    } else {
      expectEqual(state, 'released', 'state');
      expectEqual(commit.code, 'RESERVATION_RELEASED', 'the losing commit');
    }
    await checkReservations(ledger, ['cart']);
    await ledger.close();
  }
}

/** Two commits of one reservation at once: one applies, the other replays it. */
async function doubleCommit(createStore: StoreFactory, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    const store = await createStore();
    const ledger = await stocked(store, () => 1000, 'A', 4);
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 60_000 });
    const results = await Promise.all([ledger.commitOrThrow({ reservationId: 'cart' }), ledger.commitOrThrow({ reservationId: 'cart' })]);
    expectEqual(results.map((r) => r.replayed).sort(), [false, true], 'one applied, one replayed');
    expectEqual(results[0]?.entries, results[1]?.entries, 'the replay returns the original entries');
    expectEqual((await ledger.stock('A')).onHand, 1, 'sold once');
    await checkReservations(ledger, ['cart']);
    await ledger.close();
  }
}

/**
 * Many reservations on one SKU with random TTLs, commits (full and partial), releases,
 * deducts, restocks and sweeps in concurrent waves while the clock jumps (forward, and now and
 * then back: holds not yet expired in storage hold again, expired ones stay expired); after
 * every wave the level is sane and `reserved` equals the sum of live holds; at the end every
 * reservation's state agrees with its entries.
 */
async function flood(createStore: StoreFactory, seed: number, waves: number): Promise<void> {
  const random = seededRandom(seed);
  const store = await createStore();
  let now = 10_000;
  const ledger = await stocked(store, () => now, 'HOT', 50);
  const ids: string[] = [];
  try {
    for (let wave = 0; wave < waves; wave += 1) {
      const ops: Array<Promise<unknown>> = [];
      for (let i = 0; i < 12; i += 1) ops.push(floodOp(ledger, random, ids, `${wave}-${i}`));
      for (const s of await Promise.allSettled(ops)) {
        if (s.status === 'rejected' && !(isStockLedgerError(s.reason) && s.reason.code === 'IDEMPOTENCY_CONFLICT')) throw s.reason;
      }
      const level = await ledger.stock('HOT');
      if (level.reserved < 0 || level.reserved > level.onHand || level.available < 0) fail(`wave ${wave}: bad level ${JSON.stringify(level)}`);
      await checkHeldSum(ledger, ids, level.reserved, now);
      now += Math.floor(random() * 40) - (random() < 0.15 ? 60 : 0);
    }
    now += 1_000_000;
    for (let i = 0; i < 1000 && (await ledger.sweepExpired()).more; i += 1);
    expectEqual((await ledger.stock('HOT')).reserved, 0, 'nothing reserved once every hold is due and swept');
    await checkReservations(ledger, ids);
  } catch (error) {
    throw seededFailure('reservation flood', seed, error);
  } finally {
    await ledger.close();
  }
}

/** The reserved units of a SKU equal what its live holds hold. */
async function checkHeldSum(ledger: StockLedger, ids: string[], reserved: number, now: number): Promise<void> {
  let held = 0;
  for (const id of ids) {
    const r: Reservation | null = await ledger.reservation(id);
    if (r?.state === 'held' && now < r.expiresAt) held += r.lines.reduce((sum, l) => sum + l.qty, 0);
  }
  expectEqual(reserved, held, 'reserved equals the sum of live holds');
}

function floodOp(ledger: StockLedger, random: () => number, ids: string[], tag: string): Promise<unknown> {
  const pick = random();
  const known = ids[Math.floor(random() * ids.length)];
  if (pick < 0.4 || known === undefined) {
    ids.push(`r${tag}`);
    return ledger.reserve({ requestId: `r${tag}`, lines: [{ sku: 'HOT', qty: 1 + Math.floor(random() * 4) }], ttlMs: 1 + Math.floor(random() * 80) });
  }
  if (pick < 0.55) return ledger.commit({ reservationId: known });
  if (pick < 0.65) return ledger.commit({ reservationId: known, lines: [{ sku: 'HOT', qty: 1 }] });
  if (pick < 0.75) return ledger.release({ reservationId: known });
  if (pick < 0.85) return ledger.deduct({ requestId: `d${tag}`, sku: 'HOT', qty: 1 + Math.floor(random() * 3) });
  if (pick < 0.92) return ledger.sweepExpired({ limit: 1 + Math.floor(random() * 5) });
  return ledger.restock({ requestId: `s${tag}`, sku: 'HOT', qty: 1 + Math.floor(random() * 5) });
}

/**
 * Race cases of reservations, run against every store: commit at `expiresAt`, commit vs
 * expiry, commit vs release, two commits at once, and floods with random TTLs and clock jumps.
 * Floods draw fresh seeds; a failing one prints its seed, and `STOCK_LEDGER_SEED` replays it.
 *
 * @example
 * ```ts
 * for (const c of reservationRaceCases('my-store', () => new MyStore())) it(c.name, c.run, c.timeoutMs);
 * ```
 */
export function reservationRaceCases(name: string, createStore: StoreFactory, runsScale = 1): RaceCase[] {
  const rounds = Math.max(1, Math.round(10 * runsScale));
  const seeds = runSeeds(3);
  return [
    { name: `${name}: reservations: a commit at expiresAt is expired`, timeoutMs: 30_000, run: () => commitAtExpiresAt(createStore) },
    { name: `${name}: reservations: commit vs expiry, exactly one wins`, timeoutMs: 60_000, run: () => commitVersusExpiry(createStore, rounds) },
    { name: `${name}: reservations: commit vs release, exactly one wins`, timeoutMs: 60_000, run: () => commitVersusRelease(createStore, rounds) },
    { name: `${name}: reservations: two commits at once, one applies and one replays`, timeoutMs: 60_000, run: () => doubleCommit(createStore, rounds) },
    ...seeds.map((seed, i) => ({
      name: `${name}: reservations: flood of holds with random TTLs and clock jumps #${i + 1}`,
      timeoutMs: 120_000,
      run: () => flood(createStore, seed, Math.max(5, Math.round(30 * runsScale))),
    })),
  ];
}
