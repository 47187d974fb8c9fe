/**
 * The flash-sale service (examples/flash-sale-service): every status of the Idempotency-Key rules
 * and of the carts through Fastify's inject, on the embedded default (SQLite, a temporary file);
 * then over loopback: the event stream resumed with Last-Event-ID, a load run with duplicated,
 * retried and conflicting keys whose checks must pass, and a graceful close with requests in
 * flight.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { StockLedger } from 'stock-ledger';
import { SqliteStore } from 'stock-ledger/sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runLoad } from '../examples/flash-sale-service/load.js';
import { buildService } from '../examples/flash-sale-service/service.js';

let dir: string;
let ledger: StockLedger;
let app: FastifyInstance;
let clock: { now: number };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stock-ledger-service-'));
  clock = { now: 1_700_000_000_000 };
  ledger = new StockLedger({ store: new SqliteStore({ path: join(dir, 'stock.db') }), clock: () => clock.now });
  await ledger.restockOrThrow({ requestId: 'po-1', lines: [{ sku: 'SNEAKER-42', qty: 5 }, { sku: 'CAP', qty: 2 }] });
  app = buildService({ ledger, pollMs: 20 });
});

afterEach(async () => {
  await app.close();
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

const order = (key: string | null, body: unknown) => app.inject({
  method: 'POST', url: '/orders', payload: body as Record<string, unknown>, headers: key === null ? {} : { 'idempotency-key': key },
});

describe('POST /orders and the Idempotency-Key header', () => {
  it('201 with the order; the same key again: the same bytes, marked as a replay, and the stock moved once', async () => {
    const first = await order('k-1', { lines: [{ sku: 'SNEAKER-42', qty: 2 }], note: 'gift' });
    expect(first.statusCode).toBe(201);
    expect(first.headers['content-type']).toMatch(/^application\/json/);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(first.json()).toEqual({ orderId: 'k-1', status: 'confirmed', lines: [{ sku: 'SNEAKER-42', qty: 2, seq: 3 }], stock: [{ sku: 'SNEAKER-42', available: 3 }] });
    const again = await order('k-1', { note: 'gift', lines: [{ qty: 2, sku: 'SNEAKER-42' }] });
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toBe(first.body);
    expect(await ledger.stock('SNEAKER-42')).toMatchObject({ onHand: 3 });
  });

  it('400 without the header, 400 for a body the schema refuses: problem+json, nothing written', async () => {
    const missing = await order(null, { lines: [{ sku: 'CAP', qty: 1 }] });
    expect(missing.statusCode).toBe(400);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(missing.json()).toMatchObject({ status: 400, code: 'MISSING_IDEMPOTENCY_KEY', type: 'urn:stock-ledger:problem:missing-idempotency-key' });
    for (const body of [{}, { lines: [] }, { lines: [{ sku: 'CAP', qty: 0 }] }, { lines: [{ sku: 'CAP', qty: 1.5 }] }, { lines: [{ qty: 1 }] }]) {
      const bad = await order('k-bad', body);
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
      expect(bad.json()).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    }
    expect(await ledger.request('k-bad')).toBeNull();
    expect(await ledger.stock('CAP')).toMatchObject({ onHand: 2 });
  });

  it('422 when the key comes back with another body (any field), and the first order stands', async () => {
    expect((await order('k-2', { lines: [{ sku: 'CAP', qty: 1 }], note: 'a' })).statusCode).toBe(201);
    for (const body of [{ lines: [{ sku: 'CAP', qty: 2 }], note: 'a' }, { lines: [{ sku: 'CAP', qty: 1 }], note: 'b' }]) {
      const other = await order('k-2', body);
      expect(other.statusCode).toBe(422);
      expect(other.json()).toMatchObject({ status: 422, code: 'IDEMPOTENCY_CONFLICT' });
    }
    expect(await ledger.stock('CAP')).toMatchObject({ onHand: 1 });
    expect(app.counters).toMatchObject({ applied: 1, conflicts: 2 });
  });

  it('409 when sold out, with the ledger\'s code and what is available; the key is kept for nothing and may succeed later', async () => {
    const short = await order('k-3', { lines: [{ sku: 'CAP', qty: 3 }] });
    expect(short.statusCode).toBe(409);
    expect(short.json()).toMatchObject({ status: 409, code: 'INSUFFICIENT_STOCK', sku: 'CAP', requested: 3, available: 2 });
    await ledger.restockOrThrow({ requestId: 'po-2', sku: 'CAP', qty: 1 });
    expect((await order('k-3', { lines: [{ sku: 'CAP', qty: 3 }] })).statusCode).toBe(201);
  });

  it('the same key many times at once: one sale, every other answer a replay of the same bytes', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, () => order('k-4', { lines: [{ sku: 'SNEAKER-42', qty: 1 }] })));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(12).fill(201));
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === 'true')).toHaveLength(11);
    expect(new Set(answers.map((a) => a.body)).size).toBe(1);
    expect(await ledger.stock('SNEAKER-42')).toMatchObject({ onHand: 4 });
  });
});

describe('carts, stock and the live page', () => {
  it('hold (201, a replay with the same bytes), commit (200), then commit again is a replay; release of a bought cart is 409; unknown cart 404', async () => {
    const hold = await app.inject({ method: 'POST', url: '/carts/c-1/hold', payload: { lines: [{ sku: 'CAP', qty: 2 }], ttlMs: 60_000 } });
    expect(hold.statusCode).toBe(201);
    expect(hold.json()).toEqual({ cartId: 'c-1', status: 'held', expiresAt: clock.now + 60_000, lines: [{ sku: 'CAP', qty: 2 }] });
    const holdAgain = await app.inject({ method: 'POST', url: '/carts/c-1/hold', payload: { lines: [{ sku: 'CAP', qty: 2 }], ttlMs: 60_000 } });
    expect([holdAgain.statusCode, holdAgain.headers['idempotent-replayed'], holdAgain.body]).toEqual([201, 'true', hold.body]);
    expect(await ledger.stock('CAP')).toMatchObject({ onHand: 2, reserved: 2, available: 0 });
    expect((await order('k-5', { lines: [{ sku: 'CAP', qty: 1 }] })).json()).toMatchObject({ code: 'INSUFFICIENT_STOCK', available: 0 });
    const commit = await app.inject({ method: 'POST', url: '/carts/c-1/commit' });
    expect([commit.statusCode, commit.json()]).toEqual([200, { cartId: 'c-1', status: 'committed', lines: [{ sku: 'CAP', qty: 2 }] }]);
    const commitAgain = await app.inject({ method: 'POST', url: '/carts/c-1/commit' });
    expect([commitAgain.statusCode, commitAgain.headers['idempotent-replayed'], commitAgain.body]).toEqual([200, 'true', commit.body]);
    const release = await app.inject({ method: 'POST', url: '/carts/c-1/release' });
    expect([release.statusCode, release.json().code]).toEqual([409, 'RESERVATION_COMMITTED']);
    const unknown = await app.inject({ method: 'POST', url: '/carts/nope/commit' });
    expect([unknown.statusCode, unknown.json().code]).toEqual([404, 'RESERVATION_NOT_FOUND']);
    expect(await ledger.stock('CAP')).toMatchObject({ onHand: 0, reserved: 0 });
  });

  it('release gives the units back (200); a hold past its TTL cannot be bought (409 RESERVATION_EXPIRED)', async () => {
    await app.inject({ method: 'POST', url: '/carts/c-2/hold', payload: { lines: [{ sku: 'SNEAKER-42', qty: 3 }] } });
    const release = await app.inject({ method: 'POST', url: '/carts/c-2/release' });
    expect([release.statusCode, release.json()]).toEqual([200, { cartId: 'c-2', status: 'released', lines: [{ sku: 'SNEAKER-42', qty: 3 }] }]);
    await app.inject({ method: 'POST', url: '/carts/c-3/hold', payload: { lines: [{ sku: 'SNEAKER-42', qty: 1 }], ttlMs: 1000 } });
    clock.now += 1000;
    const late = await app.inject({ method: 'POST', url: '/carts/c-3/commit' });
    expect([late.statusCode, late.json().code]).toEqual([409, 'RESERVATION_EXPIRED']);
    expect(await ledger.stock('SNEAKER-42')).toMatchObject({ onHand: 5, reserved: 0 });
  });

  it('GET /stock/:sku, GET /stock?below=n, and the live page with its script', async () => {
    await order('k-6', { lines: [{ sku: 'CAP', qty: 2 }] });
    expect((await app.inject('/stock/CAP')).json()).toEqual({ sku: 'CAP', onHand: 0, reserved: 0, available: 0, version: 2 });
    expect((await app.inject('/stock/NEW')).json()).toMatchObject({ sku: 'NEW', onHand: 0, version: 0 });
    expect((await app.inject('/stock?below=1')).json().levels.map((l: { sku: string }) => l.sku)).toEqual(['CAP']);
    expect((await app.inject('/stock?below=6')).json().levels.map((l: { sku: string }) => l.sku)).toEqual(['CAP', 'SNEAKER-42']);
    expect((await app.inject('/stock?below=x')).statusCode).toBe(400);
    const page = await app.inject('/');
    expect([page.statusCode, page.headers['content-type']]).toEqual([200, 'text/html; charset=utf-8']);
    expect(page.body).toContain('<script src="/app.js"');
    expect((await app.inject('/app.js')).body).toContain("new EventSource('/events')");
  });
});

describe('over loopback', () => {
  /** Reads server-sent events from a response until `enough` says stop (bounded by the test's timeout). */
  async function readEvents(response: Response, enough: (events: Array<{ id?: string; event: string; data: string }>) => boolean) {
    const events: Array<{ id?: string; event: string; data: string }> = [];
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    while (!enough(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
        events.push({ ...(fields['id'] === undefined ? {} : { id: fields['id'] }), event: fields['event'] ?? 'message', data: fields['data'] ?? '' });
      }
    }
    await reader.cancel();
    return events;
  }

  it('GET /events: entries and stock events, each id holding both positions; a reconnect with the last id resumes with no gap and no repeat', async () => {
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    await order('k-7', { lines: [{ sku: 'CAP', qty: 1 }, { sku: 'SNEAKER-42', qty: 1 }] });
    type Sse = { id?: string; event: string; data: string };
    const kinds = (events: Sse[], kind: string): Sse[] => events.filter((e) => e.event === kind);
    const all = await readEvents(await fetch(`${base}/events`), (events) => kinds(events, 'entry').length >= 4 && kinds(events, 'stock').length >= 2);
    expect(kinds(all, 'entry').map((e) => JSON.parse(e.data).requestId)).toEqual(['po-1', 'po-1', 'k-7', 'k-7']);
    // The restock took both SKUs from nothing: one replenished event each, caused by entries 1 and 2.
    expect(kinds(all, 'stock').map((e) => JSON.parse(e.data)).map((e) => [e.type, e.sku, e.seq])).toEqual([['replenished', 'CAP', 1], ['replenished', 'SNEAKER-42', 2]]);
    expect(all.find((e) => e.event === 'stats')?.data).toBe(JSON.stringify({ applied: 1, replayed: 0, rejected: 0, conflicts: 0 }));
    // Each id is "<last entry seq sent>/<last stock cursor sent>", as they stood when it was sent.
    for (const e of kinds(all, 'entry')) expect(e.id).toMatch(new RegExp(`^${JSON.parse(e.data).seq}/(-|\\d+(\\.\\d+)?)$`));
    const last = all.filter((e) => e.id !== undefined).at(-1)?.id as string;
    expect(last).toBe('4/2');

    // Reconnect with the last id; the next sale empties CAP: its entry and a depleted event, nothing again.
    const resumed = await fetch(`${base}/events`, { headers: { 'last-event-id': last } });
    setTimeout(() => void order('k-8', { lines: [{ sku: 'CAP', qty: 1 }] }), 50);
    const after = await readEvents(resumed, (events) => kinds(events, 'entry').length >= 1 && kinds(events, 'stock').length >= 1);
    expect(kinds(after, 'entry').map((e) => [JSON.parse(e.data).seq, JSON.parse(e.data).requestId])).toEqual([[5, 'k-8']]);
    expect(kinds(after, 'stock').map((e) => JSON.parse(e.data)).map((e) => [e.type, e.sku, e.seq, e.available])).toEqual([['depleted', 'CAP', 5, 0]]);
    // An old client's plain seq resumes both after that entry.
    const fromSeq = await readEvents(await fetch(`${base}/events`, { headers: { 'last-event-id': '1' } }),
      (events) => kinds(events, 'entry').length >= 4 && kinds(events, 'stock').length >= 2);
    expect(kinds(fromSeq, 'entry').map((e) => JSON.parse(e.data).seq)).toEqual([2, 3, 4, 5]);
    expect(kinds(fromSeq, 'stock').map((e) => JSON.parse(e.data).seq)).toEqual([2, 5]);
  });

  it('the load script: thousands of requests with twins, retries and reused keys; never oversold, no key charged twice', async () => {
    await ledger.restockOrThrow({ requestId: 'po-load', lines: [{ sku: 'SNEAKER-42', qty: 195 }, { sku: 'CAP', qty: 98 }, { sku: 'HOODIE-L', qty: 60 }] });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const summary = await runLoad({ url: base, buyers: 1500, concurrency: 48, seed: 7, twiceRate: 0.15, retryRate: 0.15, otherBodyRate: 0.05 });
    expect(summary.failures, JSON.stringify(summary)).toEqual([]);
    expect(summary.replayed).toBeGreaterThan(20);
    expect(summary.soldOut).toBeGreaterThan(100);
    expect(summary.unitsSold).toBeGreaterThan(200);
    expect(summary.unitsSold).toBeLessThanOrEqual(360);
    const report = await ledger.verify();
    expect(report.ok).toBe(true);
  });

  it('a graceful close lets requests in flight finish and ends open event streams', async () => {
    // Requests are held 100 ms before their handler, so the close starts while they are in flight.
    let arrived = 0;
    let allIn: () => void = () => {};
    const inside = new Promise<void>((resolve) => (allIn = resolve));
    app.addHook('preHandler', async (request) => {
      if (request.url !== '/orders') return;
      arrived += 1;
      if (arrived === 8) allIn();
      await new Promise((resolve) => setTimeout(resolve, 100));
    });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const stream = await fetch(`${base}/events`);
    const send = (i: number) => fetch(`${base}/orders`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `close-${i}` }, body: JSON.stringify({ lines: [{ sku: 'SNEAKER-42', qty: 1 }] }),
    }).then((r) => r.status);
    const inFlight = Array.from({ length: 8 }, (_, i) => send(i));
    await inside;
    await app.close();
    const statuses = await Promise.all(inFlight);
    // Five units for eight orders held in flight: each was answered, none lost its answer.
    expect(statuses.filter((s) => s === 201)).toHaveLength(5);
    expect(statuses.filter((s) => s === 409)).toHaveLength(3);
    expect(await ledger.stock('SNEAKER-42')).toMatchObject({ onHand: 0 });
    // The stream was ended by the close, after the entries it had sent.
    expect(await stream.text()).toContain('event: entry');
    await expect(send(99)).rejects.toThrow();
  });
});
