/**
 * `npm run bench`: every store against its raw baseline, in one run, at several counts of
 * operations in flight, on five workloads (bench/workloads.ts): 10,000 SKUs; one hot SKU with
 * more buyers than units; the same SKU stocked so that every deduct succeeds (the write path
 * under contention); three-line carts over the 10,000 SKUs (one all-or-none deduct each); and a
 * checkout mix over them (reserve one to three lines, then commit 80% / release 20%; the pair is
 * one operation). Each raw baseline runs the same operations, hand-written. After every
 * measurement the bench checks the store against the load: the units sold are what left the
 * store, nothing is left reserved, and a well-stocked workload rejected nothing. The stores'
 * twins (with a policy, traced) run on the first two workloads only. Prints a table per workload
 * and the issues' targets as ratios from this run; a full run also writes bench/results.md and
 * bench/chart.svg.
 *
 * Knobs: BENCH_ROUND_MS (time per measurement, default 1500), BENCH_SLICES (turns it is cut
 * into, default 3), BENCH_WARMUP_MS (default 300),
 * BENCH_CONCURRENCY (default 1,16,64,256), BENCH_ONLY=memory|sqlite|redis|postgres,
 * BENCH_WORKLOADS (comma list of workload ids: spread, hot, stocked, carts, checkout; or names
 * without a comma; default all), BENCH_HOT_UNITS (default 2000), REDIS_URL (default
 * redis://127.0.0.1:6379), PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { arch, cpus, platform, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { chartSvg } from './chart.js';
import { memoryContenders, sqliteContenders, type Contender, type Group, type Runner } from './contenders.js';
import { LoadSession, type Measurement } from './load.js';
import { DEFAULT_PG_URL, probePostgres, rawPostgresContenders } from './raw-postgres.js';
import { DEFAULT_REDIS_URL, probeRedis, rawRedisContender } from './raw-redis.js';
import { postgresStoreContenders } from './postgres-store.js';
import { redisStoreContenders } from './redis-store.js';
import { fmtInt, fmtMs, markdown, printTargets, printWorkload } from './report.js';
import { checkTargets, Results } from './results.js';
import { allWorkloads, perform, type Workload } from './workloads.js';

const DEFAULT_IN_FLIGHT = [1, 16, 64, 256];
const ROUND_MS = envInt('BENCH_ROUND_MS', 1500, 50, 60_000);
const WARMUP_MS = envInt('BENCH_WARMUP_MS', 300, 0, 10_000);
const SLICES = envInt('BENCH_SLICES', 3, 1, 20);
const HOT_UNITS = envInt('BENCH_HOT_UNITS', 2000, 1, 1_000_000_000);
const IN_FLIGHT = envIntList('BENCH_CONCURRENCY', DEFAULT_IN_FLIGHT, 1, 4096);
const ONLY = envChoice('BENCH_ONLY', ['all', 'memory', 'sqlite', 'redis', 'postgres'] as const);
const ALL_WORKLOADS = allWorkloads(HOT_UNITS);
const WORKLOADS = envWorkloads('BENCH_WORKLOADS', ALL_WORKLOADS);
const REDIS_URL = process.env['REDIS_URL'] || DEFAULT_REDIS_URL;
const PG_URL = process.env['PG_URL'] || DEFAULT_PG_URL;
/** Hard cap on operations per measurement, whatever the clock says. */
const OPS_PER_MEASUREMENT_MAX = 50_000_000;
/** In flight during the warmup that precedes a contender's first measurement. */
const WARMUP_IN_FLIGHT = 16;
const KNOBS = ['BENCH_ROUND_MS', 'BENCH_SLICES', 'BENCH_WARMUP_MS', 'BENCH_CONCURRENCY', 'BENCH_ONLY', 'BENCH_WORKLOADS', 'BENCH_HOT_UNITS', 'REDIS_URL', 'PG_URL'];

/** A full garbage collection before each measurement, so none pays for the previous one's garbage. */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

function envInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}`);
  return value;
}

function envIntList(name: string, fallback: number[], min: number, max: number): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const values = raw.split(',').map(Number);
  if (values.some((v) => !Number.isSafeInteger(v) || v < min || v > max)) throw new RangeError(`${name} must list integers from ${min} to ${max}`);
  return values;
}

function envChoice<T extends string>(name: string, choices: readonly T[]): T {
  const raw = process.env[name] || choices[0];
  const found = choices.find((c) => c === raw);
  if (found === undefined) throw new RangeError(`${name} must be one of ${choices.join(', ')}`);
  return found;
}

/** The workloads named in `name` (ids or names, comma-separated), in run order; all when unset. */
function envWorkloads(name: string, all: readonly Workload[]): Workload[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return [...all];
  const wanted = raw.split(',').map((w) => w.trim().toLowerCase());
  const known = (w: Workload, key: string): boolean => w.id === key || w.name.toLowerCase() === key;
  if (wanted.some((key) => !all.some((w) => known(w, key)))) {
    throw new RangeError(`${name} must list workloads by id or name: ${all.map((w) => `${w.id} (${w.name})`).join(', ')}`);
  }
  return all.filter((w) => wanted.some((key) => known(w, key)));
}

/**
 * Checks a measurement against what the store says is left, summed over the workload's SKUs:
 * the units the load sold are the units that left the store (so no run sells more than it
 * had), nothing is left reserved once every checkout committed or released, and a workload
 * stocked plenty rejected nothing. Throws on a mismatch.
 */
async function checkOutcomes(contender: Contender, workload: Workload, m: Measurement, runner: Runner): Promise<void> {
  const what = `${contender.name} on ${workload.name}`;
  if (workload.plenty && m.rejected > 0) throw new Error(`${what} rejected ${m.rejected} operations, stocked plenty`);
  const stocked = workload.skus.length * workload.unitsPerSku;
  const { onHand, reserved } = await runner.totals(workload.skus);
  if (reserved !== 0) throw new Error(`${what}: ${reserved} units still reserved once every operation ended`);
  if (m.unitsSold > stocked || stocked - onHand !== m.unitsSold) {
    throw new Error(`${what}: the load sold ${m.unitsSold} units, the store says ${stocked - onHand}, of ${stocked}`);
  }
}

function sessionOn(runner: Runner, workload: Workload, inFlight: number): LoadSession {
  const pick = workload.picker();
  return new LoadSession({ inFlight, opsMax: OPS_PER_MEASUREMENT_MAX, operation: (i) => perform(runner, `op-${i}`, pick()) });
}

/**
 * Measures every contender of a group at one in-flight count, each on fresh state, in slices
 * that take turns (the order flips every slice), so drift of a shared machine hits them alike.
 */
async function measureGroup(group: readonly Contender[], workload: Workload, inFlight: number, sliceMs: number, slices: number): Promise<Measurement[]> {
  const runners: Runner[] = [];
  try {
    for (const contender of group) runners.push(await contender.open(workload));
    const sessions = runners.map((runner) => sessionOn(runner, workload, inFlight));
    for (let slice = 0; slice < slices; slice += 1) {
      const order = slice % 2 === 0 ? sessions : [...sessions].reverse();
      for (const session of order) {
        collectGarbage();
        const runner = runners[sessions.indexOf(session)] as Runner;
        const stop = runner.onSlice?.();
        try {
          await session.run(sliceMs);
        } finally {
          stop?.();
        }
      }
    }
    const measurements = sessions.map((session) => session.result());
    for (const [i, contender] of group.entries()) await checkOutcomes(contender, workload, measurements[i] as Measurement, runners[i] as Runner);
    return measurements;
  } finally {
    for (const runner of runners) await runner.close();
  }
}

/** The contenders of the run, by group, and a note for each one skipped. */
async function contendersOf(dir: string): Promise<{ groups: Contender[][]; notes: string[] }> {
  const wanted = (group: Group): boolean => ONLY === 'all' || ONLY === group;
  const groups: Contender[][] = [];
  const notes: string[] = [];
  if (wanted('memory')) groups.push(memoryContenders());
  if (wanted('sqlite')) groups.push(sqliteContenders(dir));
  if (wanted('redis')) await addRedis(groups, notes);
  if (wanted('postgres')) await addPostgres(groups, notes);
  return { groups, notes };
}

async function addRedis(groups: Contender[][], notes: string[]): Promise<void> {
  const redis = await probeRedis(REDIS_URL);
  if ('error' in redis) {
    notes.push(`Redis rows skipped: no Redis at ${REDIS_URL} (${redis.error})`);
    return;
  }
  notes.push(`Redis ${redis.version} at ${REDIS_URL}, one ioredis connection per contender`);
  groups.push([rawRedisContender(REDIS_URL), ...redisStoreContenders(REDIS_URL)]);
}

async function addPostgres(groups: Contender[][], notes: string[]): Promise<void> {
  const server = await probePostgres(PG_URL);
  if ('error' in server) {
    notes.push(`PostgreSQL rows skipped: no PostgreSQL at ${PG_URL} (${server.error})`);
    return;
  }
  notes.push(`PostgreSQL ${server.version} at ${PG_URL.replace(/\/\/[^@/]*@/, '//')}, a pg pool per contender, a fresh schema per measurement`);
  groups.push([...rawPostgresContenders(PG_URL), ...postgresStoreContenders(PG_URL)]);
}

/** The contenders of a group that run on `workload`: the stores' twins only where it asks for them. */
function contendersOn(group: readonly Contender[], workload: Workload): Contender[] {
  return group.filter((c) => workload.twins || c.twin !== true);
}

async function runGroup(all: readonly Contender[], workload: Workload, results: Results, warm: Set<Contender>): Promise<void> {
  const group = contendersOn(all, workload);
  const cold = group.filter((c) => !warm.has(c));
  if (cold.length > 0 && WARMUP_MS > 0) await measureGroup(cold, workload, WARMUP_IN_FLIGHT, WARMUP_MS, 1);
  for (const c of cold) warm.add(c);
  for (const inFlight of IN_FLIGHT) {
    const measurements = await measureGroup(group, workload, inFlight, ROUND_MS / SLICES, SLICES);
    for (const [i, contender] of group.entries()) {
      const m = measurements[i] as Measurement;
      const hotUnits = workload.skus.length === 1 ? workload.unitsPerSku : null;
      results.add({ workload: workload.name, contender: contender.name, group: contender.group, baseline: contender.baseline, hotUnits, measurement: m });
      console.log(
        `  ${workload.name.padEnd(16)} ${contender.name.padEnd(28)} ${String(inFlight).padStart(4)} in flight ` +
          `${fmtInt(m.opsPerSecond).padStart(10)} ops/s   p50 ${fmtMs(m.p50Ms).padStart(7)} ms   p99 ${fmtMs(m.p99Ms).padStart(7)} ms`,
      );
    }
  }
}

function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpus().length} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${platform()} ${arch()}; SQLite files in ${tmpdir()}`;
}

