import { LIMITS, StockLedger } from '../src/index.js';
import type { FeedEntry, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { checkInvariants } from './invariants.js';
import { ReferenceModel } from './model.js';
import { runOp, type RequestOp } from './ops.js';

const SKUS = ['A', 'B', 'sku {x}:1\n'];

/**
 * `entries()` paging and `request()`: a fixed history (every kind, a rejection, a revoke, a
 * replay at a later time, more than a default page of entries), then every cursor, filter and
 * page size, compared with the reference model and with the rules of the README's API tour.
 */
export async function readsCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  const model = new ReferenceModel();
  try {
    // An empty ledger.
    assertEqual(await ledger.entries(), { entries: [], next: null }, 'entries() of an empty ledger');
    assertEqual(await ledger.entries({ after: 5, sku: 'A', limit: 1 }), { entries: [], next: null }, 'entries after 5 of an empty ledger');
    assertEqual(await ledger.request('nothing'), null, 'request() of an unknown id');
    assertEqual(await ledger.stock('A'), { sku: 'A', onHand: 0, reserved: 0, available: 0, version: 0 }, 'stock() of an unknown SKU');
    const empty = await ledger.verify();
    check(empty.ok && empty.drift.length === 0, () => `verify() of an empty ledger: ${show(empty)}`);

    const history: RequestOp[] = [
      { kind: 'restock', input: { requestId: 'r1', sku: 'A', qty: 5, meta: { po: 'P-1', lines: [1, 2] } } },
      { kind: 'restock', input: { requestId: 'r2', sku: 'B', qty: 3 } },
      { kind: 'restock', input: { requestId: 'r3', sku: SKUS[2] as string, qty: 4 } },
      { kind: 'deduct', input: { requestId: 'd1', lines: [{ sku: SKUS[2] as string, qty: 1 }, { sku: 'B', qty: 1 }, { sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }] } },
      { kind: 'deduct', input: { requestId: 'd2', sku: 'A', qty: 100 } },
      { kind: 'adjust', input: { requestId: 'a1', sku: 'B', onHand: 7, expectedVersion: 2 } },
      { kind: 'adjust', input: { requestId: 'a2', sku: 'B', onHand: 7 } },
      { kind: 'reverse', input: { requestId: 'v1', of: 'd1', lines: [{ sku: 'A', qty: 1 }] } },
      { kind: 'reverse', input: { requestId: 'v2', of: 'd1' } },
      { kind: 'reverse', input: { requestId: 'v3', of: 'd1' } },
      { kind: 'deduct', input: { requestId: 'd1', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 2 }, { sku: SKUS[2] as string, qty: 1 }] } },
      // A revoke writes no entry: the seqs after it go on without a gap.
      { kind: 'revoke', input: { requestId: 'x1', meta: { why: 'cancelled' } } },
    ];
    for (const op of history) {
      clock.now += 1_000;
      assertEqual(await runOp(ledger, op), model.apply(op, clock.now), `outcome of ${show(op)}`);
    }
    // Facts that do not need the model: the merged, SKU-ordered deduct and its replay.
    const d1 = await ledger.request('d1');
    check(d1 !== null, () => 'request(d1) is null');
    assertEqual(d1.entries.map((e) => [e.seq, e.sku, e.onHandDelta]), [[4, 'A', -2], [5, 'B', -2], [6, SKUS[2], -1]], 'entries of d1 (merged, SKU order, seq 4 to 6)');
    assertEqual([d1.ok, d1.replayed, d1.requestId, d1.kind, d1.at], [true, true, 'd1', 'deduct', 5_000], 'request(d1) fields');
    assertEqual(await ledger.request('d2'), null, 'request() of a rejected id');
    const a2 = await ledger.request('a2');
    assertEqual(a2?.entries.map((e) => e.onHandDelta), [0], 'an adjust to the current onHand records a zero-delta entry');
    assertEqual(await ledger.reverse({ requestId: 'v3', of: 'd1' }), model.reverse({ requestId: 'v3', of: 'd1' }, clock.now), 'reverse when nothing is left');

    // More than a default page of entries.
    for (let i = 0; i < LIMITS.entriesPageDefault + 20; i += 1) {
      clock.now += 1;
      const op: RequestOp = { kind: 'restock', input: { requestId: `bulk-${i}`, sku: SKUS[i % SKUS.length] as string, qty: 1 } };
      assertEqual(await runOp(ledger, op), model.apply(op, clock.now), `outcome of ${show(op)}`);
    }
    const all = model.entries();
    check(all.length > LIMITS.entriesPageDefault, () => 'the history should exceed a default page');

    const firstPage = await ledger.entries();
    assertEqual(firstPage, { entries: all.slice(0, LIMITS.entriesPageDefault), next: LIMITS.entriesPageDefault }, `entries() (default limit ${LIMITS.entriesPageDefault})`);
    assertEqual(await ledger.entries({ after: null as unknown as number }), firstPage, 'entries({ after: null }) is entries()');

    for (const sku of [undefined, ...SKUS, 'unknown']) {
      const expected = all.filter((e) => sku === undefined || e.sku === sku);
      for (const limit of [1, 2, 3, 7, LIMITS.entriesPageMax]) {
        const walked = await walk(ledger, sku, limit);
        assertEqual(walked, expected, `walking entries(${show({ sku, limit })}) page by page`);
      }
      for (const after of [0, 1, 3, 5, all.length - 1, all.length, all.length + 10]) {
        const page = await ledger.entries(sku === undefined ? { after, limit: 4 } : { after, sku, limit: 4 });
        const want = expected.filter((e) => e.seq > after).slice(0, 4);
        assertEqual(page, { entries: want, next: want.length === 0 ? null : (want[want.length - 1] as FeedEntry).seq }, `entries(${show({ after, sku, limit: 4 })})`);
      }
    }

    for (const op of history) {
      const id = op.input.requestId;
      assertEqual(await ledger.request(id), model.request(id), `request(${show(id)})`);
    }
    // A replay at a later time returns the original outcome; the record keeps the first time.
    clock.now += 50_000;
    const replay = await ledger.restock({ requestId: 'r1', sku: 'A', qty: 5, meta: { lines: [1, 2], po: 'P-1' } });
    assertEqual(replay, { ...(model.request('r1') as object), replayed: true, requestId: undefined, kind: undefined, at: undefined }, 'replay of r1 later, meta keys reordered');
    assertEqual((await ledger.request('r1'))?.at, 2_000, 'request(r1).at after a later replay');

    // Reads of levels: duplicates kept in order, unknown SKUs are zeros.
    const levels = await ledger.stocks(['B', 'A', 'B', 'nope']);
    assertEqual(levels, ['B', 'A', 'B', 'nope'].map((sku) => model.level(sku)), 'stocks() with a duplicate and an unknown SKU');
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

/** Reads every page of entries with `limit`, following `next`, and checks each cursor. */
async function walk(ledger: StockLedger, sku: string | undefined, limit: number): Promise<FeedEntry[]> {
  const out: FeedEntry[] = [];
  let after = 0;
  for (let page = 0; page < 10_000; page += 1) {
    const result = await ledger.entries(sku === undefined ? { after, limit } : { after, sku, limit });
    check(result.entries.length <= limit, () => `a page of ${result.entries.length} entries for limit ${limit}`);
    const last = result.entries[result.entries.length - 1];
    if (last === undefined) {
      check(result.next === null, () => `next is ${result.next} on an empty page (expected null)`);
      return out;
    }
    check(result.next === last.seq, () => `next is ${result.next}, the page ends at seq ${last.seq}`);
    out.push(...result.entries);
    after = result.next;
  }
  return out;
}
