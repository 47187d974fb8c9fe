/**
 * `waitForAof` checks the write it claims. WAITAOF counts only the writes of the connection that
 * sends it, so the store sends one pipeline on one connection: CLIENT ID, the script, INCR of the
 * ledger's `aof` key (a write after the state the script read, even for a replay or a
 * rejection), WAITAOF, CLIENT ID; it accepts only equal CLIENT IDs.
 *
 * Against any redis-server (the machine's is 7.0, which has no WAITAOF): the pipeline's shape on
 * the wire (recorded by a proxy), the judging of its replies, the clients refused at construction, the checks
 * before the first write. Against a server that knows WAITAOF (Redis 7.2+ or Valkey, found by
 * `waitAofServerBinary`; `.ci/run` fetches Valkey 8 with scripts/waitaof-server.sh, and with
 * CI=true a missing server fails the run; elsewhere these skip, saying why): the
 * success path, replays and rejections confirmed, one pipeline per batch, the timeout, and a
 * real reconnect between the script and WAITAOF.
 */
import { Cluster, Redis } from 'ioredis';
import { createClient, createClientPool, createCluster } from 'redis';
import { StockLedger, StoreUnavailableError, isStockLedgerError, type StockLedgerOptions } from 'stock-ledger';
import { RedisStore, aofKey, ledgerKeys, type RedisClientLike, type RedisStoreOptions } from 'stock-ledger/redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aofConfirmed, aofInvoker } from '../adapters/redis/redis-aof.js';
import { SPLIT_FROM } from '../adapters/redis/redis-batch.js';
import { scriptCaller } from '../adapters/redis/redis-client.js';
import { SCRIPT_SHAS } from '../adapters/redis/redis-scripts.js';
import { codeOf } from './support/codes.js';
import { startProxy, type TcpProxy } from './support/tcp-proxy.js';
import {
  commandCalls, describeRedis, rawCommand, redisSuiteHooks, scriptCalls, spawnRedis, waitAofServerBinary, waitUntil, type NodeRedisClient, type RedisServer,
} from './support/redis-server.js';

let ledgers = 0;
const freshPrefix = (): string => `aof-${process.pid}-${(ledgers += 1)}`;

