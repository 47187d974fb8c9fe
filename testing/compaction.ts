import { StockLedger, isStockLedgerError } from '../src/index.js';
import type { Applied, FeedEntry, Level, OperationResult, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { seededRandom } from './random.js';

const WINDOW_MS = 60_000;
const codeOf = (e: unknown): string => (isStockLedgerError(e) ? e.code : String(e));

/**
 * Every entry the feed still has, from the oldest kept (read without a cursor, so after any
 * compaction).
 *
 * @example
 * ```ts
 * const seqs = (await keptEntries(ledger)).map((e) => e.seq);
 * ```
 */
export async function keptEntries(ledger: StockLedger): Promise<FeedEntry[]> {
  const all: FeedEntry[] = [];
  let page = await ledger.entries({ limit: 1000 });
  while (page.next !== null) {
    all.push(...page.entries);
    page = await ledger.entries({ after: page.next, limit: 1000 });
  }
  return all;
}

async function verifyOk(ledger: StockLedger, what: string): Promise<void> {
  const report = await ledger.verify();
  check(report.ok, () => `verify() after ${what}: ${show(report.drift)}`);
}

/**
 * Compaction with an idempotency window: a history of every kind older than the window, a
 * reservation still held in the middle of it, and requests inside the window. What is older and
 * settled goes (records, closed ids, reservations whose commit or release is older, entries up to
 * the held reservation's first entry); a reservation that expired inside the window stays; levels, versions and buyer totals stay; what is inside the window
 * still replays with its original outcome; the feed tells a reader below the compacted part
 * (`FEED_COMPACTED`) and starts after it when read without a cursor; `verify()` stays exact.
 * A retry of a removed request is a new request, a reverse of one `REQUEST_NOT_FOUND`. Once the
 * held reservation ends, a second compaction takes the rest, and the ledger goes on.
 *
 * @example
 * ```ts
 * await compactionCase(() => new MemoryStore());
 * ```
 */
export async function compactionCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now, retention: { windowMs: WINDOW_MS } });
  try {
    // Compaction is optional for a store: one without it has nothing to prove here.
    if (ledger.store.compact === undefined) return;
    await oldHistory(ledger, clock);
    const pin = await ledger.reserveOrThrow({ requestId: 'r-long', lines: [{ sku: 'A', qty: 4 }], ttlMs: 3_600_000, buyer: 'u1' });
    await ledger.deductOrThrow({ requestId: 'o-after-pin', sku: 'B', qty: 1 });
    clock.now += 2 * WINDOW_MS;
    const inside = await recentHistory(ledger);
    const before = await snapshot(ledger);
    const report = await ledger.compact();
    const pinSeq = pin.entries[0]?.seq as number;
    assertEqual([report.compactedThrough, report.before], [pinSeq - 1, clock.now - WINDOW_MS], 'compacted up to the held reservation\'s first entry, cutoff now - window');
    check(report.entries === pinSeq - 1 && report.requests >= 8 && report.reservations === 3, () => `what one compact() removed: ${show(report)}`);
    await afterFirstCompaction(ledger, before, inside, report.compactedThrough);
    await ledger.commitOrThrow({ reservationId: 'r-long' });
    await ledger.releaseOrThrow({ reservationId: 'n-r' });
    clock.now += 2 * WINDOW_MS;
    const second = await ledger.compact();
    const last = (await ledger.request('late-retry')) === null ? null : 'kept';
    assertEqual(last, null, 'the second compaction removed everything older than the window');
    const rest = await keptEntries(ledger);
    assertEqual([rest.length, second.compactedThrough > pinSeq], [0, true], 'the whole feed is compacted');
    const levels = await ledger.stocks(['A', 'B', 'C']);
    await verifyOk(ledger, 'compacting everything');
    const next = await ledger.restockOrThrow({ requestId: 'po-next', sku: 'A', qty: 1 });
    assertEqual(next.entries.map((e) => [e.seq, e.onHandAfter]), [[second.compactedThrough + 1, (levels[0] as Level).onHand + 1]], 'seq and on-hand go on after the compacted part');
    assertEqual(next.levels.map((l) => l.version), [(levels[0] as Level).version + 1], 'versions go on from the checkpoint');
    await verifyOk(ledger, 'a write after compacting everything');
  } finally {
    await ledger.close();
  }
}

