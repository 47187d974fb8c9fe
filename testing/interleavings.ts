import fc from 'fast-check';
import { StockLedger } from '../src/index.js';
import type { Line, OrderLine, SetPolicyInput, StockStore } from '../src/index.js';
import { assertEqual, ConformanceError } from './assert.js';
import { HistoryRecorder, assertLinearizable } from './history.js';
import { checkInvariants } from './invariants.js';
import { ReferenceModel } from './model.js';
import { describeOp, isRequestOp, runOp, skusOf, type Op, type WriteOp } from './ops.js';
import { runProperty } from './property.js';

/**
 * Two hot SKUs and two rarer ones: contention is the point. `A\u0000B` is what a store that
 * joins a reservation id and a SKU with U+0000 would confuse: reservation `h0` holding it is
 * `h0\u0000A\u0000B`, and so is reservation `h0\u0000A` holding `B`. `\uffff:😀` sorts
 * differently by code units and by code points.
 */
const SKUS = ['A', 'B', 'A\u0000B', '\uffff:😀'] as const;
/**
 * Few ids, so concurrent calls share ids (replays, conflicts) often: `c1` is a prefix of `c10`,
 * `h0` (the setup reservation) of `h0\u0000A`. `d0` is the setup deduct.
 */
const IDS = ['c1', 'c10', 'h0\u0000A', 'd0', 'h0'] as const;
/** Reservation ids for commit, release and reads: mostly the setup's `h0`, or one a concurrent reserve may make. */
const RESERVATION_IDS = ['h0', 'h0', 'h0\u0000A', 'c1', 'c10'] as const;
/** Most loops draining the scheduler; each one releases every task it can reach. */
const DRAIN_ROUNDS_MAX = 200;

const sku = fc.constantFrom<string>('A', 'A', 'B', 'B', SKUS[2], SKUS[3]);
const id = fc.constantFrom<string>(...IDS);
const reservationId = fc.constantFrom<string>(...RESERVATION_IDS);
const line = fc.record({ sku, qty: fc.integer({ min: 1, max: 2 }) });
/** Now and then an `anyOf` line over two or three of the SKUs, so allocations race too. */
const orderLine: fc.Arbitrary<OrderLine> = fc.oneof(
  { weight: 3, arbitrary: line },
  {
    weight: 1,
    arbitrary: fc.record({
      anyOf: fc.shuffledSubarray<string>([...SKUS], { minLength: 2, maxLength: 3 }), qty: fc.integer({ min: 1, max: 3 }),
      split: fc.boolean(), prefer: fc.constantFrom<'order' | 'mostAvailable'>('order', 'mostAvailable'),
    }),
  },
);

/**
 * One concurrent call on a tiny state, so races are likely and outcomes vary. Calls start at
 * times 2000, 2001, ... (in whatever order the scheduler starts them), so short holds fall due
 * during the batch: reserves with TTLs of a few ms, and the setup hold `h0`.
 */
