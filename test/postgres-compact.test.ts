/**
 * PostgreSQL retention: compaction steps, checkpoints, the feed's horizon and `levels()`, on a
 * real server. What is inside the window stays exact (replays, pins of held reservations,
 * verify); what went is gone for good (a removed id applies anew, a reverse of it finds
 * nothing); entries not yet numbered are never touched; a step and the writers that race it
 * (pool connections, the app's own transactions) never lose or orphan anything.
 */
import type pg from 'pg';
import { FeedCompactedError, StockLedger, type Applied, type StockLedgerOptions } from 'stock-ledger';
import { PostgresStore, SCHEMA_VERSION, schemaVersion, type PostgresStoreOptions } from 'stock-ledger/postgres';
import { compareCodePoints } from 'stock-ledger/store';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectorOf } from '../adapters/postgres/postgres-client.js';
import { migrateWith } from '../adapters/postgres/postgres-schema.js';
import { toDeduct, toReserve, toRestock } from '../src/validate.js';
import { seededRandom } from '../testing/random.js';
import { keptEntries } from 'stock-ledger/testing';
import { codeOf } from './support/codes.js';
import { createDatabase, describePostgres, quietPool, startPostgres, type PostgresServer } from './support/postgres-server.js';

const HOUR = 3_600_000;
const T0 = 1_700_000_000_000;

let server: PostgresServer | undefined;
let database: { url: string; drop(): Promise<void> } | undefined;
let pool: pg.Pool;
let schemas = 0;
const fresh = (): string => `cmp_${(schemas += 1)}`;

/** A ledger on its own schema with a clock the test moves (`clock.now`). */
function ledgerOn(
  schema: string, options: Omit<PostgresStoreOptions, 'client' | 'schema'> = {}, ledgerOptions: Omit<StockLedgerOptions, 'store' | 'clock'> = {},
  clock = { now: T0 },
): { ledger: StockLedger; store: PostgresStore; clock: { now: number } } {
  const store = new PostgresStore({ client: pool, schema, ...options });
  return { ledger: new StockLedger({ store, clock: () => clock.now, ...ledgerOptions }), store, clock };
}


const rowsOf = async (text: string): Promise<Array<Record<string, unknown>>> => (await pool.query(text)).rows as Array<Record<string, unknown>>;