describeRedis('Redis store: waitForAof, on any server', () => {
  let server: RedisServer;
  let ioredis: Redis;
  let nodeRedis: NodeRedisClient;
  redisSuiteHooks((started, connected) => {
    server = started;
    ioredis = connected;
  }, { nodeRedis: (client) => (nodeRedis = client) });

  it('is refused at construction where one connection cannot be guaranteed: Clusters and node-redis pools', async () => {
    const ioCluster = new Cluster([{ host: server.host, port: server.port }], { lazyConnect: true });
    const nodeCluster = createCluster({ rootNodes: [{ url: server.url }] });
    const pool = createClientPool({ url: server.url });
    for (const client of [ioCluster, nodeCluster, pool] as unknown as RedisClientLike[]) {
      expect(await codeOf(() => new RedisStore({ client, prefix: 'p', waitForAof: true }))).toBe('INVALID_INPUT');
      // Without waitForAof the same clients are fine.
      expect(await codeOf(() => new RedisStore({ client, prefix: 'p' }))).toBe('no error');
    }
    let message = '';
    try {
      new RedisStore({ client: pool as unknown as RedisClientLike, prefix: 'p', waitForAof: true });
    } catch (error) {
      message = error instanceof Error ? error.message : '';
    }
    expect(message).toMatch(/one connection.*pool/);
    ioCluster.disconnect();
    for (const client of [ioredis, nodeRedis] as RedisClientLike[]) {
      expect(await codeOf(() => new RedisStore({ client, prefix: 'p', waitForAof: { timeoutMs: 100 } }))).toBe('no error');
    }
  });

  it('a server that cannot confirm AOF writes is refused before anything is written', async () => {
    const prefix = freshPrefix();
    const ledger = new StockLedger({ store: new RedisStore({ client: ioredis, prefix, waitForAof: true }), retry: false });
    expect(await codeOf(() => ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }))).toBe('INVALID_INPUT');
    expect(await ioredis.keys(`*${prefix}*`)).toEqual([]);
  });

  it('accepts only equal CLIENT IDs around the script, and a WAITAOF that reached its counts', () => {
    const wait = { replicas: 1, timeoutMs: 100 };
    expect(aofConfirmed([7, 'Areply', 1, [1, 1], 7], wait)).toBe('Areply');
    expect(aofConfirmed(['7', 'Areply', 1, ['1', '2'], '7'], wait)).toBe('Areply');
    const refused = (replies: unknown[]): string => {
      try {
        aofConfirmed(replies, wait);
      } catch (error) {
        expect(error).toBeInstanceOf(StoreUnavailableError);
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refused([7, 'Areply', 1, [1, 1], 8])).toMatch(/did not run on one connection \(CLIENT ID 7, then 8\).*retry with the same request id/);
    expect(refused([null, 'Areply', 1, [1, 1], null])).toMatch(/did not run on one connection/);
    expect(refused([7, 'Areply', 1, [0, 1], 7])).toMatch(/not confirmed in the AOF within 100 ms/);
    expect(refused([7, 'Areply', 1, [1, 0], 7])).toMatch(/wanted 1 local and 1 replicas/);
    expect(refused([7, 'Areply', 1, 'OK', 7])).toMatch(/not confirmed/);
    expect(refused([7, 'Areply', 1, [1, 1]])).toMatch(/did not run on one connection/);
  });

  for (const driver of ['ioredis', 'node-redis'] as const) {
    it(`${driver}: CLIENT ID, the script, INCR, WAITAOF and CLIENT ID go out together on one connection, no MULTI`, async () => {
      // Through a proxy that records what the client sends: MONITOR on 7.0 does not show WAITAOF,
      // a command it does not know.
      const proxy = await startProxy({ targetPort: server.port, targetHost: server.host });
      const client = await throughProxy(driver, proxy);
      try {
        const prefix = freshPrefix();
        // Cache the restock script, so the pipeline below is the first and only one.
        const plain = new StockLedger({ store: new RedisStore({ client, prefix, batch: false, functions: false }) });
        await plain.restockOrThrow({ requestId: 'warm', sku: 'A', qty: 1 });
        const caller = scriptCaller(client);
        if ('refused' in caller.pipeline) throw new Error(caller.pipeline.refused);
        const send = aofInvoker(caller.pipeline, aofKey(prefix), { replicas: 0, timeoutMs: 100 });
        const before = new Map([...proxy.sentCommands()].map(([id, commands]) => [id, commands.length]));
        const args = ['r2', 'fp', '1700000000000', '', '1', 'A', '2'];
        // On 7.0 WAITAOF is an unknown command, so the pipeline fails; what was sent is the point here.
        const reply = await send.evalsha(SCRIPT_SHAS.restock, ledgerKeys(prefix), args).catch((e: unknown) => e);
        if (!(reply instanceof Error)) expect(reply).toMatch(/^A/);
        const sent = [...proxy.sentCommands()].map(([id, commands]) => [id, commands.slice(before.get(id) ?? 0)] as const).filter(([, c]) => c.length > 0);
        expect(sent.length, 'one connection').toBe(1);
        expect(sent[0]?.[1].map(([name = '', ...rest]) => [name.toUpperCase(), ...rest])).toEqual([
          ['CLIENT', 'ID'],
          ['EVALSHA', SCRIPT_SHAS.restock, '12', ...ledgerKeys(prefix), ...args],
          ['INCR', aofKey(prefix)],
          ['WAITAOF', '1', '0', '100'],
          ['CLIENT', 'ID'],
        ]);
        // The script ran, and the marker was written after it, by the same connection.
        expect(await plain.stock('A')).toMatchObject({ onHand: 3 });
        expect(await rawCommand(server, ['GET', aofKey(prefix)])).toBe('1');
      } finally {
        await closeClient(client);
        await proxy.close();
      }
    });
  }
});

/** An ioredis or node-redis client connected through `proxy`. */
async function throughProxy(driver: 'ioredis' | 'node-redis', proxy: TcpProxy): Promise<RedisClientLike> {
  if (driver === 'ioredis') {
    const client = new Redis({ host: proxy.host, port: proxy.port });
    await client.ping();
    return client;
  }
  const client = createClient({ socket: { host: proxy.host, port: proxy.port } });
  await client.connect();
  return client;
}

async function closeClient(client: RedisClientLike): Promise<void> {
  if (client instanceof Redis) client.disconnect();
  else await (client as ReturnType<typeof createClient>).close();
}

// ---------------------------------------------------------------------------------------------
// Against a server that knows WAITAOF

const found = waitAofServerBinary();
const skipReason = 'skip' in found ? `waitForAof success path skipped: ${found.skip}` : '';
if (skipReason !== '' && process.env['CI'] === 'true') {
  throw new Error(`${skipReason}; with CI=true it must run: set STOCK_LEDGER_WAITAOF_SERVER (.ci/run fetches one with scripts/waitaof-server.sh)`);
}
if (skipReason !== '') console.warn(skipReason);

