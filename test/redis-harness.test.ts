/**
 * The Redis test harness itself: where Redis tests run (spawn, REDIS_URL, skip, never skip under
 * CI), spawned servers (start, SIGKILL, restart with the AOF, stop), the lost-reply proxy, and a
 * three-master cluster. The later Redis store tests rely on all of it.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type RedisCluster } from './support/redis-cluster.js';
import {
  REDIS_SKIP_REASON,
  REDIS_SPAWN_SKIP_REASON,
  describeRedis,
  rawCommand,
  redisSkipReason,
  redisTarget,
  startRedis,
  waitUntil,
  type RedisServer,
} from './support/redis-server.js';
import { startProxy, type TcpProxy } from './support/tcp-proxy.js';

/** True while a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('where Redis tests run', () => {
  const withBinary = { hasServerBinary: () => true };
  const without = { hasServerBinary: () => false };

  it('spawns when redis-server is on PATH, even with REDIS_URL set', () => {
    expect(redisTarget({ ...withBinary, env: { REDIS_URL: 'redis://127.0.0.1:1' } })).toEqual({ kind: 'spawn' });
  });

  it('uses REDIS_URL when there is no binary', () => {
    const env = { REDIS_URL: 'redis://127.0.0.1:1' };
    expect(redisTarget({ ...without, env })).toEqual({ kind: 'url', url: 'redis://127.0.0.1:1' });
    expect(redisSkipReason({ probe: { ...without, env } })).toBe(false);
    expect(redisSkipReason({ needsSpawn: true, probe: { ...without, env } })).toBe(REDIS_SPAWN_SKIP_REASON);
  });

  it('skips with a clear reason when there is neither', () => {
    expect(redisTarget({ ...without, env: {} })).toEqual({ kind: 'skip', reason: REDIS_SKIP_REASON });
    expect(redisSkipReason({ probe: { ...without, env: { CI: 'false' } } })).toBe(REDIS_SKIP_REASON);
  });

  it('never skips under CI', () => {
    expect(() => redisSkipReason({ probe: { ...without, env: { CI: 'true' } } })).toThrow(/CI is set/);
    const urlOnly = { ...without, env: { CI: 'true', REDIS_URL: 'redis://127.0.0.1:1' } };
    expect(() => redisSkipReason({ needsSpawn: true, probe: urlOnly })).toThrow(/CI is set/);
  });
});

describeRedis(
  'a spawned redis-server',
  () => {
    it('answers on a loopback port other than 6379 and leaves nothing behind when stopped', async () => {
      const server = await startRedis();
      const pid = server.pid ?? 0;
      expect(server.port).not.toBe(6379);
      expect(existsSync(join(server.dir, 'redis.log'))).toBe(true);
      expect(await rawCommand(server, ['PING'])).toBe('PONG');
      await server.stop();
      expect(alive(pid)).toBe(false);
      expect(existsSync(server.dir)).toBe(false);
    });

    it('keeps every acknowledged write across SIGKILL and a restart with appendfsync always', async () => {
      const server = await startRedis({ appendonly: true, appendfsync: 'always' });
      try {
        const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
        await client.connect();
        for (let i = 0; i < 50; i += 1) await client.incr('n');
        client.disconnect();
        const before = server.pid ?? 0;
        await server.kill('SIGKILL');
        expect(alive(before)).toBe(false);
        await server.restart();
        expect(server.pid).not.toBe(before);
        expect(await rawCommand(server, ['GET', 'n'])).toBe('50');
      } finally {
        await server.stop();
      }
    });
  },
  { needsSpawn: true },
);

describeRedis('the lost-reply proxy', () => {
  let server: RedisServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startProxy({ targetPort: server.port, targetHost: server.host });
  });
  afterAll(async () => {
    await proxy.close();
    await server.stop();
  });

  const client = (options: { autoResendUnfulfilledCommands: boolean }): Redis =>
    new Redis({ host: proxy.host, port: proxy.port, commandTimeout: 200, maxRetriesPerRequest: 1, ...options });

  it('loses the reply of an applied command; the retry then goes through', async () => {
    const key = `harness:lost:${randomUUID()}`;
    const redis = client({ autoResendUnfulfilledCommands: false });
    try {
      expect(await redis.incr(key)).toBe(1);
      const lost = await proxy.loseReplies(() => redis.incr(key));
      expect(lost.status).toBe('rejected');
      expect(String(lost.status === 'rejected' ? lost.reason : '')).toMatch(/timed out/);
      // Applied exactly once on the server, though the client never saw the reply.
      expect(await rawCommand(server, ['GET', key])).toBe('2');
      expect(await redis.incr(key)).toBe(3);
    } finally {
      redis.disconnect();
      await rawCommand(server, ['DEL', key]);
    }
  });

  // What the Redis store must expect from ioredis's defaults: a timed-out command stays queued
  // and is sent again after the reconnect, so it runs twice. Harmless for an idempotent script
  // with the same request id; an INCR shows it.
  it('ioredis by default resends the timed-out command after the reconnect', async () => {
    const key = `harness:resent:${randomUUID()}`;
    const redis = client({ autoResendUnfulfilledCommands: true });
    try {
      await redis.set(key, '0');
      const lost = await proxy.loseReplies(() => redis.incr(key));
      expect(lost.status).toBe('rejected');
      await waitUntil('the resent INCR', async () => (await rawCommand(server, ['GET', key])) === '2', 2_000);
      await sleep(100);
      expect(await rawCommand(server, ['GET', key])).toBe('2');
    } finally {
      redis.disconnect();
      await rawCommand(server, ['DEL', key]);
    }
  });

  it('cutAll drops every connection; the client reconnects by itself', async () => {
    const redis = client({ autoResendUnfulfilledCommands: false });
    try {
      await redis.ping();
      expect(proxy.connections).toBe(1);
      proxy.cutAll();
      await waitUntil('the reconnect', async () => (await redis.ping()) === 'PONG', 2_000);
    } finally {
      redis.disconnect();
    }
  });
});

describeRedis(
  'a three-master cluster',
  () => {
    let cluster: RedisCluster;
    let client: Cluster;
    beforeAll(async () => {
      cluster = await startCluster();
      client = new Cluster(cluster.nodes.map(({ host, port }) => ({ host, port })));
    });
    afterAll(async () => {
      await client.quit();
      await cluster.stop();
    });

    it('stores keys on all three masters', async () => {
      for (let i = 0; i < 60; i += 1) await client.set(`k:${i}`, String(i));
      expect(await client.get('k:59')).toBe('59');
      for (const node of cluster.nodes) expect(await rawCommand(node, ['DBSIZE'])).toBeGreaterThan(0);
    });

    it('puts keys sharing a hash tag in one slot', async () => {
      const [node] = cluster.nodes;
      if (node === undefined) throw new Error('no node');
      const slots = await Promise.all(['{x}a', '{x}levels', 'prefix:{x}:z'].map((k) => rawCommand(node, ['CLUSTER', 'KEYSLOT', k])));
      expect(new Set(slots).size).toBe(1);
      expect(await rawCommand(node, ['CLUSTER', 'KEYSLOT', 'x'])).toBe(slots[0]);
    });
  },
  { needsSpawn: true },
);
