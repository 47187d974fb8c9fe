/**
 * The Redis store's two ways of running its Lua: as functions of one loaded library (FCALL, the
 * default) or as scripts by EVALSHA (`functions: false`, a Cluster client, or a server that
 * refuses functions). Both are built from the same Lua files; the conformance suite runs both.
 * Here: which way a store goes, the library loaded once, the fall back to EVALSHA when the server
 * refuses functions (an ACL here, as a server older than 7.0 would), and that an error of a
 * function that ran is the operation's own: never a reason to run it again by EVALSHA.
 */
import { Redis } from 'ioredis';
import { StockLedger } from 'stock-ledger';
import { createClient, createClientPool } from 'redis';
import { RedisStore, ledgerKeys, type RedisClientLike, type RedisStoreOptions } from 'stock-ledger/redis';
import { expect, it } from 'vitest';
import { LIBRARY } from '../adapters/redis/redis-scripts.js';
import { codeOf } from './support/codes.js';
import { commandCalls, describeRedis, rawCommand, redisSuiteHooks, type RedisServer } from './support/redis-server.js';

let server: RedisServer;
let client: Redis;
let ledgers = 0;
const freshPrefix = (): string => `fn-${process.pid}-${(ledgers += 1)}`;

const ledgerOn = (on: Redis, options: Partial<RedisStoreOptions> = {}): StockLedger =>
  new StockLedger({ store: new RedisStore({ client: on, prefix: freshPrefix(), ...options }), retry: false });

/** FCALL and EVALSHA calls so far. */
async function calls(): Promise<{ fcall: number; evalsha: number }> {
  return { fcall: await commandCalls(server, 'fcall'), evalsha: await commandCalls(server, 'evalsha') };
}

/** A restock, a deduct, a sold-out deduct and a replay, one at a time and then four at once (one batch). */
async function sale(ledger: StockLedger): Promise<void> {
  expect(await ledger.restock({ requestId: 'r', sku: 'A', qty: 3 })).toMatchObject({ ok: true });
  expect(await ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 })).toMatchObject({ ok: true, replayed: false });
  expect(await ledger.deduct({ requestId: 'x', sku: 'A', qty: 2 })).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK', available: 1 });
  const together = await Promise.all([
    ledger.deduct({ requestId: 'd', sku: 'A', qty: 2 }),
    ledger.deduct({ requestId: 'd2', sku: 'A', qty: 1 }),
    ledger.deduct({ requestId: 'd3', sku: 'A', qty: 1 }),
    ledger.restock({ requestId: 'r2', sku: 'A', qty: 5 }),
  ]);
  expect(together).toMatchObject([{ ok: true, replayed: true }, { ok: true, replayed: false }, { ok: false, code: 'INSUFFICIENT_STOCK' }, { ok: true }]);
  expect(await ledger.stock('A')).toMatchObject({ onHand: 5, reserved: 0 });
  expect((await ledger.verify()).ok).toBe(true);
}

/** A client logged in as a fresh ACL user with every command but `denied`. */
async function userWithout(denied: string[]): Promise<{ client: Redis; drop: () => Promise<void> }> {
  const user = `no-fn-${process.pid}-${(ledgers += 1)}`;
  await client.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', ...denied.map((c) => `-${c}`));
  const limited = new Redis({ host: server.host, port: server.port, username: user, password: 'pw' });
  return {
    client: limited,
    drop: async () => {
      limited.disconnect();
      await client.call('ACL', 'DELUSER', user);
    },
  };
}

