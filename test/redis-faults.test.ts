/**
 * The Redis store under faults, against real redis-server processes spawned by the harness
 * (never the machine's Redis, never a mock), each case on its own ledger prefix:
 *
 * - lost replies (through the harness's proxy): the script ran, its reply never came back; the
 *   caller's retry with the same request id is a replay (ioredis and node-redis), and the
 *   ledger's own retry ends in exactly one application;
 * - `CLIENT KILL TYPE normal` while hundreds of operations are in flight (ioredis reconnects
 *   and re-sends them);
 * - `SCRIPT FLUSH` in the middle of a run (NOSCRIPT is handled inside the store);
 * - SIGKILL of the server and a restart with `appendonly yes`, `appendfsync always`: every
 *   acknowledged operation survives, nothing is applied twice.
 *
 * After each fault the whole ledger is read back and checked as test/sqlite-faults.test.ts
 * checks SQLite: seqs without gaps, one entry per (requestId, kind, SKU), each SKU's chain of
 * entries never below zero and folding to its level, every request record holding exactly its
 * entries (all or none), no oversell, verify() ok.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { createClient } from 'redis';
import { StockLedger, StoreUnavailableError, isStockLedgerError, type Applied, type DeductInput, type Entry, type OperationResult, type StockLedgerOptions } from 'stock-ledger';
import { RedisStore, type RedisClientLike } from 'stock-ledger/redis';
import { checkInvariants, readAllEntries, type ExpectedOperation } from 'stock-ledger/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRedis, infoField, rawCommand, startRedis, waitUntil, type RedisServer } from './support/redis-server.js';
import { startProxy, type TcpProxy } from './support/tcp-proxy.js';
import { expectEntriesOnce } from './support/entry-checks.js';

// ---------------------------------------------------------------------------------------------
// Clients and ledgers

/** A fresh prefix per ledger, so no case ever sees another's keys. */
const uniquePrefix = (name: string): string => `faults-${name}-${randomUUID().slice(0, 8)}`;

/** Clients opened by this file, closed in afterAll whatever happened. */
const openClients: Array<{ close: () => Promise<void> }> = [];

/** An ioredis client; its error events are expected here (killed connections), not unhandled. */
function ioredis(options: RedisOptions): Redis {
  const client = new Redis({ lazyConnect: false, ...options });
  client.on('error', () => {});
  openClients.push({ close: async () => client.disconnect() });
  return client;
}

type NodeRedis = ReturnType<typeof createClient>;

/**
 * A connected node-redis v5 client. node-redis 5 has no timeout for a command already written
 * (`commandOptions.timeout` only bounds the wait to be written), so a lost reply is detected by
 * `socket.socketTimeout`: no byte for that long destroys the socket, which rejects the commands
 * waiting for a reply; the reconnect strategy then reconnects (an idle client reconnects too,
 * which is harmless).
 */
async function nodeRedis(endpoint: { host: string; port: number }, socketTimeoutMs?: number): Promise<NodeRedis> {
  const client = createClient({
    socket: {
      host: endpoint.host,
      port: endpoint.port,
      reconnectStrategy: (retries: number) => Math.min(20 + retries * 20, 200),
      ...(socketTimeoutMs === undefined ? {} : { socketTimeout: socketTimeoutMs }),
    },
  });
  client.on('error', () => {});
  openClients.push({
    close: async () => {
      if (client.isOpen) client.destroy();
    },
  });
  await client.connect();
  return client;
}

/** Counts the client's `ready` events (the first connect and every reconnect). */
function readyCounter(client: { on(event: 'ready', listener: () => void): unknown }): () => number {
  let count = 0;
  client.on('ready', () => (count += 1));
  return () => count;
}

/**
 * A ledger on the client. Batched unless `batch: false`: operations in flight together then meet a
 * fault inside one batch call, the harder case; one call per operation (the store's default) is
 * run beside it where many are in flight.
 */
function ledgerOn(client: RedisClientLike, name: string, options: Omit<StockLedgerOptions, 'store'> & { functions?: boolean; batch?: boolean } = {}): StockLedger {
  const { functions, batch = true, ...ledger } = options;
  return new StockLedger({ store: new RedisStore({ client: client, prefix: uniquePrefix(name), batch, ...(functions === undefined ? {} : { functions }) }), ...ledger });
}

