/**
 * The conformance suite of stock-ledger, `stock-ledger/testing`: one set of cases that every
 * store must pass, independent of any test runner.
 *
 * @example
 * ```ts
 * import { it } from 'vitest';
 * import { conformanceCases } from 'stock-ledger/testing';
 * import { MemoryStore } from 'stock-ledger/memory';
 * for (const c of conformanceCases({ name: 'memory', createStore: () => new MemoryStore() })) it(c.name, c.run, c.timeoutMs);
 * ```
 * @packageDocumentation
 */
import { LIMITS } from '../src/index.js';
import type { StockStore } from '../src/index.js';
import { differentialProperty } from './differential.js';
import { amendCase } from './amend.js';
import { anyOfCase, anyOfStormCase } from './anyof.js';
import { BAD_INPUT_GROUPS, badInputCase, boundaryCase } from './bad-input.js';
import { bulkCase } from './bulk.js';
import { closedIdCase } from './closed-ids.js';
import { compactionCase, compactionRaceCase } from './compaction.js';
import { levelsCase, stockEventsCase } from './stock-events.js';
import { extendCase } from './extend.js';
import { holdsCase } from './holds.js';
import { policyCase } from './policy.js';
import { buyerStormCase, buyersCase } from './buyers.js';
import { compositeKeyCase, expiryCapCase, skewedClocksCase } from './edge-cases.js';
import { concurrentBatchesProperty, concurrentLoadProperty, jitter, reverseRaceProperty } from './concurrency.js';
import { interleavingProperty } from './interleavings.js';
import { runs, runSeeds } from './property.js';
import { readsCase } from './reads.js';
import { reservationRaceCases } from './reservation-races.js';
import { retryStorm } from './retry-storm.js';

/** Options of {@link conformanceCases}. */
export interface ConformanceOptions {
  /** Name used in case names. */
  name: string;
  /** A fresh, empty, independent store per call. */
  createStore: () => StockStore | Promise<StockStore>;
  /**
   * Optional: a store that awaits `interleave()` between its read and its write (the MemoryStore
   * option `interleave`). Enables the fc.scheduler interleaving cases.
   */
  createInterleavedStore?: (interleave: () => Promise<void>) => StockStore | Promise<StockStore>;
  /**
   * Scales fast-check numRuns (default 1). Keep the default suite fast: the whole memory run
   * should take well under 40 s, a SQLite file store under 90 s.
   */
  runsScale?: number;
}

/** One runner-independent test case: `it(c.name, c.run, c.timeoutMs)`. */
export interface ConformanceCase {
  name: string;
  timeoutMs: number;
  run: () => Promise<void>;
}

/**
 * The conformance cases for one store. Each case creates its own stores, so cases are
 * independent and may run in any order (but run them one at a time: some measure concurrency).
 *
 * Every random case is replayable. Property cases print their seed and path on failure; set
 * `STOCK_LEDGER_SEED` and `STOCK_LEDGER_PATH` (and, for command sequences,
 * `STOCK_LEDGER_REPLAY_PATH`) to replay one. Seeded runs that are not properties (reservation
 * floods, skewed clocks) draw fresh seeds, print theirs on failure, and take `STOCK_LEDGER_SEED`.
 *
 * @example
 * ```ts
 * for (const c of conformanceCases({ name: 'memory', createStore: () => new MemoryStore() })) it(c.name, c.run, c.timeoutMs);
 * ```
 */