describePostgres('PostgreSQL retention', () => {
  beforeAll(async () => {
    server = await startPostgres();
    database = await createDatabase(server, 'compact');
    pool = quietPool({ connectionString: database.url, max: 16 });
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
    await server?.stop();
  });

  it('removes old records and entries, keeps the window: replays inside replay, a removed id applies anew, its reverse finds nothing, a held reservation pins its entries', async () => {
    const { ledger, clock } = ledgerOn(fresh());
    await ledger.restockOrThrow({ requestId: 'r1', sku: 'A', qty: 10 });
    await ledger.restockOrThrow({ requestId: 'rB', sku: 'B', qty: 5 });
    const d1 = await ledger.deductOrThrow({ requestId: 'd1', sku: 'A', qty: 2, buyer: 'ann' });
    await ledger.reserveOrThrow({ requestId: 'done', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
    await ledger.commitOrThrow({ reservationId: 'done' });
    // Held for two hours: its reserve entry, and every entry after it, stay until it ends.
    const heldInput = { requestId: 'held', lines: [{ sku: 'B', qty: 2 }], ttlMs: 2 * HOUR };
    const held = await ledger.reserveOrThrow(heldInput);
    const d2 = await ledger.deductOrThrow({ requestId: 'd2', sku: 'A', qty: 1 });
    clock.now = T0 + HOUR;
    const d3 = await ledger.deductOrThrow({ requestId: 'd3', sku: 'A', qty: 1 });

    const report = await ledger.compact({ windowMs: HOUR / 2 });
    expect(report).toEqual({ before: T0 + HOUR / 2, requests: 4, reservations: 1, entries: 5, compactedThrough: 5, steps: 1 });
    for (const id of ['r1', 'rB', 'd1', 'done']) expect(await ledger.request(id), id).toBeNull();
    expect(await ledger.reservation('done')).toBeNull();
    // d2 is old but after the pin: kept, with its record, and still replays.
    expect(await ledger.deduct({ requestId: 'd2', sku: 'A', qty: 1 })).toEqual({ ...d2, replayed: true });
    expect(await ledger.deduct({ requestId: 'd3', sku: 'A', qty: 1 })).toEqual({ ...d3, replayed: true });
    expect((await keptEntries(ledger)).map((e) => [e.seq, e.requestId])).toEqual([[6, 'held'], [7, 'd2'], [8, 'd3']]);

    // What went is gone: the same request is a new one; a reverse or commit of what went finds nothing.
    const again = await ledger.deductOrThrow({ requestId: 'd1', sku: 'A', qty: 2, buyer: 'ann' });
    expect(again).toMatchObject({ replayed: false, entries: [{ seq: 9, onHandDelta: -2 }] });
    expect(again.entries[0]?.seq).not.toBe(d1.entries[0]?.seq);
    expect(await ledger.reverse({ requestId: 'v1', of: 'done' })).toMatchObject({ ok: false, code: 'REQUEST_NOT_FOUND' });
    expect(await ledger.reverse({ requestId: 'v2', of: 'r1' })).toMatchObject({ ok: false, code: 'REQUEST_NOT_FOUND' });
    expect(await ledger.commit({ reservationId: 'done' })).toMatchObject({ ok: false, code: 'RESERVATION_NOT_FOUND' });
    expect(await ledger.stocks(['A', 'B'])).toMatchObject([{ onHand: 3, reserved: 0, version: 7 }, { onHand: 5, reserved: 2, version: 2 }]);
    expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 4 }]);

    // The pinned reservation commits as usual, and no longer pins: its reserve entry goes, its
    // records stay (and replay) until its end is older than the window.
    const heldCommit = await ledger.commitOrThrow({ reservationId: 'held' });
    expect(heldCommit).toMatchObject({ entries: [{ seq: 10, sku: 'B', onHandDelta: -2 }] });
    expect(await ledger.compact({ windowMs: HOUR / 2 })).toMatchObject({ requests: 1, reservations: 0, entries: 2, compactedThrough: 7 });
    expect(await ledger.reserve(heldInput)).toEqual({ ...held, replayed: true });
    expect(await ledger.commit({ reservationId: 'held' })).toEqual({ ...heldCommit, replayed: true });
    expect(await ledger.request('held')).toMatchObject({ kind: 'reserve', entries: held.entries, levels: held.levels });
    expect(await ledger.reservation('held')).toMatchObject({ state: 'committed', committed: [{ sku: 'B', qty: 2 }] });
    clock.now = T0 + 4 * HOUR;
    expect(await ledger.compact({ windowMs: HOUR / 2 })).toMatchObject({ requests: 3, reservations: 1, entries: 3, compactedThrough: 10 });
    expect(await ledger.request('held')).toBeNull();
    expect(await ledger.reservation('held')).toBeNull();
    expect(await keptEntries(ledger)).toEqual([]);
    expect(await ledger.verify()).toMatchObject({ ok: true, skusChecked: 2 });
    // The buyer's lifetime total is not compacted: buyerMax still counts what went.
    expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 4 }]);
    expect(await ledger.restockOrThrow({ requestId: 'r9', sku: 'A', qty: 1 })).toMatchObject({ entries: [{ seq: 11 }], levels: [{ onHand: 4, version: 8 }] });
  });

  it('steps are bounded by the limit; closed ids go separately; a reverse tally goes with its original', async () => {
    const { ledger, store, clock } = ledgerOn(fresh());
    for (let i = 1; i <= 5; i += 1) await ledger.restockOrThrow({ requestId: `r${i}`, sku: `S${i}`, qty: 3 });
    for (const id of ['x1', 'x2', 'x3']) await ledger.revokeOrThrow({ requestId: id });
    await ledger.reverseOrThrow({ requestId: 'undo', of: 'r5', lines: [{ sku: 'S5', qty: 1 }] }).catch(() => undefined);
    await ledger.deductOrThrow({ requestId: 'd', sku: 'S1', qty: 2 });
    await ledger.reverseOrThrow({ requestId: 'v', of: 'd', lines: [{ sku: 'S1', qty: 1 }] });
    expect(await rowsOf(`SELECT of_request FROM ${store.schema}.reversals`)).toEqual([{ of_request: 'd' }]);
    clock.now = T0 + HOUR;
    const step = (limit: number): ReturnType<NonNullable<PostgresStore['compact']>> => store.compact({ before: clock.now, limit, now: clock.now });
    expect(await step(2)).toEqual({ requests: 4, reservations: 0, entries: 2, compactedThrough: 2, more: true });
    expect(await step(2)).toEqual({ requests: 3, reservations: 0, entries: 2, compactedThrough: 4, more: true });
    expect(await step(2)).toEqual({ requests: 2, reservations: 0, entries: 2, compactedThrough: 6, more: true });
    // d's tally went with d; v's record with v's entry.
    expect(await rowsOf(`SELECT of_request FROM ${store.schema}.reversals`)).toEqual([]);
    expect(await step(2)).toEqual({ requests: 1, reservations: 0, entries: 1, compactedThrough: 7, more: false });
    expect(await step(2)).toEqual({ requests: 0, reservations: 0, entries: 0, compactedThrough: 7, more: false });
    expect(await rowsOf(`SELECT count(*)::int AS n FROM ${store.schema}.requests`)).toEqual([{ n: 0 }]);
    // A closed id that went may be applied: retries older than the window are new requests.
    expect(await ledger.restock({ requestId: 'x1', sku: 'S1', qty: 1 })).toMatchObject({ ok: true, replayed: false });
    expect(await ledger.verify()).toMatchObject({ ok: true, skusChecked: 5 });
  });

  it('an id applied anew after a step took its record is another request: what is left of the old one never takes the new one\'s records', async () => {
    const { ledger, store, clock } = ledgerOn(fresh());
    await ledger.restockOrThrow({ requestId: 'r', lines: [{ sku: 'A', qty: 10 }, { sku: 'B', qty: 10 }] });
    const orderInput = { requestId: 'o', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }] };
    await ledger.deductOrThrow(orderInput);
    const cartInput = { requestId: 'c', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }], ttlMs: 60_000 };
    await ledger.reserveOrThrow(cartInput);
    await ledger.commitOrThrow({ reservationId: 'c' });
    clock.now = T0 + HOUR;
    const step = (limit: number): ReturnType<NonNullable<PostgresStore['compact']>> => store.compact({ before: T0 + 1, limit, now: clock.now });
    // Cut inside the order: its record goes with its first entry; the retry is a new order.
    expect(await step(3)).toMatchObject({ requests: 2, entries: 3, more: true });
    const order = await ledger.deductOrThrow(orderInput);
    expect(order).toMatchObject({ replayed: false, entries: [{ seq: 9 }, { seq: 10 }] });
    // Cut inside the commit: the cart goes with its first end entry; the retry is a new cart.
    expect(await step(4)).toMatchObject({ requests: 1, reservations: 1, entries: 4, compactedThrough: 7, more: true });
    const cart = await ledger.reserveOrThrow(cartInput);
    const commit = await ledger.commitOrThrow({ reservationId: 'c' });
    // The old order's last entry and the old cart's last commit entry go; the new records stay.
    expect(await step(10)).toEqual({ requests: 0, reservations: 0, entries: 1, compactedThrough: 8, more: false });
    expect(await ledger.deduct(orderInput)).toEqual({ ...order, replayed: true });
    expect(await ledger.reserve(cartInput)).toEqual({ ...cart, replayed: true });
    expect(await ledger.commit({ reservationId: 'c' })).toEqual({ ...commit, replayed: true });
    expect(await ledger.verify()).toMatchObject({ ok: true, skusChecked: 2 });
  });

  it('verify() is ok after compaction, walks SKUs left with only a checkpoint, and reports a tampered checkpoint as drift', async () => {
    const { ledger, store, clock } = ledgerOn(fresh());
    const s = store.schema;
    await ledger.restockOrThrow({ requestId: 'r', lines: [{ sku: 'A', qty: 10 }, { sku: 'C', qty: 4 }] });
    await ledger.deductOrThrow({ requestId: 'd', sku: 'A', qty: 3, buyer: 'bob' });
    await ledger.reserveOrThrow({ requestId: 'x', lines: [{ sku: 'A', qty: 2 }], ttlMs: 60_000, buyer: 'bob' });
    await ledger.releaseOrThrow({ reservationId: 'x' });
    clock.now = T0 + HOUR;
    // A step cut by its limit between the reserve and the release: a checkpoint hold of +2, a kept entry of -2.
    expect(await store.compact({ before: clock.now, limit: 4, now: clock.now })).toMatchObject({ entries: 4, compactedThrough: 4, more: true });
    expect(await rowsOf(`SELECT sku, on_hand::int, reserved::int, version::int FROM ${s}.checkpoints ORDER BY sku`)).toEqual([
      { sku: 'A', on_hand: 7, reserved: 2, version: 3 }, { sku: 'C', on_hand: 4, reserved: 0, version: 1 },
    ]);
    expect(await rowsOf(`SELECT sku, reservation_id, qty::int FROM ${s}.checkpoint_holds`)).toEqual([{ sku: 'A', reservation_id: 'x', qty: 2 }]);
    expect(await rowsOf(`SELECT sku, buyer, qty::int FROM ${s}.checkpoint_buyers`)).toEqual([{ sku: 'A', buyer: 'bob', qty: 5 }]);
    expect(await rowsOf(`SELECT count(*)::int AS n FROM ${s}.entries WHERE sku = 'C'`)).toEqual([{ n: 0 }]);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });

    const tampered = async (change: string, undo: string): Promise<string[]> => {
      await pool.query(change);
      try {
        return (await ledger.verify()).drift.map((d) => `${d.sku}:${d.invariant}`);
      } finally {
        await pool.query(undo);
      }
    };
    expect(await tampered(`UPDATE ${s}.checkpoints SET on_hand = on_hand + 1 WHERE sku = 'C'`, `UPDATE ${s}.checkpoints SET on_hand = on_hand - 1 WHERE sku = 'C'`))
      .toEqual(['C:fold']);
    expect(await tampered(`UPDATE ${s}.checkpoints SET version = version - 1 WHERE sku = 'A'`, `UPDATE ${s}.checkpoints SET version = version + 1 WHERE sku = 'A'`))
      .toEqual(['A:fold']);
    expect(await tampered(`UPDATE ${s}.checkpoint_holds SET qty = 3`, `UPDATE ${s}.checkpoint_holds SET qty = 2`)).toEqual(['A:holdEntries']);
    expect(await tampered(`UPDATE ${s}.checkpoint_buyers SET qty = 4`, `UPDATE ${s}.checkpoint_buyers SET qty = 5`)).toEqual(['A:buyerTotals']);
    expect(await tampered(`INSERT INTO ${s}.checkpoint_buyers VALUES ('C', 'eve', 1)`, `DELETE FROM ${s}.checkpoint_buyers WHERE buyer = 'eve'`))
      .toEqual(['C:buyerTotals']);
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 2, drift: [] });
  });

  it('the feed starts after the horizon: a cursor below it throws FeedCompactedError; a ledger compacted to its last entry numbers on from the horizon', async () => {
    const { ledger, clock } = ledgerOn(fresh(), { groupCommit: false });
    for (let i = 1; i <= 4; i += 1) await ledger.restockOrThrow({ requestId: `r${i}`, sku: 'A', qty: 1 });
    clock.now = T0 + HOUR;
    await ledger.restockOrThrow({ requestId: 'r5', sku: 'A', qty: 1 });
    expect(await ledger.compact({ windowMs: HOUR / 2 })).toMatchObject({ compactedThrough: 4 });
    const error = await ledger.entries({ after: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FeedCompactedError);
    expect(error).toMatchObject({ code: 'FEED_COMPACTED', after: 0, compactedThrough: 4 });
    await expect(ledger.entries({ after: 3 })).rejects.toBeInstanceOf(FeedCompactedError);
    expect((await ledger.entries({ after: 4 })).entries.map((e) => e.seq)).toEqual([5]);
    expect(await ledger.entries()).toMatchObject({ entries: [{ seq: 5, requestId: 'r5' }], next: 5 });
    expect(await ledger.entries({ sku: 'A' })).toMatchObject({ entries: [{ seq: 5 }] });

    // Everything goes: no entry is left, and the next ones still number after the horizon,
    // alone (numbered in its own transaction) and several at once (numbered after commit).
    clock.now = T0 + 3 * HOUR;
    expect(await ledger.compact({ windowMs: HOUR / 2 })).toMatchObject({ compactedThrough: 5 });
    expect(await ledger.entries()).toEqual({ entries: [], next: null });
    expect(await ledger.restockOrThrow({ requestId: 'r6', sku: 'A', qty: 1 })).toMatchObject({ entries: [{ seq: 6 }], levels: [{ onHand: 6, version: 6 }] });
    const many = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => ledger.restockOrThrow({ requestId: `m${i}`, sku: `M${i}`, qty: 1 })));
    expect(many.flatMap((r) => r.entries.map((e) => e.seq)).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([7, 8, 9, 10, 11, 12]);
    // A follower without a cursor starts after the horizon too.
    const events: string[] = [];
    for await (const event of ledger.stockEvents({ follow: false })) events.push(`${event.type}@${event.cursor}`);
    expect(events).toEqual([7, 8, 9, 10, 11, 12].map((seq) => `replenished@${seq}`));
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('entries of an app transaction are never compacted before they are numbered, and are numbered after the horizon', async () => {
    const schema = fresh();
    const { ledger, clock } = ledgerOn(schema);
    for (let i = 1; i <= 3; i += 1) await ledger.restockOrThrow({ requestId: `r${i}`, sku: 'A', qty: 1 });
    const app = await pool.connect();
    try {
      await app.query('BEGIN');
      // As old as the rest, in a SKU of its own: only its missing seq keeps it.
      const joined = await ledger.restockOrThrow({ requestId: 'j', sku: 'J', qty: 7 }, { transaction: app });
      expect(joined.entries[0]?.seq).toBeNull();
      clock.now = T0 + HOUR;
      // Open: not visible to the step, which does not wait for it (J's row is not one it needs).
      expect(await ledger.compact({ windowMs: 0 })).toMatchObject({ entries: 3, compactedThrough: 3 });
      await app.query('COMMIT');
    } finally {
      app.release();
    }
    // Committed, not yet numbered: still not walked.
    expect(await rowsOf(`SELECT count(*)::int AS n FROM ${schema}.entries WHERE seq IS NULL`)).toEqual([{ n: 1 }]);
    expect(await ledger.store.compact?.({ before: clock.now, limit: 1000, now: clock.now })).toMatchObject({ entries: 0, compactedThrough: 3 });
    expect(await ledger.request('j')).toMatchObject({ entries: [{ seq: 4, sku: 'J', onHandDelta: 7 }] });
    expect(await ledger.entries()).toMatchObject({ entries: [{ seq: 4, requestId: 'j' }] });
    expect(await ledger.compact({ windowMs: 0 })).toMatchObject({ requests: 1, entries: 1, compactedThrough: 4 });
    expect(await ledger.stocks(['A', 'J'])).toMatchObject([{ onHand: 3, version: 3 }, { onHand: 7, version: 1 }]);
    expect(await ledger.verify()).toMatchObject({ ok: true, skusChecked: 2 });
  });

  it('a step waits for the rows it needs only as long as the lock timeout, and a reverse that waited behind it reads again and finds nothing to orphan', async () => {
    const schema = fresh();
    const { ledger, clock } = ledgerOn(schema, { groupCommit: false, lockTimeoutMs: 300 }, { retry: false });
    const writer = ledgerOn(schema, { groupCommit: false }, {}, clock).ledger;
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 10 });
    await ledger.deductOrThrow({ requestId: 'd', sku: 'A', qty: 2 });
    clock.now = T0 + HOUR;
    const app = await pool.connect();
    try {
      await app.query('BEGIN');
      await ledger.restockOrThrow({ requestId: 'hold-A', sku: 'A', qty: 1 }, { transaction: app });
      // A's row is held by the app: the step gives up after its lock timeout.
      expect(await codeOf(() => ledger.compact({ windowMs: HOUR / 2 }))).toBe('STORE_UNAVAILABLE');
    } finally {
      await app.query('ROLLBACK');
      app.release();
    }
    const patient = ledgerOn(schema, { groupCommit: false }, {}, clock).ledger;
    const app2 = await pool.connect();
    let compacting: Promise<unknown> | undefined;
    let reversing: ReturnType<StockLedger['reverse']> | undefined;
    try {
      await app2.query('BEGIN');
      // A's row locked, not changed: only the step's own rewrite of it can tell the reverse its load went stale.
      await app2.query(`SELECT sku FROM ${schema}.levels WHERE sku = 'A' FOR UPDATE`);
      // The step queues for A first, then a reverse of d, whose load reads d before the step removes it.
      compacting = patient.compact({ windowMs: HOUR / 2 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      reversing = writer.reverse({ requestId: 'v', of: 'd', lines: [{ sku: 'A', qty: 1 }] });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await app2.query('COMMIT');
    } finally {
      app2.release();
    }
    expect(await compacting).toMatchObject({ requests: 2, entries: 2 });
    expect(await reversing).toMatchObject({ ok: false, code: 'REQUEST_NOT_FOUND' });
    expect(await rowsOf(`SELECT count(*)::int AS n FROM ${schema}.reversals`)).toEqual([{ n: 0 }]);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 8 });
    expect(await ledger.verify()).toMatchObject({ ok: true });
  });

  it('levels() pages over every SKU with a level in code-point order, as of now, and filters availableAtMost exactly', async () => {
    const { ledger, clock } = ledgerOn(fresh());
    const skus = ['b', 'B', 'a', 'x', 'x\u0000y', 'é', '😀', 'z\u0001'];
    for (const [i, sku] of skus.entries()) await ledger.restockOrThrow({ requestId: `r-${i}`, sku, qty: i + 1 });
    // An anyOf line names a SKU it does not take: its level row is made, never written, and not listed.
    await ledger.deductOrThrow({ requestId: 'any', lines: [{ anyOf: ['a', 'ghost'], qty: 1 }] });
    await ledger.setPolicyOrThrow({ requestId: 'p', sku: 'x', backorderMax: 2 });
    await ledger.reserveOrThrow({ requestId: 'h', lines: [{ sku: 'é', qty: 5 }], ttlMs: 60_000 });
    const order = [...skus].sort(compareCodePoints);
    const all: string[] = [];
    let page = await ledger.levels({ limit: 3 });
    for (;;) {
      expect(page.levels.length).toBeLessThanOrEqual(3);
      all.push(...page.levels.map((l) => l.sku));
      if (page.next === null) break;
      page = await ledger.levels({ limit: 3, after: page.next });
    }
    expect(all).toEqual(order);
    const everything = (await ledger.levels({ limit: 1000 })).levels;
    expect(everything).toEqual(await ledger.stocks(order));
    // b 1, B 2, a 3 - 1 taken, x 4 + 2 backorder, é 6 - 5 held.
    const low = async (): Promise<Array<[string, number]>> => (await ledger.levels({ availableAtMost: 2, limit: 1000 })).levels.map((l) => [l.sku, l.available]);
    expect(await low()).toEqual([['B', 2], ['a', 2], ['b', 1], ['é', 1]]);
    expect(await ledger.levels({ availableAtMost: 1, limit: 2 })).toEqual({ levels: [], next: 'a' });
    expect(await ledger.levels({ availableAtMost: 1, limit: 2, after: 'a' })).toEqual({ levels: [{ sku: 'b', onHand: 1, reserved: 0, available: 1, version: 1 }], next: 'x' });
    // The hold falls due: é is as stocks() reports it (5 more available, one version more), and leaves the low list.
    clock.now = T0 + 60_000;
    expect(await low()).toEqual([['B', 2], ['a', 2], ['b', 1]]);
    expect((await ledger.levels({ after: 'z\u0001', limit: 1 })).levels).toEqual([{ sku: 'é', onHand: 6, reserved: 0, available: 6, version: 3 }]);
    expect(await ledger.levels({ after: '😀', limit: 5 })).toEqual({ levels: [], next: null });
    expect(await ledger.levels({ availableAtMost: -1 })).toEqual({ levels: [], next: null });
  });

  it('a ledger at schema version 7 upgrades: it compacts, verifies, replays inside the window, and its feed goes on after the horizon', async () => {
    const schema = fresh();
    expect(await migrateWith(connectorOf(pool), schema, 7)).toBe(7);
    // What version 7 held after a restock, a hold for a buyer, its commit, and (an hour later) a deduct, as its flush wrote them.
    const fingerprints = {
      r: toRestock({ requestId: 'r', sku: 'A', qty: 10 }, T0).fingerprint,
      h: toReserve({ requestId: 'h', lines: [{ sku: 'A', qty: 2 }], ttlMs: 60_000, buyer: 'ann' }, T0).fingerprint,
      d: toDeduct({ requestId: 'd', sku: 'A', qty: 1 }, T0 + HOUR).fingerprint,
    };
    await pool.query(`
      INSERT INTO ${schema}.levels (sku, on_hand, reserved, version) VALUES ('A', 7, 0, 4);
      INSERT INTO ${schema}.entries (op, pos, seq, request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, version_after, at, meta,
        backorder_max_after, low_stock_at_after, buyer_max_after, buyer, reservation_id) VALUES
        (1, 0, 1, 'r', 'restock', 'A', 10, 0, 10, 0, 1, ${T0}, NULL, 0, NULL, NULL, NULL, NULL),
        (2, 0, 2, 'h', 'reserve', 'A', 0, 2, 10, 2, 2, ${T0}, NULL, 0, NULL, NULL, 'ann', NULL),
        (3, 0, 3, 'h', 'commit', 'A', -2, -2, 8, 0, 3, ${T0}, NULL, 0, NULL, NULL, 'ann', NULL),
        (4, 0, 4, 'd', 'deduct', 'A', -1, 0, 7, 0, 4, ${T0 + HOUR}, NULL, 0, NULL, NULL, NULL, NULL);
      INSERT INTO ${schema}.requests (request_id, kind, fingerprint, at) VALUES
        ('r', 'restock', '${fingerprints.r}', ${T0}), ('h', 'reserve', '${fingerprints.h}', ${T0}), ('d', 'deduct', '${fingerprints.d}', ${T0 + HOUR});
      INSERT INTO ${schema}.reservations (id, state, lines, expires_at, created_at, committed, buyer)
        VALUES ('h', 'committed', '[{"sku":"A","qty":2}]', ${T0 + 60_000}, ${T0}, '[{"sku":"A","qty":2}]', 'ann');
      INSERT INTO ${schema}.buyer_totals (sku, buyer, qty) VALUES ('A', 'ann', 2);
      SELECT setval('${schema}.ops', 4);`);
    expect(await rowsOf(`SELECT to_regclass('${schema}.checkpoints') IS NULL AS missing`)).toEqual([{ missing: true }]);

    const { ledger, clock } = ledgerOn(schema);
    clock.now = T0 + HOUR;
    expect(await ledger.deduct({ requestId: 'd', sku: 'A', qty: 1 })).toMatchObject({ replayed: true, entries: [{ seq: 4, onHandDelta: -1 }], levels: [{ onHand: 7, version: 4 }] });
    expect(await schemaVersion({ client: pool, schema })).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(8);
    expect((await ledger.entries()).entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(await ledger.compact({ windowMs: HOUR / 2 })).toMatchObject({ requests: 2, reservations: 1, entries: 3, compactedThrough: 3 });
    expect(await ledger.request('d')).toMatchObject({ entries: [{ seq: 4 }] });
    expect(await ledger.reservation('h')).toBeNull();
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: 1, drift: [] });
    expect(await ledger.buyerTotals({ buyer: 'ann', skus: ['A'] })).toEqual([{ sku: 'A', buyer: 'ann', taken: 2 }]);
    expect(await ledger.restockOrThrow({ requestId: 'r2', sku: 'A', qty: 1 })).toMatchObject({ entries: [{ seq: 5 }], levels: [{ onHand: 8, version: 5 }] });
  });

  it('compaction under concurrent writes from several connections, with a moving clock, loses nothing inside the window', async () => {
    const seed = Number(process.env['STOCK_LEDGER_SEED'] ?? Date.now() % 1_000_000);
    console.log(`compaction under writes: seed ${seed} (replay with STOCK_LEDGER_SEED=${seed})`);
    const schema = fresh();
    const clock = { now: T0 };
    const windowMs = 10_000;
    const writers = [true, false, true, false].map((groupCommit) => new StockLedger({
      store: new PostgresStore({ client: pool, schema, groupCommit }), clock: () => clock.now,
    }));
    const compactor = new StockLedger({ store: new PostgresStore({ client: pool, schema }), clock: () => clock.now });
    const skus = ['s0', 's1', 's2', 's3', 's4', 's5'];
    for (const sku of skus) await compactor.restockOrThrow({ requestId: `seed-${sku}`, sku, qty: 100_000 });

    // What each operation reported: its request id (null for a commit or release) and outcome.
    const applied: Array<{ id: string | null; outcome: Applied }> = [];
    let writing = true;
    // Ten seconds of ledger time per second: the window is about one second of the run.
    const ticker = setInterval(() => (clock.now += 50), 5);
    const work = writers.map(async (ledger, w) => {
      const random = seededRandom(seed + w);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
      const linesOf = (): Array<{ sku: string; qty: number }> => {
        const first = pick(skus);
        const second = pick(skus);
        const qty = 1 + Math.floor(random() * 3);
        return first === second || random() < 0.6 ? [{ sku: first, qty }] : [{ sku: first, qty }, { sku: second, qty: 1 }];
      };
      for (let i = 0; i < 150; i += 1) {
        const id = `w${w}-${i}`;
        const roll = i === 0 ? 0 : random();
        // Settle or undo something recent: its record may be going at that very moment.
        const earlier = `w${w}-${Math.max(0, i - 1 - Math.floor(random() * 40))}`;
        let result: Applied | { ok: false };
        let own = true;
        if (roll < 0.3) result = await ledger.deduct({ requestId: id, lines: linesOf(), buyer: pick(['ann', 'bob']) });
        else if (roll < 0.6) result = await ledger.reserve({ requestId: id, lines: linesOf(), ttlMs: pick([1000, 4000, 9000]) });
        else if (roll < 0.7) result = await ledger.restock({ requestId: id, lines: linesOf() });
        else if (roll < 0.8) result = await ledger.reverse({ requestId: id, of: earlier });
        else {
          own = false;
          result = roll < 0.9 ? await ledger.commit({ reservationId: earlier }) : await ledger.release({ reservationId: earlier });
        }
        if (result.ok) applied.push({ id: own ? id : null, outcome: result });
      }
    });
    let steps = 0;
    let lastBefore = 0;
    const compacting = (async () => {
      while (writing) {
        const report = await compactor.compact({ windowMs });
        steps += report.steps;
        lastBefore = report.before;
        expect((await compactor.verify()).drift).toEqual([]);
      }
    })();
    try {
      await Promise.all(work);
    } finally {
      writing = false;
      clearInterval(ticker);
    }
    await compacting;
    const final = await compactor.compact({ windowMs });
    lastBefore = final.before;
    console.log(`compaction under writes: ${steps} steps while writing, horizon ${final.compactedThrough}, ${applied.length} operations`);
    expect(final.compactedThrough).toBeGreaterThan(0);

    // The kept feed is gap-free from the horizon on, and every entry inside the window is in it, as its operation reported it.
    const feed = await keptEntries(compactor);
    expect(feed.map((e) => e.seq)).toEqual(feed.map((_, i) => final.compactedThrough + 1 + i));
    const bySeq = new Map(feed.map((e) => [e.seq, e]));
    let inside = 0;
    for (const { id, outcome } of applied) {
      if (outcome.replayed || !outcome.entries.every((e) => e.at >= lastBefore)) continue;
      inside += 1;
      for (const entry of outcome.entries) expect(bySeq.get(entry.seq as number), id ?? 'a commit or release').toEqual(entry);
      if (id !== null) expect(await compactor.request(id), id).toMatchObject({ requestId: id, entries: outcome.entries });
    }
    expect(inside).toBeGreaterThan(0);
    // No tally outlives its original; every live hold's reservation is recorded.
    expect(await rowsOf(`SELECT count(*)::int AS n FROM ${schema}.reversals t WHERE NOT EXISTS (SELECT 1 FROM ${schema}.requests r WHERE r.request_id = t.of_request)`))
      .toEqual([{ n: 0 }]);
    expect(await rowsOf(`SELECT count(*)::int AS n FROM ${schema}.holds h WHERE NOT EXISTS (SELECT 1 FROM ${schema}.reservations v WHERE v.id = h.reservation_id)`))
      .toEqual([{ n: 0 }]);
    expect(await compactor.verify()).toMatchObject({ ok: true, drift: [] });
    await Promise.all([...writers, compactor].map((l) => l.close()));
  });
});
