import fc from 'fast-check';
import { StockLedger } from '../src/index.js';
import type { Applied, OrderLine, StockStore } from '../src/index.js';
import { assertEqual, ConformanceError, fail, show } from './assert.js';
import { HistoryRecorder, assertLinearizable } from './history.js';
import { checkInvariants } from './invariants.js';
import { applySetup, concurrentBatch, setupOps } from './interleavings.js';
import { ReferenceModel } from './model.js';
import { describeOp, requestIdOf, runOp, skusOf, type Op, type Outcome, type RequestOp, type WriteOp } from './ops.js';
import { runProperty } from './property.js';

/**
 * An `interleave` hook for stores that take one, without a scheduler: each call waits a random
 * (but seeded, so replayable) number of microtask ticks, now and then a macrotask, so
 * concurrent operations overlap at many different points.
 */
export function jitter(seed: number): () => Promise<void> {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    // xorshift32: tiny, deterministic, good enough to spread delays.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  return async () => {
    const r = next();
    if (r < 0.05) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      return;
    }
    const ticks = Math.floor(next() * 24);
    for (let i = 0; i < ticks; i += 1) await Promise.resolve();
  };
}

/**
 * Three SKUs where a store that joins a request id and a SKU with U+0000 (a reversal tally, a
 * hold) would confuse `L1` with `A\u0000B` and `L1\u0000A` with `B`.
 */
const LOAD_SKUS = ['A', 'B', 'A\u0000B'] as const;
/** `L1` is a prefix of `L10` to `L19`, and of `L1\u0000A`. */
const LOAD_IDS = [...Array.from({ length: 40 }, (_, i) => `L${i}`), 'L1\u0000A', 'L1:A'];
/** The load's fixed clock: its holds (a minute long) never fall due, so a run is the same every time. */
const LOAD_NOW = 1_000_000;