export function conformanceCases(options: ConformanceOptions): ConformanceCase[] {
  const scale = options.runsScale ?? 1;
  if (!(Number.isFinite(scale) && scale > 0)) throw new RangeError(`runsScale must be a positive number, got ${String(scale)}`);
  const createStore = (): StockStore | Promise<StockStore> => options.createStore();
  const cases: ConformanceCase[] = [];
  const add = (what: string, timeoutMs: number, run: (caseName: string) => Promise<void>): void => {
    const caseName = `${options.name}: ${what}`;
    cases.push({ name: caseName, timeoutMs: Math.round(timeoutMs * Math.max(1, scale)), run: () => run(caseName) });
  };

  add('model-based differential: every operation (reservations, revokes, clock moves back and forth), replays, conflicts, limits', 180_000, (n) =>
    differentialProperty(n, createStore, runs(400, scale)));
  add('entries() paging and request() records', 60_000, () => readsCase(createStore));
  for (const group of BAD_INPUT_GROUPS) {
    add(`bad input of ${group}() rejects with INVALID_INPUT and changes nothing`, 60_000, () => badInputCase(group, createStore));
  }
  add('inputs exactly at the limits are accepted', 60_000, () => boundaryCase(createStore));
  add('concurrent load (Promise.all): invariants, one application per request id', 120_000, (n) =>
    concurrentLoadProperty(n, () => createStore(), runs(15, scale)));
  add('concurrent small batches: linearizable', 120_000, (n) =>
    concurrentBatchesProperty(n, () => createStore(), runs(60, scale)));
  add('retry storm: 2,000 buyers x 1-3 sends for 100 units', 120_000, () => retryStorm(createStore));
  add('revoke closes a rejected id: a late duplicate is REQUEST_REVOKED and takes nothing; an applied id is REQUEST_APPLIED', 60_000, () =>
    closedIdCase(createStore));
  add('extend moves a held reservation\'s expiry (its reserve replays the first), refuses the settled and expired, and batches with the rest', 60_000, () =>
    extendCase(createStore));
  add('setPolicy: a policy entry, levels show it, backorders sell on-hand plus the allowance and never more, BELOW_RESERVED, a storm', 60_000, () =>
    policyCase(createStore));
  add('buyerMax: what one buyer holds plus bought never passes it (all lines together), INVALID_INPUT without a buyer, units given back, buyerTotals', 60_000, () =>
    buyersCase(createStore));
  add('storm: 2,000 concurrent requests from 200 buyers (retries included) on buyerMax 2 with a backorder allowance', 120_000, () =>
    buyerStormCase(createStore));
  add('anyOf lines: first location with it, split in order, mostAvailable, lines see earlier lines, INSUFFICIENT_STOCK names the line, allocations replayed, reverse and commit per SKU', 60_000, () =>
    anyOfCase(createStore));
  add('anyOf storm: 2,000 concurrent requests over three locations (split, priorities, holds, retries): no location oversold, the sum sold exactly', 120_000, () =>
    anyOfStormCase(createStore));
  add('amend replaces a held cart\'s lines: entries per changed hold, checked against available plus held, buyer limits, replays, conflicts, refusals', 60_000, () =>
    amendCase(createStore));
  add(`bulk restock and adjust: a purchase order of ${LIMITS.linesPerOperationMax} lines, merged lines, a stocktake one stale version refuses, QUANTITY_LIMIT naming the line, replays in either form`, 60_000, () =>
    bulkCase(createStore));
  add('compact(): records, closed ids, finished reservations and entries older than the window go; a held reservation pins; replays inside the window, levels, buyer totals and verify() stay exact; FEED_COMPACTED below the horizon', 60_000, () =>
    compactionCase(createStore));
  add('compact() under concurrent writes and retries: nothing inside the window is lost, every retry inside it replays, levels are what was applied', 120_000, () =>
    compactionRaceCase(createStore, { waves: Math.max(8, Math.round(16 * scale)) }));
  add('stockEvents(): depleted, belowThreshold (policy or default), replenished, exactly once per crossing, resumable from any cursor, a waiting follower, FEED_COMPACTED', 60_000, () =>
    stockEventsCase(createStore));
  add('levels(): every SKU once in pages of any size, as stocks() reads it (due holds expired), availableAtMost keeps exactly the low ones', 60_000, () =>
    levelsCase(createStore));
  add('holds() lists a SKU\'s live holds once each, by expiry then reservation id (odd ids included), in pages of any size', 60_000, () =>
    holdsCase(createStore));
  add('keys of two caller strings never collide: reservation "a" holding "b\\u0000c" vs "a\\u0000b" holding "c" (and ":", "|")', 60_000, () =>
    compositeKeyCase(createStore));
  add('more due holds than one operation expires (LIMITS.expiriesPerSkuMax) and one sweep does: reads, deducts, sweeps', 120_000, () =>
    expiryCapCase(createStore));
  runSeeds(2).forEach((seed, i) => {
    add(`two ledgers on one store, one clock 5 s behind: invariants hold, nothing oversold #${i + 1}`, 120_000, () =>
      skewedClocksCase(createStore, { seed, waves: Math.max(5, Math.round(20 * scale)) }));
  });
  cases.push(...reservationRaceCases(options.name, createStore, scale));

  const { createInterleavedStore } = options;
  if (createInterleavedStore !== undefined) {
    const interleaved = (interleave: () => Promise<void>): StockStore | Promise<StockStore> => createInterleavedStore(interleave);
    add('interleavings (fc.scheduler): linearizable, invariants hold', 120_000, (n) =>
      interleavingProperty(n, interleaved, runs(200, scale)));
    add('reverse without lines racing its original (microtask offsets): linearizable', 120_000, (n) =>
      reverseRaceProperty(n, interleaved, runs(400, scale)));
    add('concurrent load on the interleaved store (seeded jitter)', 120_000, (n) =>
      concurrentLoadProperty(n, (seed) => interleaved(jitter(seed)), runs(15, scale)));
    add('concurrent small batches on the interleaved store (seeded jitter): linearizable', 120_000, (n) =>
      concurrentBatchesProperty(n, (seed) => interleaved(jitter(seed)), runs(100, scale)));
    add('compact() under concurrent writes on the interleaved store (seeded jitter): nothing inside the window lost', 120_000, () =>
      compactionRaceCase(() => interleaved(jitter(4_000)), { waves: Math.max(8, Math.round(16 * scale)) }));
    add('retry storm on the interleaved store (seeded jitter)', 120_000, () => retryStorm(() => interleaved(jitter(2_000))));
    runSeeds(1).forEach((seed) => {
      add('two ledgers, one clock 5 s behind, on the interleaved store (seeded jitter): invariants hold, nothing oversold', 120_000, () =>
        skewedClocksCase(() => interleaved(jitter(seed)), { seed, waves: Math.max(5, Math.round(20 * scale)) }));
    });
    cases.push(...reservationRaceCases(`${options.name} (interleaved, seeded jitter)`, () => interleaved(jitter(3_000)), scale));
  }
  return cases;
}

export { ReferenceModel } from './model.js';
export { compactionCase, compactionRaceCase, keptEntries } from './compaction.js';
export { levelsCase, stockEventsCase } from './stock-events.js';
export { checkReservations, readAllEntries, reservationProblems, reservationRaceCases } from './reservation-races.js';
export { checkLinearizable, type HistoryEvent, type SequentialSpec, type LinearizabilityResult } from './linearizability.js';
export { checkInvariants, type InvariantSnapshot, type ExpectedOperation } from './invariants.js';
// Building blocks for store-specific tests (several processes, faults): ops as data, the model
// as a sequential spec, a history recorder, and the assertion helpers.
export { runOp, isRequestOp, type Op, type WriteOp, type RequestOp, type Outcome, type Thrown } from './ops.js';
export { HistoryRecorder, assertLinearizable, modelSpec, type Call, type CallEvent } from './history.js';
export { ConformanceError, assertEqual, deepEqual, firstDifference } from './assert.js';
export { jitter } from './concurrency.js';
export { seededRandom } from './random.js';