/**
 * Loads the deduct, reserve and commit scripts into the server's cache by calls that are
 * rejected and so record nothing. Without it, the reply a lost-reply case drops could be the
 * NOSCRIPT of a first EVALSHA: the script would not have run at all.
 */
async function warmScripts(ledger: StockLedger): Promise<void> {
  expect(await ledger.deduct({ requestId: 'warm-deduct', sku: 'warm', qty: 1 })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
  expect(await ledger.reserve({ requestId: 'warm-reserve', lines: [{ sku: 'warm', qty: 1 }], ttlMs: 1_000 })).toMatchObject({ ok: false });
  expect(await ledger.commit({ reservationId: 'warm-reserve' })).toMatchObject({ ok: false, code: 'RESERVATION_NOT_FOUND' });
  expect(await ledger.request('warm-deduct')).toBeNull();
  // Two at once go out as one call of the batch script (these ledgers batch): load it too.
  const pair = await Promise.all(['warm-1', 'warm-2'].map((requestId) => ledger.deduct({ requestId, sku: 'warm', qty: 1 })));
  for (const r of pair) expect(r).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
}

afterAll(async () => {
  for (const c of openClients.splice(0)) await c.close();
});

// ---------------------------------------------------------------------------------------------
// Reading a whole ledger back

/** Entries whose requestId is `id`. */
async function entriesOf(ledger: StockLedger, id: string): Promise<Entry[]> {
  return (await readAllEntries(ledger)).filter((e) => e.requestId === id);
}

/**
 * Checks every invariant the ledger promises by reading it all back (mirrors sqlite-faults'
 * checkLedger, plus the conformance suite's checkInvariants: holds, reservations, all or none).
 * Oversell is judged per SKU as units sold (deduct, commit) against units restocked: no adjust
 * or reverse runs in these cases.
 */
async function checkLedger(ledger: StockLedger, operations: readonly ExpectedOperation[] = []): Promise<Entry[]> {
  const { entries, verify } = await checkInvariants(ledger, { operations });
  expect(verify.ok, JSON.stringify(verify.drift)).toBe(true);
  expectEntriesOnce(entries);

  // Each SKU's chain never goes below zero, never sells more than came in, and folds to its level.
  const skus = [...new Set(entries.map((e) => e.sku))];
  for (const sku of skus) {
    let onHand = 0;
    let reserved = 0;
    let restocked = 0;
    let sold = 0;
    const own = entries.filter((x) => x.sku === sku);
    for (const e of own) {
      onHand += e.onHandDelta;
      reserved += e.reservedDelta;
      expect(e.onHandAfter, `chain of ${sku} at seq ${e.seq}`).toBe(onHand);
      expect(e.onHandAfter).toBeGreaterThanOrEqual(e.reservedAfter);
      expect(e.reservedAfter).toBeGreaterThanOrEqual(0);
      if (e.kind === 'restock') restocked += e.onHandDelta;
      if (e.kind === 'deduct' || e.kind === 'commit') sold -= e.onHandDelta;
    }
    expect(sold, `no oversell of ${sku}`).toBeLessThanOrEqual(restocked);
    expect(await ledger.stock(sku)).toEqual({ sku, onHand, reserved, available: onHand - reserved, version: own.length });
  }

  // Every request with entries of its own kind has its record, holding exactly those entries.
  const byRequest = new Map<string, Entry[]>();
  for (const e of entries) {
    if (e.kind === 'deduct' || e.kind === 'restock') byRequest.set(e.requestId, [...(byRequest.get(e.requestId) ?? []), e]);
  }
  for (const [id, own] of byRequest) {
    const record = await ledger.request(id);
    expect(record, `request ${id}`).not.toBeNull();
    expect(record?.entries).toEqual(own);
  }
  return entries;
}

/** How a call settled: a result, or the code of the StockLedgerError it threw. */
type Settled = { result: OperationResult } | { error: string };

async function settle(call: () => Promise<OperationResult>): Promise<Settled> {
  try {
    return { result: await call() };
  } catch (error) {
    // Anything but a StockLedgerError reaching the caller is a bug: let it fail the test.
    if (!isStockLedgerError(error)) throw error;
    return { error: error.code };
  }
}

const appliedOf = (s: Settled): Applied | undefined => ('result' in s && s.result.ok ? s.result : undefined);

/** Expects a rejected call's reason to be STORE_UNAVAILABLE. */
function expectUnavailable(settled: PromiseSettledResult<unknown>): void {
  expect(settled.status).toBe('rejected');
  const reason: unknown = settled.status === 'rejected' ? settled.reason : undefined;
  expect(reason).toBeInstanceOf(StoreUnavailableError);
  expect(isStockLedgerError(reason) ? reason.code : reason).toBe('STORE_UNAVAILABLE');
}

// ---------------------------------------------------------------------------------------------
// Lost replies

const TIMEOUT_MS = 300;
const RECONNECT_WAIT_MS = 3_000;

describeRedis('Redis store: lost replies (through the proxy)', () => {
  let server: RedisServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startProxy({ targetPort: server.port, targetHost: server.host });
  });
  afterAll(async () => {
    for (const c of openClients.splice(0)) await c.close();
    await proxy?.close();
    await server?.stop();
  });

  /** An ioredis client through the proxy that times out fast; `ready()` counts its (re)connects. */
  async function viaProxy(options: RedisOptions = {}): Promise<{ client: Redis; ready: () => number }> {
    const client = ioredis({ host: proxy.host, port: proxy.port, commandTimeout: TIMEOUT_MS, maxRetriesPerRequest: 1, ...options });
    const ready = readyCounter(client);
    await waitUntil('the first connect', async () => ready() > 0, RECONNECT_WAIT_MS);
    return { client, ready };
  }

  /** A ledger on `client` with a fresh prefix, its scripts cached on the server. */
  async function warmLedger(client: RedisClientLike, name: string, options: Omit<StockLedgerOptions, 'store'> = {}): Promise<StockLedger> {
    const ledger = ledgerOn(client, name, options);
    await warmScripts(ledger);
    return ledger;
  }

  /** Loses the reply of `send`, then waits until the client is connected again. */
  async function lose<T>(ready: () => number, send: () => Promise<T>): Promise<PromiseSettledResult<Awaited<T>>> {
    const before = ready();
    const lost = await proxy.loseReplies(send);
    await waitUntil('the reconnect', async () => ready() > before, RECONNECT_WAIT_MS);
    return lost;
  }

  /**
   * With replies dropped, starts `send` and waits until the server's reply to it was dropped,
   * then cuts the connections and forwards again, while `send` is still pending: the ledger's
   * own retry (or the driver's re-send) must finish the call.
   */
  async function dropFirstReply<T>(send: () => Promise<T>): Promise<PromiseSettledResult<Awaited<T>>> {
    const before = proxy.droppedBytes;
    proxy.dropReplies = true;
    const pending = Promise.allSettled([send()]);
    try {
      await waitUntil('a dropped reply', async () => proxy.droppedBytes > before, 2_000);
    } finally {
      proxy.cutAll();
      proxy.dropReplies = false;
    }
    const [settled] = await pending;
    return settled;
  }

  it.each([
    ['ioredis re-sends unfulfilled commands (default)', true],
    ['ioredis does not re-send (autoResendUnfulfilledCommands: false)', false],
  ])('one deduct, %s: STORE_UNAVAILABLE, then the same request is a replay, applied once', async (_, resend) => {
    const { client, ready } = await viaProxy({ autoResendUnfulfilledCommands: resend });
    const ledger = await warmLedger(client, 'lost-one', { retry: false });
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 10 });
    const input = { requestId: 'order-1', sku: 'A', qty: 3, meta: { order: 1 } };

    const lost = await lose(ready, () => ledger.deduct(input));
    expectUnavailable(lost);
    // The script ran on the server although the caller never heard back.
    const [applied] = await entriesOf(ledger, 'order-1');
    expect(applied).toMatchObject({ kind: 'deduct', sku: 'A', onHandDelta: -3, onHandAfter: 7 });

    const again = await ledger.deduct(input);
    expect(again).toMatchObject({ ok: true, replayed: true, levels: [{ sku: 'A', onHand: 7, available: 7, version: 2 }] });
    expect(again.ok && again.entries).toEqual([applied]);
    expect(await ledger.deduct(input)).toEqual(again);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 7, version: 2 });
    expect(await entriesOf(ledger, 'order-1')).toHaveLength(1);
    await checkLedger(ledger);
  });

  it('several concurrent deducts: all STORE_UNAVAILABLE, then all replays; each applied once', async () => {
    const { client, ready } = await viaProxy();
    const ledger = await warmLedger(client, 'lost-many', { retry: false });
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 100 });
    const inputs = Array.from({ length: 12 }, (_, i) => ({ requestId: `order-${i}`, sku: 'A', qty: 1 + (i % 3) }));
    const taken = inputs.reduce((sum, x) => sum + x.qty, 0);

    const lost = await lose(ready, () => Promise.all(inputs.map((x) => ledger.deduct(x))));
    expectUnavailable(lost);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 100 - taken, version: 1 + inputs.length });

    // The retries, concurrently, twice each.
    const again = await Promise.all([...inputs, ...inputs].map((x) => ledger.deduct(x)));
    for (const r of again) expect(r).toMatchObject({ ok: true, replayed: true });
    expect(await ledger.stock('A')).toMatchObject({ onHand: 100 - taken, version: 1 + inputs.length });
    const entries = await checkLedger(ledger, inputs.map((x) => ({ requestId: x.requestId, skus: [x.sku] })));
    expect(entries.filter((e) => e.kind === 'deduct')).toHaveLength(inputs.length);
  });

  it('a multi-line deduct (a SKU twice, odd SKUs): the retry is a replay of all lines, applied once', async () => {
    const { client, ready } = await viaProxy();
    const ledger = await warmLedger(client, 'lost-lines', { retry: false });
    const skus = ['A', 'b {x}:1', 'emoji 🍐\nline'];
    for (const [i, sku] of skus.entries()) await ledger.restockOrThrow({ requestId: `po-${i}`, sku, qty: 10 });
    const input: DeductInput = {
      requestId: 'order-lines',
      lines: [{ sku: 'emoji 🍐\nline', qty: 2 }, { sku: 'A', qty: 1 }, { sku: 'b {x}:1', qty: 4 }, { sku: 'A', qty: 2 }],
    };

    expectUnavailable(await lose(ready, () => ledger.deduct(input)));
    const again = await ledger.deduct(input);
    expect(again.ok && again.replayed).toBe(true);
    expect(again.ok && again.levels.map((l) => [l.sku, l.onHand])).toEqual([['A', 7], ['b {x}:1', 6], ['emoji 🍐\nline', 8]]);
    expect((await entriesOf(ledger, 'order-lines')).map((e) => [e.sku, e.onHandDelta])).toEqual([['A', -3], ['b {x}:1', -4], ['emoji 🍐\nline', -2]]);
    await checkLedger(ledger, [{ requestId: 'order-lines', skus }]);
  });

  it('reserve and commit: each lost reply is followed by a replay; the hold is taken and sold once', async () => {
    const { client, ready } = await viaProxy();
    const ledger = await warmLedger(client, 'lost-hold', { retry: false });
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 5 });
    await ledger.restockOrThrow({ requestId: 'po-2', sku: 'B', qty: 5 });
    const reserve = { requestId: 'cart-1', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 60_000 };

    expectUnavailable(await lose(ready, () => ledger.reserve(reserve)));
    const held = await ledger.reserve(reserve);
    expect(held).toMatchObject({ ok: true, replayed: true, reservation: { id: 'cart-1', state: 'held' } });
    expect(await ledger.stocks(['A', 'B'])).toMatchObject([{ onHand: 5, reserved: 2 }, { onHand: 5, reserved: 1 }]);

    const commit = { reservationId: 'cart-1' };
    expectUnavailable(await lose(ready, () => ledger.commit(commit)));
    const sold = await ledger.commit(commit);
    expect(sold).toMatchObject({ ok: true, replayed: true });
    expect(await ledger.commit(commit)).toEqual(sold);
    expect(await ledger.stocks(['A', 'B'])).toMatchObject([{ onHand: 3, reserved: 0, version: 3 }, { onHand: 4, reserved: 0, version: 3 }]);
    expect(await ledger.reservation('cart-1')).toMatchObject({ state: 'committed' });
    const entries = await checkLedger(ledger, [{ requestId: 'cart-1', skus: ['A', 'B'] }, { requestId: 'cart-1', kind: 'commit', skus: ['A', 'B'] }]);
    expect(entries.filter((e) => e.requestId === 'cart-1').map((e) => [e.kind, e.sku])).toEqual([
      ['reserve', 'A'], ['reserve', 'B'], ['commit', 'A'], ['commit', 'B'],
    ]);
  });

  it("with the ledger's own retry: the call succeeds as a replay and the stock moved once", async () => {
    const { client } = await viaProxy();
    const ledger = await warmLedger(client, 'lost-retry');
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 50 });
    await ledger.restockOrThrow({ requestId: 'po-2', sku: 'B', qty: 50 });

    const one = await dropFirstReply(() => ledger.deduct({ requestId: 'order-1', sku: 'A', qty: 4 }));
    expect(one.status).toBe('fulfilled');
    expect(one.status === 'fulfilled' && one.value).toMatchObject({ ok: true, replayed: true, levels: [{ sku: 'A', onHand: 46 }] });

    const inputs = Array.from({ length: 8 }, (_, i) => ({ requestId: `order-m${i}`, lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }] }));
    const many = await dropFirstReply(() => Promise.all(inputs.map((x) => ledger.deduct(x))));
    expect(many.status).toBe('fulfilled');
    for (const r of many.status === 'fulfilled' ? many.value : []) expect(r).toMatchObject({ ok: true });
    expect(await ledger.stocks(['A', 'B'])).toMatchObject([{ onHand: 46 - 8, version: 10 }, { onHand: 50 - 16, version: 9 }]);
    await checkLedger(ledger, inputs.map((x) => ({ requestId: x.requestId, skus: ['A', 'B'] })));
  });

  it('node-redis v5 with a socket timeout: STORE_UNAVAILABLE, then a replay, applied once', async () => {
    const client = await nodeRedis(proxy, TIMEOUT_MS);
    const ready = readyCounter(client);
    const ledger = await warmLedger(client, 'lost-node-redis', { retry: false });
    await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 10 });
    const input = { requestId: 'order-1', lines: [{ sku: 'A', qty: 2 }] };

    expectUnavailable(await lose(ready, () => ledger.deduct(input)));
    expect(await ledger.deduct(input)).toMatchObject({ ok: true, replayed: true, levels: [{ sku: 'A', onHand: 8, version: 2 }] });

    // Concurrent ones too.
    const inputs = Array.from({ length: 6 }, (_, i) => ({ requestId: `order-n${i}`, sku: 'A', qty: 1 }));
    expectUnavailable(await lose(ready, () => Promise.all(inputs.map((x) => ledger.deduct(x)))));
    for (const r of await Promise.all(inputs.map((x) => ledger.deduct(x)))) expect(r).toMatchObject({ ok: true, replayed: true });
    expect(await ledger.stock('A')).toMatchObject({ onHand: 2, version: 8 });
    await checkLedger(ledger);
  });
});