export const concurrentOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ requestId: id, sku, qty: fc.integer({ min: 1, max: 3 }) }).map((input): Op => ({ kind: 'restock', input })),
  // A purchase order and a stocktake of several SKUs, all or none, racing the rest.
  fc.tuple(id, fc.array(line, { minLength: 2, maxLength: 3 })).map(([requestId, lines]): Op => ({ kind: 'restock', input: { requestId, lines } })),
  fc.tuple(id, fc.uniqueArray(fc.record({ sku, onHand: fc.nat({ max: 4 }) }), { minLength: 2, maxLength: 3, selector: (c) => c.sku }))
    .map(([requestId, lines]): Op => ({ kind: 'adjust', input: { requestId, lines } })),
  fc.tuple(id, fc.array(orderLine, { minLength: 1, maxLength: 2 })).map(([requestId, lines]): Op => ({ kind: 'deduct', input: { requestId, lines } })),
  fc.record({ requestId: id, sku, qty: fc.integer({ min: 1, max: 2 }) }).map((input): Op => ({ kind: 'deduct', input })),
  fc.tuple(id, sku, fc.nat({ max: 4 }), fc.option(fc.nat({ max: 3 }), { nil: undefined })).map(([requestId, s, onHand, expectedVersion]): Op => ({
    kind: 'adjust',
    input: expectedVersion === undefined ? { requestId, sku: s, onHand } : { requestId, sku: s, onHand, expectedVersion },
  })),
  // Reverses, often of a deduct that runs at the same time, often without lines (the store
  // learns the SKUs only once it has read the original); `h0` when it is committed.
  fc.tuple(id, fc.constantFrom<string>(...IDS), fc.option(fc.array(fc.record({ sku, qty: fc.constant(1) }), { minLength: 1, maxLength: 2 }), { nil: undefined, freq: 2 }))
    .map(([requestId, of, lines]): Op => ({ kind: 'reverse', input: lines === undefined ? { requestId, of } : { requestId, of, lines } })),
  fc.tuple(id, fc.constantFrom<string>(...IDS))
    .map(([requestId, of]): Op => ({ kind: 'reverse', input: { requestId, of } })),
  fc.tuple(id, fc.array(orderLine, { minLength: 1, maxLength: 2 }), fc.constantFrom(1, 2, 4, 1000))
    .map(([requestId, lines, ttlMs]): Op => ({ kind: 'reserve', input: { requestId, lines, ttlMs } })),
  fc.tuple(reservationId, fc.option(fc.array(line, { minLength: 1, maxLength: 2 }), { nil: undefined, freq: 2 }))
    .map(([rid, lines]): Op => ({ kind: 'commit', input: lines === undefined ? { reservationId: rid } : { reservationId: rid, lines } })),
  fc.tuple(reservationId, fc.option(fc.array(line, { minLength: 1, maxLength: 2 }), { nil: undefined, freq: 2 }))
    .map(([rid, lines]): Op => ({ kind: 'commit', input: lines === undefined ? { reservationId: rid } : { reservationId: rid, lines } })),
  reservationId.map((rid): Op => ({ kind: 'release', input: { reservationId: rid } })),
  // Carts that change while other calls take the same SKUs, and heartbeats that move an expiry.
  fc.tuple(id, reservationId, fc.array(orderLine, { minLength: 1, maxLength: 2 }))
    .map(([requestId, rid, lines]): Op => ({ kind: 'amend', input: { requestId, reservationId: rid, lines } })),
  fc.tuple(reservationId, fc.constantFrom(1, 3, 1000)).map(([rid, ttlMs]): Op => ({ kind: 'extend', input: { reservationId: rid, ttlMs } })),
  // Policies that change under the other calls: a backorder allowance, a purchase limit (then
  // calls without a buyer are refused), and back to the default.
  fc.tuple(id, sku, fc.constantFrom<Partial<SetPolicyInput>>({ backorderMax: 2 }, { buyerMax: 2 }, { backorderMax: null, buyerMax: null }))
    .map(([requestId, s, fields]): Op => ({ kind: 'setPolicy', input: { requestId, sku: s, ...fields } })),
  fc.tuple(id, fc.array(orderLine, { minLength: 1, maxLength: 2 }), fc.constantFrom('ann', 'bo\u0000b'))
    .map(([requestId, lines, buyer]): Op => ({ kind: 'deduct', input: { requestId, lines, buyer } })),
  // Revokes of ids other calls use at the same time: whichever comes first wins the id.
  fc.tuple(id, fc.boolean()).map(([requestId, withMeta]): Op => ({
    kind: 'revoke', input: withMeta ? { requestId, meta: { why: 'cancelled' } } : { requestId },
  })),
  fc.option(fc.integer({ min: 1, max: 2 }), { nil: undefined }).map((limit): Op => ({ kind: 'sweep', input: limit === undefined ? {} : { limit } })),
  reservationId.map((rid): Op => ({ kind: 'reservation', id: rid })),
  sku.map((s): Op => ({ kind: 'stock', sku: s })),
);

/**
 * A starting state (at time 1000): some stock of A, B and `A\u0000B`, an applied deduct `d0`
 * that can be reversed, and a reservation `h0` (if there is stock for it) that falls due
 * before, during or after the concurrent calls.
 */
export const setupOps: fc.Arbitrary<WriteOp[]> = fc
  .record({
    a: fc.nat({ max: 4 }), b: fc.nat({ max: 4 }), ab: fc.nat({ max: 3 }), d0: fc.array(line, { minLength: 1, maxLength: 2 }),
    h0: fc.array(line, { minLength: 1, maxLength: 2 }), ttlMs: fc.constantFrom(500, 1002, 1004, 1006, 8000),
  })
  .map(({ a, b, ab, d0, h0, ttlMs }) => {
    const lines: Line[] = d0;
    const ops: WriteOp[] = [];
    if (a > 0) ops.push({ kind: 'restock', input: { requestId: 's-A', sku: 'A', qty: a + 2 } });
    if (b > 0) ops.push({ kind: 'restock', input: { requestId: 's-B', sku: 'B', qty: b + 2 } });
    if (ab > 0) ops.push({ kind: 'restock', input: { requestId: 's-AB', sku: SKUS[2], qty: ab + 1 } });
    ops.push({ kind: 'deduct', input: { requestId: 'd0', lines } });
    ops.push({ kind: 'reserve', input: { requestId: 'h0', lines: h0, ttlMs } });
    return ops;
  });