function command(): string {
  const set = KNOBS.filter((k) => process.env[k] !== undefined && process.env[k] !== '').map((k) => `${k}=${process.env[k]}`);
  return [...set, 'npm run bench'].join(' ');
}

function method(): string {
  return (
    `Closed loop: N workers (N = operations in flight) each await one operation under a fresh request id, then ` +
    `issue the next, for about ${ROUND_MS} ms per measurement, after a ${WARMUP_MS} ms warmup per contender. Every ` +
    `measurement starts on fresh state (new map, new SQLite file, new Redis key prefix, new PostgreSQL schema); the ` +
    `contenders of one engine are measured in ${SLICES} slices that take turns (order flipped every slice), so a ` +
    `slow spell of the machine hits them alike. ` +
    `ops/s counts completed operations, INSUFFICIENT_STOCK rejections included; p50 and p99 come from a log-bucketed ` +
    `histogram (within about 1%). SQLite runs WAL at synchronous=FULL on every side. Workloads: "10k SKUs" deducts ` +
    `1 unit of one of 10,000 well-stocked SKUs picked at random; "hot SKU" starts one SKU with ${fmtInt(HOT_UNITS)} ` +
    `units, so once it sells out most deducts are rejections; "hot SKU, stocked" gives that SKU 1,000,000,000 units, ` +
    `so every deduct succeeds (the write path under contention); "3-line carts" is one all-or-none deduct of 1 unit ` +
    `of each of 3 distinct SKUs of the 10,000 (one operation = one cart); "checkout" reserves 1 unit of each of 1 to ` +
    `3 distinct SKUs of the 10,000 (15-minute TTL), then commits the reservation (80%) or releases it (20%): one ` +
    `operation is the whole pair, two calls, its latency from the reserve's start to the commit's or release's end. ` +
    `Each raw baseline runs the same operations (its own multi-line deduct, reserve, commit and release). After ` +
    `every measurement the bench checks that the units the load sold are the units that left the store, that ` +
    `nothing is left reserved, and that a well-stocked workload rejected nothing. The stores' twins (with a policy, ` +
    `traced) run on the first two workloads only. On the hot SKU a rejection writes nothing (no fsync), so its ` +
    `ratios mostly compare rejection paths, and its p99/p50 sets the few sales against the many rejections.`
  );
}

function writeOutputs(results: Results, workloads: readonly string[], notes: readonly string[], startedAt: Date): void {
  const checks = checkTargets(results, workloads);
  const md = markdown({ results, workloads, checks, machine: machine(), date: startedAt, command: command(), method: method(), notes });
  writeFileSync(new URL('./results.md', import.meta.url), md);
  const subtitle = `${machine().split(';')[0] ?? ''}; ${startedAt.toISOString().slice(0, 10)}; ~${ROUND_MS} ms per point`;
  writeFileSync(new URL('./chart.svg', import.meta.url), chartSvg({ results, workloads, inFlight: IN_FLIGHT, subtitle }));
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-bench-'));
  const onSignal = (): void => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const { groups, notes } = await contendersOf(dir);
  try {
    console.log(`stock-ledger bench: ${machine()}`);
    for (const note of notes) console.log(`note: ${note}`);
    console.log(`${ROUND_MS} ms per measurement in ${SLICES} slices, in flight ${IN_FLIGHT.join(', ')}; workloads: ${WORKLOADS.map((w) => w.name).join('; ')}\n`);
    const results = new Results();
    const warm = new Set<Contender>();
    for (const workload of WORKLOADS) for (const group of groups) await runGroup(group, workload, results, warm);
    const names = WORKLOADS.map((w) => w.name).filter((name) => results.rows.some((r) => r.workload === name));
    for (const name of names) printWorkload(results, name);
    printTargets(checkTargets(results, names));
    const seconds = ((Date.now() - startedAt.getTime()) / 1000).toFixed(0);
    const full = ONLY === 'all' && IN_FLIGHT.join() === DEFAULT_IN_FLIGHT.join() && WORKLOADS.length === ALL_WORKLOADS.length;
    if (full) writeOutputs(results, names, notes, startedAt);
    console.log(full ? `\nwritten: bench/results.md, bench/chart.svg (${seconds} s in all)` : `\npartial run: bench/results.md and bench/chart.svg left as they were (${seconds} s)`);
  } finally {
    for (const group of groups) for (const contender of group) await contender.dispose?.();
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

await main();