// ---------------------------------------------------------------------------------------------
// A flash sale under faults: 400 buyers for 300 units of A; every fourth buyer also wants one of
// the 80 units of B (a two-line deduct), so some are rejected on B while A is still there.

const BUYERS = 400;
const STOCK_A = 300;
const STOCK_B = 80;
const SKU_A = 'sale {A}:1';
const SKU_B = 'sale 🍐 B';

function buyerInput(buyer: number): DeductInput {
  const requestId = `buyer-${buyer}`;
  if (buyer % 4 === 0) return { requestId, lines: [{ sku: SKU_A, qty: 1 }, { sku: SKU_B, qty: 1 }], meta: { buyer } };
  return { requestId, sku: SKU_A, qty: 1, meta: { buyer } };
}
const buyerSkus = (buyer: number): string[] => (buyer % 4 === 0 ? [SKU_A, SKU_B] : [SKU_A]);

/** Restocks the sale's two SKUs. */
async function stockSale(ledger: StockLedger): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'sale-stock-a', sku: SKU_A, qty: STOCK_A });
  await ledger.restockOrThrow({ requestId: 'sale-stock-b', sku: SKU_B, qty: STOCK_B });
}

/**
 * Runs the buyers in `waves` waves (a short pause between them) and calls `fault(wave)` right
 * after sending each one, without awaiting it, so the fault lands while that wave is in flight. Returns how
 * each buyer's call settled, and every attempt's settlement (in order).
 */