/** Every kind, older than the window: records to remove, and a buyer with a total to keep. */
async function oldHistory(ledger: StockLedger, clock: { now: number }): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'po-1', lines: [{ sku: 'A', qty: 100 }, { sku: 'B', qty: 50 }, { sku: 'C', qty: 5 }] });
  await ledger.setPolicyOrThrow({ requestId: 'pol-A', sku: 'A', buyerMax: 20, lowStockAt: 5 });
  await ledger.deductOrThrow({ requestId: 'o-1', sku: 'A', qty: 2, buyer: 'u1' });
  await ledger.deductOrThrow({ requestId: 'o-2', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }], buyer: 'u1' });
  await ledger.reverseOrThrow({ requestId: 'rv-1', of: 'o-1', lines: [{ sku: 'A', qty: 1 }] });
  await ledger.adjustOrThrow({ requestId: 'count-B', sku: 'B', onHand: 60 });
  await ledger.reserveOrThrow({ requestId: 'r-done', lines: [{ sku: 'A', qty: 3 }], ttlMs: 10_000, buyer: 'u1' });
  await ledger.commitOrThrow({ reservationId: 'r-done' });
  await ledger.reserveOrThrow({ requestId: 'r-rel', lines: [{ sku: 'B', qty: 2 }], ttlMs: 10_000 });
  await ledger.releaseOrThrow({ reservationId: 'r-rel' });
  await ledger.reserveOrThrow({ requestId: 'r-am', lines: [{ sku: 'A', qty: 2 }], ttlMs: 10_000, buyer: 'u3' });
  await ledger.amendOrThrow({ requestId: 'am-1', reservationId: 'r-am', lines: [{ sku: 'A', qty: 1 }, { sku: 'C', qty: 1 }] });
  await ledger.commitOrThrow({ reservationId: 'r-am' });
  await ledger.reserveOrThrow({ requestId: 'r-exp', lines: [{ sku: 'B', qty: 1 }], ttlMs: 1_000 });
  await ledger.revokeOrThrow({ requestId: 'x-1' });
  clock.now += 1;
}

interface Inside {
  deduct: Applied;
  reserve: Applied;
  restock: Applied;
}

/** Requests inside the window: they must replay as they answered. */
async function recentHistory(ledger: StockLedger): Promise<Inside> {
  const restock = await ledger.restockOrThrow({ requestId: 'po-2', sku: 'C', qty: 9 });
  const deduct = await ledger.deductOrThrow({ requestId: 'n-1', lines: [{ sku: 'A', qty: 1 }, { sku: 'C', qty: 2 }], buyer: 'u2' });
  const reserve = await ledger.reserveOrThrow({ requestId: 'n-r', lines: [{ sku: 'B', qty: 1 }], ttlMs: 600_000 });
  await ledger.revokeOrThrow({ requestId: 'x-2' });
  return { deduct, reserve, restock };
}

interface Snapshot {
  levels: Level[];
  buyers: number[];
  entries: FeedEntry[];
}

async function snapshot(ledger: StockLedger): Promise<Snapshot> {
  // compact() sweeps first: sweep now, so the feed read here is the feed it compacts.
  while ((await ledger.sweepExpired()).more);
  const levels = await ledger.stocks(['A', 'B', 'C']);
  const buyers = (await ledger.buyerTotals({ buyer: 'u1', skus: ['A', 'B'] })).map((t) => t.taken);
  return { levels, buyers, entries: await keptEntries(ledger) };
}

