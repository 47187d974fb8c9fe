import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { RedisStore, type RedisClientLike } from 'stock-ledger/redis';
import { conformanceCases } from 'stock-ledger/testing';
import { afterAll, beforeAll, it } from 'vitest';
import { describeRedis, startRedis, type RedisServer } from './support/redis-server.js';

// One spawned server for both drivers; every store is a fresh ledger under its own prefix.
let server: RedisServer;
const clients: { ioredis?: Redis; nodeRedis?: ReturnType<typeof createClient> } = {};
let ledgers = 0;
const prefix = (): string => `conf-${process.pid}-${(ledgers += 1)}`;

function suite(name: string, client: () => RedisClientLike, options: { batch?: boolean; functions?: boolean } = {}): void {
  for (const c of conformanceCases({ name, createStore: () => new RedisStore({ client: client(), prefix: prefix(), ...options }) })) {
    it(c.name, c.run, c.timeoutMs);
  }
}

describeRedis('Redis store conformance', () => {
  beforeAll(async () => {
    server = await startRedis();
    clients.ioredis = new Redis(server.url);
    clients.nodeRedis = createClient({ url: server.url });
    await clients.nodeRedis.connect();
  });
  afterAll(async () => {
    clients.ioredis?.disconnect();
    await clients.nodeRedis?.close();
    await server?.stop();
  });
  // Functions (FCALL) are the default; the EVALSHA scripts are built from the same Lua and
  // run for servers that refuse functions: both pass the whole suite. (The batch script by
  // EVALSHA runs in the Cluster suite, which always uses EVALSHA.)
  suite('redis (ioredis, batched)', () => clients.ioredis as Redis, { batch: true });
  suite('redis (ioredis, one call per operation, the default)', () => clients.ioredis as Redis);
  suite('redis (ioredis, one script per operation, EVALSHA)', () => clients.ioredis as Redis, { batch: false, functions: false });
  suite('redis (node-redis, batched)', () => clients.nodeRedis as RedisClientLike, { batch: true });
});