async function runSale(
  ledger: StockLedger, waves: number, fault: (wave: number) => Promise<void> | undefined,
): Promise<{ first: Settled[]; faults: PromiseSettledResult<void>[] }> {
  const calls: Promise<Settled>[] = [];
  const faults: Promise<void>[] = [];
  const perWave = Math.ceil(BUYERS / waves);
  for (let wave = 0; wave < waves; wave += 1) {
    for (let buyer = wave * perWave; buyer < Math.min(BUYERS, (wave + 1) * perWave); buyer += 1) {
      calls.push(settle(() => ledger.deduct(buyerInput(buyer))));
    }
    const f = fault(wave);
    if (f !== undefined) faults.push(f);
    await sleep(1);
  }
  const first = await Promise.all(calls);
  return { first, faults: await Promise.allSettled(faults) };
}

/** One call of a buyer and how it settled. */
type Attempt = [buyer: number, settled: Settled];

/**
 * Retries every buyer whose call threw (same request id), a bounded number of passes, until
 * each has a result. Returns every buyer's final settlement, and every retry made.
 */
async function retryFailed(ledger: StockLedger, first: readonly Settled[]): Promise<{ final: Settled[]; retries: Attempt[] }> {
  const final = [...first];
  const retries: Attempt[] = [];
  for (let pass = 0; pass < 5 && final.some((s) => 'error' in s); pass += 1) {
    await Promise.all(final.map(async (s, buyer) => {
      if (!('error' in s)) return;
      final[buyer] = await settle(() => ledger.deduct(buyerInput(buyer)));
      retries.push([buyer, final[buyer]]);
    }));
  }
  return { final, retries };
}