describeRedis('Redis store: functions (FCALL) and scripts (EVALSHA)', () => {
  redisSuiteHooks((started, connected) => {
    server = started;
    client = connected;
  });

  it('by default every call is an FCALL of the loaded library, whose name carries its version', async () => {
    const before = await calls();
    await sale(ledgerOn(client));
    const after = await calls();
    expect(after.evalsha, 'no EVALSHA').toBe(before.evalsha);
    expect(after.fcall - before.fcall).toBeGreaterThanOrEqual(6);
    expect(LIBRARY.name).toMatch(/^stockledger_[0-9a-f]{16}$/);
    const listed = JSON.stringify(await client.call('FUNCTION', 'LIST', 'LIBRARYNAME', LIBRARY.name));
    expect(listed).toContain(`${LIBRARY.name}_deduct`);
    expect(listed).toContain(`${LIBRARY.name}_batch`);
  });

  it('on a node-redis client and a node-redis pool, calls are FCALLs too', async () => {
    const nodeClient = createClient({ url: server.url });
    const pool = createClientPool({ url: server.url });
    await nodeClient.connect();
    await pool.connect();
    try {
      for (const on of [nodeClient, pool] as unknown as RedisClientLike[]) {
        const before = await calls();
        await sale(new StockLedger({ store: new RedisStore({ client: on, prefix: freshPrefix() }), retry: false }));
        const after = await calls();
        expect(after.evalsha, 'no EVALSHA').toBe(before.evalsha);
        expect(after.fcall - before.fcall).toBeGreaterThanOrEqual(6);
      }
    } finally {
      await nodeClient.close();
      await pool.close();
    }
  });

  it('with functions: false every call is an EVALSHA, with the same outcomes', async () => {
    const before = await calls();
    await sale(ledgerOn(client, { functions: false }));
    const after = await calls();
    expect(after.fcall, 'no FCALL').toBe(before.fcall);
    expect(after.evalsha - before.evalsha).toBeGreaterThanOrEqual(6);
  });

  it('a server that refuses FCALL (an ACL here) gets EVALSHA, from the first call on', async () => {
    const { client: limited, drop } = await userWithout(['fcall', 'fcall_ro']);
    try {
      const before = await calls();
      await sale(ledgerOn(limited));
      const after = await calls();
      expect(after.evalsha - before.evalsha).toBeGreaterThanOrEqual(6);
      // Refused once by the ACL (counted as a call that was rejected, not run), then never tried again.
      expect(after.fcall - before.fcall).toBe(0);
      const stats = String(await rawCommand(server, ['INFO', 'commandstats']));
      expect(stats).toMatch(/cmdstat_fcall:calls=\d+,usec=\d+,usec_per_call=[\d.]+,rejected_calls=[1-9]/);
    } finally {
      await drop();
    }
  });

  it('an error of a function that ran (a Lua error on foreign data) is INVARIANT_VIOLATION, never run again by EVALSHA', async () => {
    const prefix = freshPrefix();
    await client.hset(ledgerKeys(prefix)[0] as string, 'A', 'garbage');
    for (const batch of [true, false]) {
      const ledger = new StockLedger({ store: new RedisStore({ client, prefix, batch }), retry: false });
      // A first read, so the store's layout check is behind it.
      await ledger.stock('B');
      const before = await calls();
      expect(await codeOf(() => ledger.restock({ requestId: `r-${String(batch)}`, sku: 'A', qty: 1 }))).toBe('INVARIANT_VIOLATION');
      const after = await calls();
      expect(after.evalsha, 'not sent again by EVALSHA').toBe(before.evalsha);
      expect(after.fcall).toBe(before.fcall + 1);
    }
  });
});

describeRedis(
  'Redis store: a server that refuses FUNCTION LOAD',
  () => {
    redisSuiteHooks((started, connected) => {
      server = started;
      client = connected;
    });

    it('with no library loaded and FUNCTION LOAD denied, calls go by EVALSHA and the sale is right', async () => {
      await client.call('FUNCTION', 'FLUSH');
      const { client: limited, drop } = await userWithout(['function']);
      try {
        const before = await calls();
        await sale(ledgerOn(limited));
        const after = await calls();
        expect(after.evalsha - before.evalsha).toBeGreaterThanOrEqual(6);
        // One FCALL found no function; the load was denied; no FCALL after that.
        expect(after.fcall - before.fcall).toBeLessThanOrEqual(1);
        expect(await client.call('FUNCTION', 'LIST')).toEqual([]);
      } finally {
        await drop();
      }
    });
  },
  { needsSpawn: true },
);