async function afterFirstCompaction(ledger: StockLedger, before: Snapshot, inside: Inside, through: number): Promise<void> {
  for (const id of ['po-1', 'pol-A', 'o-1', 'o-2', 'rv-1', 'count-B', 'am-1', 'r-done', 'r-rel', 'r-am', 'x-1']) {
    assertEqual(await ledger.request(id), null, `request(${id}) older than the window is gone`);
  }
  for (const id of ['r-done', 'r-rel', 'r-am']) assertEqual(await ledger.reservation(id), null, `finished reservation ${id} is gone`);
  // Its expiry was written just now, by the sweep compact() runs first: it ended inside the window.
  assertEqual((await ledger.reservation('r-exp'))?.state, 'expired', 'a reservation that ended inside the window stays');
  assertEqual((await ledger.reservation('r-long'))?.state, 'held', 'the held reservation stays');
  check((await ledger.request('r-long')) !== null && (await ledger.request('o-after-pin')) !== null, () => 'records after the held reservation stay');
  assertEqual(await ledger.stocks(['A', 'B', 'C']), before.levels, 'levels (versions included) are unchanged');
  assertEqual((await ledger.buyerTotals({ buyer: 'u1', skus: ['A', 'B'] })).map((t) => t.taken), before.buyers, 'buyer totals are unchanged');
  await verifyOk(ledger, 'compaction');
  assertEqual(await ledger.deduct({ requestId: 'n-1', lines: [{ sku: 'A', qty: 1 }, { sku: 'C', qty: 2 }], buyer: 'u2' }), { ...inside.deduct, replayed: true },
    'a deduct inside the window replays its original outcome');
  assertEqual(await ledger.reserve({ requestId: 'n-r', lines: [{ sku: 'B', qty: 1 }], ttlMs: 600_000 }), { ...inside.reserve, replayed: true }, 'a reserve inside the window replays');
  assertEqual(await ledger.restock({ requestId: 'po-2', sku: 'C', qty: 9 }), { ...inside.restock, replayed: true }, 'a restock inside the window replays');
  assertEqual(await ledger.deduct({ requestId: 'x-2', sku: 'A', qty: 1, buyer: 'u2' }).then((r) => (r.ok ? 'applied' : r.code), codeOf), 'REQUEST_REVOKED', 'a closed id inside the window stays closed');
  assertEqual(await ledger.entries({ after: 0 }).then(() => 'no error', (e: unknown) => [codeOf(e), (e as { compactedThrough?: number }).compactedThrough]),
    ['FEED_COMPACTED', through], 'a cursor below the compacted part is told, not skipped');
  assertEqual(await ledger.entries({ after: through - 1, sku: 'A' }).then(() => 'no error', codeOf), 'FEED_COMPACTED', 'the same for one SKU\'s feed');
  const kept = await keptEntries(ledger);
  assertEqual(kept, before.entries.filter((e) => e.seq > through), 'the feed from the oldest kept entry is what was there after the compacted part');
  assertEqual((await ledger.entries({ after: through, limit: 1 })).entries.map((e) => e.seq), [through + 1], 'a cursor at the compacted part reads on');
  assertEqual(await ledger.reverse({ requestId: 'rv-2', of: 'o-2' }).then((r) => (r.ok ? 'applied' : r.code)), 'REQUEST_NOT_FOUND', 'a reverse of a removed request');
  assertEqual(await ledger.commit({ reservationId: 'r-done' }).then((r) => (r.ok ? 'applied' : r.code)), 'RESERVATION_NOT_FOUND', 'a commit of a removed reservation');
  const late = await ledger.deduct({ requestId: 'o-1', sku: 'A', qty: 2, buyer: 'u1' });
  assertEqual([late.ok, late.ok && late.replayed], [true, false], 'a retry older than the window is a new request');
  await ledger.deductOrThrow({ requestId: 'late-retry', sku: 'B', qty: 1 });
  await verifyOk(ledger, 'a retry older than the window');
}

/**
 * Compaction while writes go on: waves of concurrent deducts, restocks, reservations (some
 * committed, some released) and retries of recent requests, with the clock moving a window
 * every few waves and `compact()` running at the same time. Every request inside the window
 * keeps its record and replays with the outcome it had; levels equal the sum of what was
 * applied; `verify()` is exact at the end. Prints its seed on failure; `STOCK_LEDGER_SEED`
 * replays one.
 *
 * @example
 * ```ts
 * await compactionRaceCase(() => new MemoryStore());
 * ```
 */