const loadSku = fc.constantFrom<string>(...LOAD_SKUS);
const loadId = fc.constantFrom(...LOAD_IDS);
/** Mostly one-SKU lines; now and then an `anyOf` line over the three SKUs, in a drawn order. */
const loadLine = (qtyMax: number): fc.Arbitrary<OrderLine> => fc.oneof(
  { weight: 3, arbitrary: fc.record({ sku: loadSku, qty: fc.integer({ min: 1, max: qtyMax }) }) },
  { weight: 1, arbitrary: fc.record({ anyOf: fc.shuffledSubarray<string>([...LOAD_SKUS], { minLength: 2 }), qty: fc.integer({ min: 1, max: qtyMax }), split: fc.boolean() }) },
);
const loadOp: fc.Arbitrary<RequestOp> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ requestId: loadId, sku: loadSku, qty: fc.integer({ min: 1, max: 5 }) }).map((input): RequestOp => ({ kind: 'restock', input })) },
  {
    weight: 5,
    arbitrary: fc.tuple(loadId, fc.array(loadLine(3), { minLength: 1, maxLength: 3 }))
      .map(([requestId, lines]): RequestOp => ({ kind: 'deduct', input: { requestId, lines } })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(loadId, loadSku, fc.nat({ max: 20 }), fc.option(fc.nat({ max: 6 }), { nil: undefined }))
      .map(([requestId, sku, onHand, expectedVersion]): RequestOp => ({
        kind: 'adjust', input: expectedVersion === undefined ? { requestId, sku, onHand } : { requestId, sku, onHand, expectedVersion },
      })),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(loadId, loadId, fc.option(fc.array(fc.record({ sku: loadSku, qty: fc.integer({ min: 1, max: 2 }) }), { minLength: 1, maxLength: 2 }), { nil: undefined }))
      .map(([requestId, of, lines]): RequestOp => ({ kind: 'reverse', input: lines === undefined ? { requestId, of } : { requestId, of, lines } })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(loadId, fc.array(loadLine(3), { minLength: 1, maxLength: 2 }))
      .map(([requestId, lines]): RequestOp => ({ kind: 'reserve', input: { requestId, lines, ttlMs: 60_000 } })),
  },
  // Revokes race the other uses of their id: either the id is closed first, or it is applied first.
  { weight: 1, arbitrary: loadId.map((requestId): RequestOp => ({ kind: 'revoke', input: { requestId } })) },
);

/** Every op, and some of them again (the same request sent twice at once). */
const loadBatch = fc
  .tuple(fc.array(loadOp, { minLength: 100, maxLength: 250 }), fc.array(fc.nat(), { maxLength: 60 }))
  .map(([ops, copies]) => [...ops, ...copies.map((k) => structuredClone(ops[k % ops.length] as RequestOp))]);

/**
 * Many concurrent writes on three SKUs (`Promise.all`, no scheduler; every other call starts
 * after a seeded jitter, so calls also overlap calls already in flight), then: the invariants; at
 * most one first application per request id; every replay equal to the first application; the
 * entries of every applied request equal to its result.
 */
export async function concurrentLoadProperty(
  caseName: string,
  createStore: (seed: number) => StockStore | Promise<StockStore>,
  numRuns: number,
): Promise<void> {
  const property = fc.asyncProperty(loadBatch, fc.integer(), async (ops, seed) => {
    const ledger = new StockLedger({ store: await createStore(seed), clock: () => LOAD_NOW });
    try {
      for (const sku of LOAD_SKUS) await ledger.restockOrThrow({ requestId: `init-${sku}`, sku, qty: 40 });
      const wait = jitter(seed ^ 0x5bd1e995);
      const outcomes = await Promise.all(ops.map(async (op, i) => {
        if (i % 2 === 1) await wait();
        return { op, outcome: await runOp(ledger, op) };
      }));
      const applied = new Map<string, { op: RequestOp; result: Applied }>();
      for (const { op, outcome } of outcomes) {
        if (!isApplied(outcome) || outcome.replayed) continue;
        const id = requestIdOf(op);
        if (applied.has(id)) fail(`request ${show(id)} was applied twice: ${describeOp(op)} and ${describeOp(applied.get(id)?.op as RequestOp)}`);
        applied.set(id, { op, result: outcome });
      }
      for (const { op, outcome } of outcomes) {
        if (outcome !== null && 'thrown' in outcome && outcome.thrown !== 'IDEMPOTENCY_CONFLICT' && outcome.thrown !== 'INVALID_INPUT') {
          fail(`${describeOp(op)} threw ${outcome.thrown}`);
        }
        if (!isApplied(outcome) || !outcome.replayed) continue;
        const first = applied.get(requestIdOf(op));
        if (first === undefined) fail(`${describeOp(op)} is a replay of a request that was never applied`);
        assertEqual(outcome, { ...first.result, replayed: true }, `replay ${describeOp(op)}`);
      }
      const { entries } = await checkInvariants(ledger, {
        operations: [...applied.values()].map(({ op }) => ({ requestId: requestIdOf(op), skus: skusOf(op) })),
      });
      for (const [id, { result }] of applied) {
        assertEqual(entries.filter((e) => e.requestId === id), result.entries, `entries of ${show(id)} in the feed`);
      }
    } finally {
      await ledger.close();
    }
  });
  await runProperty(caseName, property, numRuns);
}

function isApplied(outcome: Outcome): outcome is Applied {
  return outcome !== null && 'ok' in outcome && outcome.ok && 'replayed' in outcome;
}

/**
 * Small concurrent batches started with random small delays (no scheduler): the history of
 * each batch must be linearizable.
 */
export async function concurrentBatchesProperty(
  caseName: string,
  createStore: (seed: number) => StockStore | Promise<StockStore>,
  numRuns: number,
): Promise<void> {
  // Start offsets: mostly a number of microtask ticks (operations overlap at fine grain),
  // sometimes a macrotask (-1).
  const starts = fc.array(fc.oneof({ weight: 5, arbitrary: fc.nat({ max: 60 }) }, { weight: 1, arbitrary: fc.constant(-1) }), { minLength: 8, maxLength: 8 });
  const property = fc.asyncProperty(setupOps, concurrentBatch(8), starts, fc.integer(), async (setup, ops, startDelays, seed) => {
    const clock = { now: 1000 };
    const ledger = new StockLedger({ store: await createStore(seed), clock: () => clock.now });
    try {
      const model = new ReferenceModel();
      await applySetup(ledger, model, setup, clock.now);
      const recorder = new HistoryRecorder();
      await Promise.all(ops.map(async (op: Op, i) => {
        await delay(startDelays[i % startDelays.length] ?? 0);
        clock.now = 2000 + i;
        await recorder.invoke(ledger, op, clock.now);
      }));
      if (recorder.unexpected.length > 0) throw new ConformanceError('a call failed with a non-library error', { cause: recorder.unexpected[0] });
      assertLinearizable(recorder.events, model, 'concurrent batch');
      clock.now = 2000 + ops.length; // not behind any call, for the reads of checkInvariants
      await checkInvariants(ledger);
    } finally {
      await ledger.close();
    }
  });
  await runProperty(caseName, property, numRuns);
}

/** -1: after a macrotask; n >= 0: after n microtask ticks (0: at once). */
async function delay(ticks: number): Promise<void> {
  if (ticks < 0) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    return;
  }
  for (let i = 0; i < ticks; i += 1) await Promise.resolve();
}