describe.skipIf(skipReason !== '')(skipReason === '' ? `Redis store: waitForAof on ${'version' in found ? found.version : ''}` : skipReason, () => {
  let server: RedisServer;
  const clients: Array<{ close: () => Promise<void> }> = [];
  beforeAll(async () => {
    server = await spawnRedis({ appendonly: true, appendfsync: 'everysec', binary: 'binary' in found ? found.binary : 'redis-server' });
    // Cache the scripts the cases run, so each case's pipelines are exactly its operations'
    // (after a NOSCRIPT the store sends the pipeline again, with EVAL: one WAITAOF more).
    const client = new Redis(server.url);
    const warm = new StockLedger({ store: new RedisStore({ client, prefix: freshPrefix() }) });
    await warm.restock({ requestId: 'r', sku: 'A', qty: 1 });
    await warm.deduct({ requestId: 'd', sku: 'A', qty: 5 });
    await Promise.all([warm.deduct({ requestId: 'd1', sku: 'A', qty: 5 }), warm.restock({ requestId: 'r2', sku: 'A', qty: 1 })]);
    client.disconnect();
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) await c.close();
    await server?.stop();
  });

  async function connect(driver: 'ioredis' | 'node-redis'): Promise<RedisClientLike> {
    if (driver === 'ioredis') {
      const client = new Redis({ host: server.host, port: server.port });
      client.on('error', () => {});
      clients.push({ close: async () => client.disconnect() });
      return client;
    }
    const client = createClient({ socket: { host: server.host, port: server.port, reconnectStrategy: () => 20 } });
    client.on('error', () => {});
    clients.push({ close: async () => { if (client.isOpen) client.destroy(); } });
    await client.connect();
    return client;
  }

  function ledgerOn(client: RedisClientLike, prefix: string, options: Partial<RedisStoreOptions> = {}, ledger: Omit<StockLedgerOptions, 'store'> = {}): StockLedger {
    return new StockLedger({ store: new RedisStore({ client, prefix, waitForAof: { timeoutMs: 2_000 }, ...options }), retry: false, ...ledger });
  }

  for (const driver of ['ioredis', 'node-redis'] as const) {
    for (const batch of [false, true]) {
      it(`${driver}, batch ${String(batch)}: applied, replayed and rejected operations are each confirmed by one WAITAOF`, async () => {
        const client = await connect(driver);
        const prefix = freshPrefix();
        const ledger = ledgerOn(client, prefix, { batch });
        const marker = async (): Promise<unknown> => rawCommand(server, ['GET', aofKey(prefix)]);
        const waits = await commandCalls(server, 'waitaof');
        expect(await ledger.restock({ requestId: 'r', sku: 'A', qty: 2 })).toMatchObject({ ok: true, replayed: false });
        expect(await ledger.restock({ requestId: 'r', sku: 'A', qty: 2 })).toMatchObject({ ok: true, replayed: true });
        expect(await ledger.deduct({ requestId: 'd', sku: 'A', qty: 5 })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
        expect(await commandCalls(server, 'waitaof')).toBe(waits + 3);
        expect(await marker()).toBe('3');
        // A replay from another connection, which never wrote the original: its own INCR is what WAITAOF waits for.
        const other = ledgerOn(await connect(driver), prefix, { batch });
        expect(await other.restock({ requestId: 'r', sku: 'A', qty: 2 })).toMatchObject({ ok: true, replayed: true });
        expect(await marker()).toBe('4');
        expect((await ledger.verify()).ok).toBe(true);
      });
    }
  }

  for (const driver of ['ioredis', 'node-redis'] as const) {
    it(`${driver}: after SCRIPT FLUSH the pipeline goes once more with EVAL, then EVALSHA again`, async () => {
      const ledger = ledgerOn(await connect(driver), freshPrefix(), { batch: false, functions: false });
      await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 10 });
      await rawCommand(server, ['SCRIPT', 'FLUSH']);
      const [evals, waits] = [await commandCalls(server, 'eval'), await commandCalls(server, 'waitaof')];
      for (let i = 0; i < 3; i += 1) expect(await ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })).toMatchObject({ ok: true, replayed: false });
      // The first deduct met NOSCRIPT (its pipeline's WAITAOF still ran) and went again with EVAL.
      expect([await commandCalls(server, 'eval'), await commandCalls(server, 'waitaof')]).toEqual([evals + 1, waits + 4]);
      expect(await ledger.stock('A')).toMatchObject({ onHand: 7, version: 4 });
    });
  }

  it('a batch goes out as one pipeline: one script call, one WAITAOF', async () => {
    const ledger = ledgerOn(await connect('ioredis'), freshPrefix(), { batch: true });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 100 });
    // Two sold-out deducts at once load the batch script (a SCRIPT FLUSH case may have run before).
    await Promise.all(['w1', 'w2'].map((requestId) => ledger.deduct({ requestId, sku: 'A', qty: 1_000 })));
    const [scripts, waits] = [await scriptCalls(server), await commandCalls(server, 'waitaof')];
    // Fewer than SPLIT_FROM, so the batcher sends them as one call.
    const results = await Promise.all(Array.from({ length: SPLIT_FROM - 1 }, (_, i) => ledger.deduct({ requestId: `d${i}`, sku: 'A', qty: 1 })));
    expect(results.every((r) => r.ok)).toBe(true);
    expect([await scriptCalls(server), await commandCalls(server, 'waitaof')]).toEqual([scripts + 1, waits + 1]);
    expect(await ledger.stock('A')).toMatchObject({ onHand: 100 - (SPLIT_FROM - 1) });
  });

  it('not confirmed in time (a replica that is not there): STORE_UNAVAILABLE; the retry is a replay', async () => {
    const client = await connect('ioredis');
    const prefix = freshPrefix();
    const waiting = ledgerOn(client, prefix, { waitForAof: { replicas: 1, timeoutMs: 150 } });
    const error = await waiting.restock({ requestId: 'r', sku: 'A', qty: 1 }).catch((e: unknown) => e);
    expect(isStockLedgerError(error) && error.code).toBe('STORE_UNAVAILABLE');
    expect((error as Error).message).toMatch(/not confirmed in the AOF within 150 ms.*wanted 1 local and 1 replicas/);
    expect(await ledgerOn(client, prefix).restock({ requestId: 'r', sku: 'A', qty: 1 })).toMatchObject({ ok: true, replayed: true });
  });

  it('ioredis: a connection cut under WAITAOF is STORE_UNAVAILABLE, then a confirmed replay', async () => {
    const client = await connect('ioredis');
    const prefix = freshPrefix();
    // WAITAOF for a replica that is not there blocks for its timeout: time enough to cut the connection under it.
    const waiting = ledgerOn(client, prefix, { waitForAof: { replicas: 1, timeoutMs: 1_500 } });
    const pending = waiting.restock({ requestId: 'r', sku: 'A', qty: 1 }).catch((e: unknown) => e);
    let blocked = '';
    await waitUntil('a client blocked in WAITAOF', async () => {
      const list = String(await rawCommand(server, ['CLIENT', 'LIST']));
      blocked = /^id=(\d+) .* cmd=waitaof\b/m.exec(list)?.[1] ?? '';
      return blocked !== '';
    }, 2_000);
    expect(await rawCommand(server, ['CLIENT', 'KILL', 'ID', blocked])).toBe(1);
    const error = await pending;
    expect(isStockLedgerError(error) && error.code).toBe('STORE_UNAVAILABLE');
    // ioredis 5 aborts a pipeline that was partly answered when the connection closed, rather
    // than re-send its rest on the new connection (older drivers did: the CLIENT ID check,
    // tested above on the replies, is what catches that).
    expect((error as Error).message).toMatch(/did not run on one connection|Command aborted due to connection close/);
    // The script had run: the retry with the same id replays it, and this time WAITAOF confirms.
    expect(await ledgerOn(client, prefix).restock({ requestId: 'r', sku: 'A', qty: 1 })).toMatchObject({ ok: true, replayed: true });
  });

  it('node-redis: a connection cut under WAITAOF is STORE_UNAVAILABLE, then a confirmed replay', async () => {
    const client = await connect('node-redis');
    const prefix = freshPrefix();
    const waiting = ledgerOn(client, prefix, { waitForAof: { replicas: 1, timeoutMs: 1_500 } });
    const pending = waiting.restock({ requestId: 'r', sku: 'A', qty: 1 }).catch((e: unknown) => e);
    let blocked = '';
    await waitUntil('a client blocked in WAITAOF', async () => {
      blocked = /^id=(\d+) .* cmd=waitaof\b/m.exec(String(await rawCommand(server, ['CLIENT', 'LIST'])))?.[1] ?? '';
      return blocked !== '';
    }, 2_000);
    await rawCommand(server, ['CLIENT', 'KILL', 'ID', blocked]);
    const error = await pending;
    expect(isStockLedgerError(error) && error.code).toBe('STORE_UNAVAILABLE');
    await waitUntil('node-redis reconnected', async () => (client as ReturnType<typeof createClient>).isReady, 2_000);
    expect(await ledgerOn(client, prefix).restock({ requestId: 'r', sku: 'A', qty: 1 })).toMatchObject({ ok: true, replayed: true });
  });

  it('appendonly no on a server that knows WAITAOF: refused before the first write', async () => {
    const plain = await spawnRedis({ binary: 'binary' in found ? found.binary : 'redis-server' });
    try {
      const client = new Redis(plain.url);
      clients.push({ close: async () => client.disconnect() });
      const prefix = freshPrefix();
      const ledger = ledgerOn(client, prefix);
      expect(await codeOf(() => ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }))).toBe('INVALID_INPUT');
      expect(await client.keys(`*${prefix}*`)).toEqual([]);
    } finally {
      await plain.stop();
    }
  });
});