/** Checks a finished sale: every buyer served or rejected once, 300 sold, B not oversold, records present. */
async function checkSale(ledger: StockLedger, final: readonly Settled[], acknowledged: ReadonlyMap<number, Applied[]>): Promise<void> {
  for (const [buyer, s] of final.entries()) {
    expect(s, `buyer ${buyer}`).not.toHaveProperty('error');
    if ('result' in s && !s.result.ok) expect(s.result.code, `buyer ${buyer}`).toBe('INSUFFICIENT_STOCK');
  }
  const entries = await checkLedger(ledger, final.map((_, buyer) => ({ requestId: `buyer-${buyer}`, skus: buyerSkus(buyer) })));
  const deducts = entries.filter((e) => e.kind === 'deduct');
  const soldA = deducts.filter((e) => e.sku === SKU_A).length;
  const soldB = deducts.filter((e) => e.sku === SKU_B).length;
  expect(soldA, 'A sells out exactly').toBe(STOCK_A);
  expect(soldB).toBeLessThanOrEqual(STOCK_B);
  expect(await ledger.stocks([SKU_A, SKU_B])).toMatchObject([{ onHand: 0 }, { onHand: STOCK_B - soldB }]);

  for (const [buyer, s] of final.entries()) {
    const id = `buyer-${buyer}`;
    const record = await ledger.request(id);
    const own = deducts.filter((e) => e.requestId === id);
    if ('result' in s && s.result.ok) {
      // Served: its record and entries are there, one per SKU it named.
      expect(record, id).not.toBeNull();
      expect(own.map((e) => e.sku)).toEqual(buyerSkus(buyer));
      expect(record?.entries).toEqual(s.result.entries);
    } else {
      // Rejected: recorded nothing.
      expect(record, id).toBeNull();
      expect(own).toEqual([]);
    }
  }
  // Every acknowledged outcome of a buyer (first call, retries) reports the same, single application.
  for (const [buyer, acks] of acknowledged) {
    expect(acks.filter((a) => !a.replayed).length, `buyer ${buyer} applied by several calls`).toBeLessThanOrEqual(1);
    const record = await ledger.request(`buyer-${buyer}`);
    for (const a of acks) expect(a.entries, `buyer ${buyer}`).toEqual(record?.entries);
  }
}

