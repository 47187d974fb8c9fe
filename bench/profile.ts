/**
 * Where the time of one deduct goes: a closed loop of deducts (1 unit of one of 10,000 SKUs, at
 * random) against one contender, then ops/s, the CPU this process spent per deduct and, for Redis,
 * the CPU the server spent per deduct (`INFO cpu`) and per command (`INFO commandstats`, as a
 * difference, so the server's counters are not reset). Not a benchmark (no baseline in the same
 * run, one slice): the bench (`npm run bench`) gives the ratios; this says which side is busy.
 *
 *   npx tsx bench/profile.ts <contender> [seconds]
 *
 * contenders: redis-raw, redis, redis-unbatched, redis-evalsha, redis-evalsha-unbatched,
 * sqlite-raw, sqlite. BENCH_CONCURRENCY sets the operations in flight (default 64); REDIS_URL
 * the server. Add `node --cpu-prof` (via `node --import tsx --cpu-prof bench/profile.ts ...`) for
 * this process's own profile.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StockLedger } from 'stock-ledger';
import { RedisStore } from 'stock-ledger/redis';
import { SqliteStore } from 'stock-ledger/sqlite';
import type { Redis } from 'ioredis';
import { RawSqliteBatch } from './raw-sqlite-batch.js';
import { DEFAULT_REDIS_URL, RawRedisStock, connectRedis, deleteKeysOf, freshPrefix } from './raw-redis.js';

const SKUS = Array.from({ length: 10_000 }, (_, i) => `sku-${i}`);
const UNITS = 1_000_000_000;
const CONTENDERS = ['redis-raw', 'redis', 'redis-unbatched', 'redis-evalsha', 'redis-evalsha-unbatched', 'sqlite-raw', 'sqlite'] as const;
type ContenderName = (typeof CONTENDERS)[number];

interface Subject {
  deduct(requestId: string, sku: string): Promise<unknown>;
  /** Server CPU seconds and per-command stats, for a server-side contender. */
  server?: () => Promise<ServerStats>;
  close(): Promise<void>;
}

interface ServerStats {
  cpuSeconds: number;
  commands: Map<string, { calls: number; usec: number }>;
}

async function serverStats(info: Redis): Promise<ServerStats> {
  const cpu = await info.info('cpu');
  const field = (name: string): number => Number(new RegExp(`${name}:(\\S+)`).exec(cpu)?.[1] ?? 0);
  const commands = new Map<string, { calls: number; usec: number }>();
  for (const m of (await info.info('commandstats')).matchAll(/cmdstat_(\S+?):calls=(\d+),usec=(\d+)/g)) {
    commands.set(m[1] as string, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return { cpuSeconds: field('used_cpu_user') + field('used_cpu_sys'), commands };
}

async function redisSubject(name: ContenderName): Promise<Subject> {
  const url = process.env['REDIS_URL'] || DEFAULT_REDIS_URL;
  const [client, info] = [await connectRedis(url), await connectRedis(url)];
  const prefix = freshPrefix();
  const close = async (): Promise<void> => {
    await deleteKeysOf(client, prefix);
    await client.quit();
    await info.quit();
  };
  if (name === 'redis-raw') {
    const raw = new RawRedisStock({ client, prefix });
    await raw.restockAll(SKUS, UNITS);
    return { deduct: (requestId, sku) => raw.deduct({ requestId, sku, qty: 1 }), server: () => serverStats(info), close };
  }
  const batch = !name.endsWith('unbatched');
  const functions = !name.startsWith('redis-evalsha');
  const ledger = new StockLedger({ store: new RedisStore({ client, prefix, batch, functions }) });
  await seed(ledger);
  return { deduct: (requestId, sku) => ledger.deduct({ requestId, sku, qty: 1 }), server: () => serverStats(info), close };
}

async function sqliteSubject(name: ContenderName): Promise<Subject> {
  const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-profile-'));
  const path = join(dir, 'stock.db');
  const close = async (): Promise<void> => rmSync(dir, { recursive: true, force: true });
  if (name === 'sqlite-raw') {
    const raw = new RawSqliteBatch({ path, synchronous: 'FULL', batchOperationsMax: 100 });
    await raw.restockAll(SKUS, UNITS);
    return { deduct: (requestId, sku) => raw.deduct({ requestId, sku, qty: 1 }), close };
  }
  // Stocked at synchronous=NORMAL (setup only), then measured at FULL, as the bench does.
  const seeding = new StockLedger({ store: new SqliteStore({ path, durability: 'normal' }) });
  await seed(seeding);
  await seeding.close();
  const ledger = new StockLedger({ store: new SqliteStore({ path }) });
  return {
    deduct: (requestId, sku) => ledger.deduct({ requestId, sku, qty: 1 }),
    close: async () => {
      await ledger.close();
      await close();
    },
  };
}

async function seed(ledger: StockLedger): Promise<void> {
  for (let from = 0; from < SKUS.length; from += 100) {
    await Promise.all(SKUS.slice(from, from + 100).map((sku) => ledger.restock({ requestId: `seed-${sku}`, sku, qty: UNITS })));
  }
}

async function loop(subject: Subject, inFlight: number, seconds: number): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let ops = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, worker) => {
      for (let k = 0; performance.now() < deadline; k += 1) {
        await subject.deduct(`p-${worker}-${k}`, SKUS[Math.floor(Math.random() * SKUS.length)] as string);
        ops += 1;
      }
    }),
  );
  return ops;
}

function report(name: string, ops: number, elapsed: number, client: NodeJS.CpuUsage, server: [ServerStats, ServerStats] | null): void {
  const perOp = (seconds: number): string => `${((seconds * 1e6) / ops).toFixed(1)} µs`;
  const clientSeconds = (client.user + client.system) / 1e6;
  console.log(`${name}: ${Math.round(ops / elapsed).toLocaleString('en-US')} deducts/s over ${elapsed.toFixed(1)} s`);
  console.log(`  this process: ${perOp(clientSeconds)} CPU per deduct, busy ${((100 * clientSeconds) / elapsed).toFixed(0)}%`);
  if (server === null) return;
  const [before, after] = server;
  const serverSeconds = after.cpuSeconds - before.cpuSeconds;
  console.log(`  server: ${perOp(serverSeconds)} CPU per deduct, busy ${((100 * serverSeconds) / elapsed).toFixed(0)}%`);
  for (const [command, now] of after.commands) {
    const was = before.commands.get(command) ?? { calls: 0, usec: 0 };
    const calls = now.calls - was.calls;
    if (calls < ops / 100) continue;
    const usec = now.usec - was.usec;
    console.log(`    ${command}: ${(calls / ops).toFixed(2)} calls per deduct, ${(usec / calls).toFixed(2)} µs per call, ${(usec / ops).toFixed(2)} µs per deduct`);
  }
}

const name = process.argv[2] as ContenderName;
if (!CONTENDERS.includes(name)) {
  console.error(`usage: npx tsx bench/profile.ts <${CONTENDERS.join('|')}> [seconds]`);
  process.exit(2);
}
const seconds = Number(process.argv[3] ?? 5);
const inFlight = Number(process.env['BENCH_CONCURRENCY'] ?? 64);
const subject = name.startsWith('redis') ? await redisSubject(name) : await sqliteSubject(name);
const before = subject.server === undefined ? null : await subject.server();
const cpuBefore = process.cpuUsage();
const started = performance.now();
const ops = await loop(subject, inFlight, seconds);
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
const after = subject.server === undefined ? null : await subject.server();
report(`${name}, ${inFlight} in flight`, ops, elapsed, cpu, before === null || after === null ? null : [before, after]);
await subject.close();