/**
 * A reverse without lines learns which SKUs it touches only by reading its original: a store
 * must still make that read, its checks and its write one atomic step, even while the original
 * and other writes on the same SKUs run. Start offsets and store lags are generated at
 * microtask granularity, so every small window gets tried.
 */
export async function reverseRaceProperty(
  caseName: string,
  createInterleavedStore: (interleave: () => Promise<void>) => StockStore | Promise<StockStore>,
  numRuns: number,
): Promise<void> {
  type Other = { t: 'deduct' | 'restock' | 'reverse one' | 'reverse all' | 'stock'; sku: 'A' | 'B'; qty: number };
  const others = fc.array(
    fc.record({
      t: fc.constantFrom<Other['t']>('deduct', 'restock', 'reverse one', 'reverse all', 'stock'),
      sku: fc.constantFrom<Other['sku']>('A', 'B'),
      qty: fc.integer({ min: 1, max: 2 }),
    }),
    { minLength: 1, maxLength: 4 },
  );
  const toOp = ({ t, sku, qty }: Other, requestId: string): Op => {
    switch (t) {
      case 'deduct':
        return { kind: 'deduct', input: { requestId, sku, qty } };
      case 'restock':
        return { kind: 'restock', input: { requestId, sku, qty } };
      case 'reverse one':
        return { kind: 'reverse', input: { requestId, of: 'X', lines: [{ sku, qty: 1 }] } };
      case 'reverse all':
        return { kind: 'reverse', input: { requestId, of: 'X' } };
      case 'stock':
        return { kind: 'stock', sku };
    }
  };
  const original = fc.array(fc.record({ sku: fc.constantFrom('A', 'B'), qty: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 2 });
  // Mostly short offsets and lags (an async lock path is a few ticks long), some longer ones.
  const ticks = (short: number, long: number): fc.Arbitrary<number> =>
    fc.oneof({ weight: 4, arbitrary: fc.nat({ max: short }) }, { weight: 1, arbitrary: fc.nat({ max: long }) });
  const offsets = fc.array(ticks(12, 40), { minLength: 6, maxLength: 6 });
  const lags = fc.array(ticks(8, 30), { minLength: 1, maxLength: 8 });
  const property = fc.asyncProperty(original, others, offsets, lags, async (lines, otherOps, starts, lagTicks) => {
    let lagIndex = 0;
    const store = await createInterleavedStore(() => delay(lagTicks[lagIndex++ % lagTicks.length] ?? 0));
    const clock = { now: 1000 };
    const ledger = new StockLedger({ store, clock: () => clock.now });
    try {
      const model = new ReferenceModel();
      const setup: WriteOp[] = [
        { kind: 'restock', input: { requestId: 'sA', sku: 'A', qty: 5 } },
        { kind: 'restock', input: { requestId: 'sB', sku: 'B', qty: 5 } },
      ];
      await applySetup(ledger, model, setup, clock.now);
      const ops: Op[] = [
        { kind: 'deduct', input: { requestId: 'X', lines } },
        { kind: 'reverse', input: { requestId: 'R', of: 'X' } },
        ...otherOps.map((other, i) => toOp(other, `o${i}`)),
      ];
      const recorder = new HistoryRecorder();
      await Promise.all(ops.map(async (op, i) => {
        await delay(i === 0 ? 0 : (starts[i % starts.length] ?? 0));
        clock.now = 2000 + i;
        await recorder.invoke(ledger, op, clock.now);
      }));
      if (recorder.unexpected.length > 0) throw new ConformanceError('a call failed with a non-library error', { cause: recorder.unexpected[0] });
      assertLinearizable(recorder.events, model, 'a reverse racing its original');
      await checkInvariants(ledger);
    } finally {
      await ledger.close();
    }
  });
  await runProperty(caseName, property, numRuns);
}