/** Concurrent calls: a few ops plus exact copies of some of them (the same request sent twice at once). */
export const concurrentBatch = (maxOps: number): fc.Arbitrary<Op[]> =>
  fc.tuple(fc.array(concurrentOp, { minLength: 2, maxLength: maxOps - 2, size: 'max' }), fc.array(fc.nat(), { maxLength: 2 }))
    .map(([ops, copies]) => [...ops, ...copies.map((k) => structuredClone(ops[k % ops.length] as Op))]);

/** Runs the setup sequentially on both the ledger and a model, checking each outcome. */
export async function applySetup(ledger: StockLedger, model: ReferenceModel, setup: readonly WriteOp[], at: number): Promise<void> {
  for (const op of setup) assertEqual(await runOp(ledger, op), model.apply(op, at), `setup ${describeOp(op)}`);
}

/**
 * `fc.scheduler` decides when each call starts and when each store operation may go on from
 * its read to its write; the history must be linearizable and the invariants must hold.
 */
export async function interleavingProperty(
  caseName: string,
  createInterleavedStore: (interleave: () => Promise<void>) => StockStore | Promise<StockStore>,
  numRuns: number,
): Promise<void> {
  const property = fc.asyncProperty(fc.scheduler(), setupOps, concurrentBatch(8), lags, async (s, setup, ops, lagTicks) => {
    let scheduling = false;
    let lagIndex = 0;
    // After the scheduler releases a task, the task goes on only after a generated number of
    // microtask ticks: the scheduler waits for 50 idle ticks before its next release, so a lag
    // near or above that lets two released tasks overlap at microtask granularity.
    const lag = (): Promise<void> => microticks(lagTicks[lagIndex++ % lagTicks.length] ?? 0);
    const store = await createInterleavedStore(async () => {
      if (!scheduling) return;
      await s.schedule(Promise.resolve(), 'between read and write');
      await lag();
    });
    const clock = { now: 1000 };
    const ledger = new StockLedger({ store, clock: () => clock.now });
    try {
      const model = new ReferenceModel();
      await applySetup(ledger, model, setup, clock.now);
      scheduling = true;
      const recorder = new HistoryRecorder();
      const calls = ops.map((op, i) =>
        s.schedule(Promise.resolve(), `start #${i} ${describeOp(op)}`).then(lag).then(() => {
          clock.now = 2000 + i;
          return recorder.invoke(ledger, op, clock.now);
        }),
      );
      await drain(s, calls);
      scheduling = false;
      if (recorder.unexpected.length > 0) throw new ConformanceError('a call failed with a non-library error', { cause: recorder.unexpected[0] });
      assertLinearizable(recorder.events, model, 'interleaved calls');
      // Reads at a time no call is after (calls started out of order moved the clock back and forth).
      clock.now = 2000 + ops.length;
      await checkInvariants(ledger, {
        // Commits and releases are checked against their reservation by checkInvariants itself.
        operations: recorder.events.flatMap((e) => {
          const { op } = e.input;
          const o = e.output;
          if (!isRequestOp(op) || o === null || !('ok' in o) || !o.ok) return [];
          return [{ requestId: op.input.requestId, skus: skusOf(op) }];
        }),
      });
    } finally {
      scheduling = false;
      await ledger.close();
    }
  });
  await runProperty(caseName, property, numRuns);
}

/** Microtask lags: mostly none, some short, some around the scheduler's 50-tick idle wait. */
const lags = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 12 }) },
    { weight: 2, arbitrary: fc.integer({ min: 40, max: 70 }) },
  ),
  { minLength: 1, maxLength: 24 },
);

async function microticks(count: number): Promise<void> {
  for (let i = 0; i < count; i += 1) await Promise.resolve();
}

/**
 * Releases scheduled tasks until every call has finished. A store may also await things the
 * scheduler does not control (I/O, timers), so idle rounds yield to the event loop.
 */
async function drain(s: fc.Scheduler, calls: Array<Promise<void>>): Promise<void> {
  let finished = false;
  const all = Promise.allSettled(calls).then(() => {
    finished = true;
  });
  for (let round = 0; round < DRAIN_ROUNDS_MAX && !finished; round += 1) {
    await s.waitIdle();
    if (!finished) await new Promise((resolve) => setTimeout(resolve, round < 10 ? 0 : 10));
  }
  if (!finished) throw new ConformanceError('concurrent calls did not finish (a deadlock, or a call that never returns)');
  await all;
}