/** Every applied outcome per buyer: of the first calls, and of the retries. */
function acknowledgements(first: readonly Settled[], retries: readonly Attempt[] = []): Map<number, Applied[]> {
  const out = new Map<number, Applied[]>();
  for (const [buyer, s] of [...first.map((x, buyer): Attempt => [buyer, x]), ...retries]) {
    const a = appliedOf(s);
    if (a !== undefined) out.set(buyer, [...(out.get(buyer) ?? []), a]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// CLIENT KILL and SCRIPT FLUSH

describeRedis(
  'Redis store: connections killed and scripts flushed mid-run',
  () => {
    let server: RedisServer;
    beforeAll(async () => {
      server = await startRedis();
    });
    afterAll(async () => {
      for (const c of openClients.splice(0)) await c.close();
      await server?.stop();
    });

    it.each([
      ["the ledger's default retry", {}],
      ['retry: false (the test retries)', { retry: false as const }],
      ['one call per operation (the store\'s default)', { batch: false }],
    ])('CLIENT KILL TYPE normal under 400 in-flight deducts (ioredis defaults), %s: each applied at most once, no oversell', async (_, options) => {
      const client = ioredis({ host: server.host, port: server.port });
      let reconnects = 0;
      client.on('reconnecting', () => (reconnects += 1));
      const ledger = ledgerOn(client, 'client-kill', options);
      await stockSale(ledger);

      let killed = 0;
      // One kill at a time: a kill must not cut the connection another kill is sent on.
      let kills = Promise.resolve();
      const kill = (): Promise<void> =>
        (kills = kills.then(async () => {
          killed += Number(await rawCommand(server, ['CLIENT', 'KILL', 'TYPE', 'normal']));
        }));
      const { first, faults } = await runSale(ledger, 16, (wave) => (wave === 3 || wave === 8 || wave === 12 ? kill() : undefined));
      for (const f of faults) expect(f.status).toBe('fulfilled');
      expect(killed, 'CLIENT KILL found the client').toBeGreaterThan(0);
      expect(reconnects).toBeGreaterThan(0);
      for (const s of first) if ('error' in s) expect(s.error).toBe('STORE_UNAVAILABLE');

      const { final, retries } = await retryFailed(ledger, first);
      await checkSale(ledger, final, acknowledgements(first, retries));
    });

    // Scripts by EVALSHA meet NOSCRIPT after SCRIPT FLUSH; functions meet "Function not found"
    // after FUNCTION FLUSH. Either way the store loads again and calls again: nothing had run.
    const flushCases = [
      { name: 'SCRIPT FLUSH', functions: false, flush: ['SCRIPT', 'FLUSH'], load: 'cmdstat_eval' },
      { name: 'FUNCTION FLUSH', functions: true, flush: ['FUNCTION', 'FLUSH'], load: 'cmdstat_function|load' },
    ] as const;
    for (const { name, functions, flush, load } of flushCases) it(`${name} four times mid-run: no error reaches the caller, every count is right`, async () => {
      await rawCommand(server, ['CONFIG', 'RESETSTAT']);
      const client = ioredis({ host: server.host, port: server.port });
      // retry: false, so a NOSCRIPT not handled inside the store would reach the caller.
      const ledger = ledgerOn(client, `flush-${String(functions)}`, { retry: false, functions });
      const skus = ['A', 'B {x}', 'C 🍐'];
      for (const sku of skus) await ledger.restockOrThrow({ requestId: `po-${sku}`, sku, qty: 1_000 });

      const ops = 600;
      const calls: Promise<Settled>[] = [];
      const flushes: unknown[] = [];
      for (let i = 0; i < ops; i += 1) {
        // Awaited while the earlier calls are still in flight, so later calls surely meet an empty cache.
        if (i % 150 === 75) flushes.push(await rawCommand(server, [...flush]));
        const sku = skus[i % skus.length] as string;
        calls.push(settle(() => (i % 5 === 0
          ? ledger.restock({ requestId: `in-${i}`, sku, qty: 2 })
          : ledger.deduct({ requestId: `out-${i}`, lines: [{ sku, qty: 1 }, { sku: skus[(i + 1) % skus.length] as string, qty: 1 }] }))));
        if (i % 25 === 24) await sleep(1);
      }
      const results = await Promise.all(calls);
      expect(flushes).toEqual(['OK', 'OK', 'OK', 'OK']);
      for (const [i, s] of results.entries()) expect(s, `op ${i}`).toMatchObject({ result: { ok: true, replayed: false } });

      const entries = await checkLedger(ledger, results.map((_, i) => (i % 5 === 0
        ? { requestId: `in-${i}`, skus: [skus[i % 3] as string] }
        : { requestId: `out-${i}`, skus: [skus[i % 3] as string, skus[(i + 1) % 3] as string] })));
      const restocks = Math.ceil(ops / 5);
      expect(entries).toHaveLength(skus.length + restocks + 2 * (ops - restocks));
      const levels = await ledger.stocks(skus);
      expect(levels.reduce((sum, l) => sum + l.onHand, 0)).toBe(3 * 1_000 + 2 * restocks - 2 * (ops - restocks));

      // The flushes did hit: the store loaded again (EVAL, or FUNCTION LOAD), but only now and then, never per call.
      const stats = await rawCommand(server, ['INFO', 'commandstats']);
      const evals = Number(/calls=(\d+)/.exec(infoField(stats, load) ?? '')?.[1] ?? 0);
      expect(evals).toBeGreaterThanOrEqual(4);
      expect(evals).toBeLessThan(ops);
    });
  },
  { needsSpawn: true },
);

// ---------------------------------------------------------------------------------------------
// SIGKILL and restart with appendfsync always

describeRedis(
  'Redis store: SIGKILL and restart with appendonly yes, appendfsync always',
  () => {
    let server: RedisServer;
    beforeAll(async () => {
      server = await startRedis({ appendonly: true, appendfsync: 'always' });
    });
    afterAll(async () => {
      for (const c of openClients.splice(0)) await c.close();
      await server?.stop();
    });

    const connect = {
      ioredis: async (): Promise<RedisClientLike> => ioredis({ host: server.host, port: server.port }),
      'node-redis': async (): Promise<RedisClientLike> => nodeRedis(server),
    };
    const cases: Array<[string, keyof typeof connect, Omit<StockLedgerOptions, 'store'>]> = [
      ["ioredis, the ledger's default retry", 'ioredis', {}],
      ['ioredis, retry: false (the test retries)', 'ioredis', { retry: false }],
      ['node-redis, retry: false (the test retries)', 'node-redis', { retry: false }],
    ];

    it.each(cases)('%s: every acknowledged operation survives, none applied twice, no oversell', async (_, kind, options) => {
      const client = await connect[kind]();
      const ledger = ledgerOn(client, `sigkill-${kind}`, options);
      await stockSale(ledger);

      let pidBefore: number | undefined;
      const { first, faults } = await runSale(ledger, 16, (wave) => {
        if (wave !== 6) return undefined;
        pidBefore = server.pid;
        return (async () => {
          await server.kill('SIGKILL');
          await sleep(50); // a few waves go out while the server is down
          await server.restart();
        })();
      });
      for (const f of faults) expect(f.status).toBe('fulfilled');
      expect(server.pid).toBeDefined();
      expect(server.pid).not.toBe(pidBefore);
      for (const s of first) if ('error' in s) expect(s.error).toBe('STORE_UNAVAILABLE');

      // Every acknowledged operation is there, with the entries it reported.
      const acked = acknowledgements(first);
      expect(acked.size, 'some buyers were served before the kill or after the restart').toBeGreaterThan(0);
      for (const [buyer, [ack]] of acked) {
        const record = await ledger.request(`buyer-${buyer}`);
        expect(record, `acknowledged buyer-${buyer}`).not.toBeNull();
        expect(record?.entries).toEqual(ack?.entries);
      }
      // Before any retry: the ledger as it came back from the AOF is consistent.
      await checkLedger(ledger);

      const { final, retries } = await retryFailed(ledger, first);
      await checkSale(ledger, final, acknowledgements(first, retries));
    });
  },
  { needsSpawn: true },
);