export async function compactionRaceCase(createStore: () => StockStore | Promise<StockStore>, options: { waves?: number } = {}): Promise<void> {
  const seed = Number(process.env['STOCK_LEDGER_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  try {
    await raceRun(createStore, seed, options.waves ?? 16);
  } catch (error) {
    throw new Error(`compaction race failed with seed ${seed} (STOCK_LEDGER_SEED=${seed} replays it): ${(error as Error).message}`, { cause: error });
  }
}

const RACE_SKUS = ['K1', 'K2', 'K3'];
const RACE_WINDOW_MS = 5_000;

interface Sent {
  id: string;
  at: number;
  run: () => Promise<OperationResult>;
  first: Applied;
}

async function raceRun(createStore: () => StockStore | Promise<StockStore>, seed: number, waves: number): Promise<void> {
  const random = seededRandom(seed);
  const clock = { now: 10_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  if (ledger.store.compact === undefined) return ledger.close();
  const expected = new Map(RACE_SKUS.map((sku) => [sku, 0]));
  const sent: Sent[] = [];
  let n = 0;
  try {
    for (let wave = 0; wave < waves; wave += 1) {
      clock.now += Math.floor(RACE_WINDOW_MS / 3);
      const recent = sent.filter((s) => s.at >= clock.now - RACE_WINDOW_MS);
      const ops = Array.from({ length: 24 }, () => raceOp(ledger, random, (n += 1), clock.now));
      const retries = recent.filter(() => random() < 0.3);
      const compacting = ledger.compact({ windowMs: RACE_WINDOW_MS });
      const results = await Promise.all(ops.map((o) => o.run()));
      const replays = await Promise.all(retries.map((s) => s.run()));
      await compacting;
      results.forEach((r, i) => {
        const op = ops[i] as RaceOp;
        if (!r.ok) return;
        for (const e of r.entries) if (e.kind !== 'reserve') expected.set(e.sku, (expected.get(e.sku) ?? 0) + e.onHandDelta);
        sent.push({ id: op.id, at: clock.now, run: op.run, first: r });
      });
      replays.forEach((r, i) => {
        const s = retries[i] as Sent;
        assertEqual(r, { ...s.first, replayed: true }, `wave ${wave}: a retry of ${s.id} (sent at ${s.at}, inside the window) replays its outcome`);
      });
      await settle(ledger, sent.filter((s) => 'reservation' in s.first && s.at === clock.now), random, expected);
    }
    await ledger.compact({ windowMs: RACE_WINDOW_MS });
    for (const s of sent.filter((x) => x.at >= clock.now - RACE_WINDOW_MS)) {
      check((await ledger.request(s.id)) !== null, () => `request(${s.id}) inside the window was lost`);
    }
    const levels = await ledger.stocks(RACE_SKUS);
    assertEqual(levels.map((l) => [l.sku, l.onHand]), RACE_SKUS.map((sku) => [sku, expected.get(sku)]), 'on-hand is what was applied, each once');
    await verifyOk(ledger, 'compaction under concurrent writes');
  } finally {
    await ledger.close();
  }
}

interface RaceOp {
  id: string;
  run: () => Promise<OperationResult>;
}

function raceOp(ledger: StockLedger, random: () => number, n: number, at: number): RaceOp {
  const sku = RACE_SKUS[Math.floor(random() * RACE_SKUS.length)] as string;
  const qty = 1 + Math.floor(random() * 3);
  const pick = random();
  const id = `w${at}-${n}`;
  if (pick < 0.3) return { id, run: () => ledger.restock({ requestId: id, sku, qty: qty * 3 }) };
  if (pick < 0.75) return { id, run: () => ledger.deduct({ requestId: id, sku, qty }) };
  const ttlMs = random() < 0.5 ? 500 : 20_000;
  return { id, run: () => ledger.reserve({ requestId: id, lines: [{ sku, qty }], ttlMs }) };
}

/** Commits or releases some of this wave's reservations (committed units count as taken). */
async function settle(ledger: StockLedger, reserved: Sent[], random: () => number, expected: Map<string, number>): Promise<void> {
  for (const s of reserved) {
    const pick = random();
    if (pick < 0.4) {
      const done = await ledger.commit({ reservationId: s.id });
      if (done.ok) for (const e of done.entries) expected.set(e.sku, (expected.get(e.sku) ?? 0) + e.onHandDelta);
    } else if (pick < 0.6) {
      await ledger.release({ reservationId: s.id });
    }
  }
}
