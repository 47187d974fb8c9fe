/**
 * The `stock-ledger` command line, run as a user runs it: the BUILT bin (`node
 * dist/cli/index.js`) as a child process, against real stores seeded through the library.
 * SQLite always runs; Redis (127.0.0.1:6379 or REDIS_URL) and PostgreSQL (PG_URL) skip,
 * saying why, when there is no server, and fail instead under CI=true.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { StockLedger, type StockStore } from 'stock-ledger';
import { PostgresStore } from 'stock-ledger/postgres';
import { RedisStore } from 'stock-ledger/redis';
import { SqliteStore } from 'stock-ledger/sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCi, rawCommand } from './support/redis-server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'dist/cli/index.js');
const RUN_TIMEOUT_MS = 20_000;
const BUILD_TIMEOUT_MS = 180_000;
const COMMANDS = ['verify', 'stock', 'levels', 'entries', 'events', 'request', 'reservation', 'holds', 'sweep', 'compact'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built bin to completion (bounded by RUN_TIMEOUT_MS). */
function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: root, env: cleanEnv(env), timeout: RUN_TIMEOUT_MS }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The environment without a store set from outside, so "missing --store" means missing. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (extra['STOCK_LEDGER_STORE'] === undefined) delete env['STOCK_LEDGER_STORE'];
  return env;
}

/** Polls `check` every 25 ms until true, failing after `ms`. */
async function waitFor(what: string, ms: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * The same small ledger on every store: A restocked 10, deducted 2, one live hold of 1 (cart-1,
 * buyer c7) and one hold of B already due (cart-old, made with a clock two minutes back).
 */
async function seed(store: () => StockStore): Promise<void> {
  const ledger = new StockLedger({ store: store() });
  await ledger.restock({ requestId: 'po-1', lines: [{ sku: 'A', qty: 10 }, { sku: 'B', qty: 5 }] });
  await ledger.deduct({ requestId: 'o-1', sku: 'A', qty: 2, meta: { orderId: 1 } });
  await ledger.reserve({ requestId: 'cart-1', lines: [{ sku: 'A', qty: 1 }], ttlMs: 3_600_000, buyer: 'c7' });
  const past = new StockLedger({ store: store(), clock: () => Date.now() - 120_000 });
  await past.reserve({ requestId: 'cart-old', lines: [{ sku: 'B', qty: 2 }], ttlMs: 1000 });
  await ledger.close();
  await past.close();
}

beforeAll(() => {
  // Built here, so the bin under test is never a stale dist.
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}, BUILD_TIMEOUT_MS);

/** Every command's human and JSON output and exit code, on a seeded store behind `url()`. */
function commandTests(url: () => string): void {
  it('verify: ok, exit 0, human and --json', async () => {
    const human = await cli(['verify', '--store', url()]);
    expect(human).toMatchObject({ code: 0, stderr: '' });
    expect(human.stdout).toMatch(/^ok: 2 SKUs checked, no drift/);
    const json = await cli(['verify', '--store', url(), '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ ok: true, skusChecked: 2, drift: [] });
  });

  it('stock: a table, and the levels as JSON', async () => {
    const human = await cli(['stock', 'A', 'B', 'NONE', '--store', url()]);
    expect(human.code).toBe(0);
    const rows = human.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
    expect(rows[0]).toEqual(['SKU', 'ON HAND', 'RESERVED', 'AVAILABLE', 'VERSION']);
    expect(rows.slice(1).map((r) => r.slice(0, 4))).toEqual([['A', '8', '1', '7'], ['B', '5', '0', '5'], ['NONE', '0', '0', '0']]);
    const json = await cli(['stock', 'A', '--json', '--store', url()]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([{ sku: 'A', onHand: 8, reserved: 1, available: 7, version: 3 }]);
  });

  it('entries: a page, --after, --sku and --limit, human and JSON', async () => {
    const human = await cli(['entries', '--store', url()]);
    expect(human.code).toBe(0);
    expect(human.stdout.split('\n')[0]).toMatch(/^SEQ\s+AT\s+KIND\s+SKU/);
    expect(human.stdout).toMatch(/\n3\s+\S+\s+deduct\s+A\s+8 \(-2\)\s+0 \(0\)\s+o-1/);
    const json = await cli(['entries', '--json', '--after', '1', '--sku', 'A', '--limit', '2', '--store', url()]);
    expect(json.code).toBe(0);
    const page = JSON.parse(json.stdout) as { entries: { seq: number; kind: string }[]; next: number };
    expect(page.entries.map((e) => [e.seq, e.kind])).toEqual([[3, 'deduct'], [4, 'reserve']]);
    expect(page.next).toBe(4);
  });

  it('request: the stored outcome; unknown is "not found" with exit 1', async () => {
    const human = await cli(['request', 'o-1', '--store', url()]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^request o-1: deduct at /);
    const json = await cli(['request', 'o-1', '--json', '--store', url()]);
    expect(JSON.parse(json.stdout)).toMatchObject({ requestId: 'o-1', kind: 'deduct', ok: true, entries: [{ sku: 'A', onHandDelta: -2, meta: { orderId: 1 } }] });
    const missing = await cli(['request', 'nope', '--store', url()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('not found');
    const missingJson = await cli(['request', 'nope', '--json', '--store', url()]);
    expect(missingJson.code).toBe(1);
    expect(JSON.parse(missingJson.stdout)).toBeNull();
  });

  it('reservation: its state and lines; unknown is "not found" with exit 1', async () => {
    const human = await cli(['reservation', 'cart-1', '--store', url()]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^reservation cart-1: held\n/);
    expect(human.stdout).toContain('buyer c7');
    const json = await cli(['reservation', 'cart-1', '--json', '--store', url()]);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: 'cart-1', state: 'held', lines: [{ sku: 'A', qty: 1 }], buyer: 'c7' });
    const due = await cli(['reservation', 'cart-old', '--json', '--store', url()]);
    expect(JSON.parse(due.stdout)).toMatchObject({ id: 'cart-old', state: 'expired' });
    const missing = await cli(['reservation', 'nope', '--store', url()]);
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.stderr).toContain('not found');
  });

  it('holds: the live holds of a SKU', async () => {
    const human = await cli(['holds', 'A', '--store', url()]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^RESERVATION\s+QTY\s+EXPIRES\s+BUYER\ncart-1\s+1\s+\S+\s+c7\n$/);
    const json = await cli(['holds', 'A', '--limit', '5', '--json', '--store', url()]);
    expect(JSON.parse(json.stdout)).toMatchObject({ holds: [{ reservationId: 'cart-1', sku: 'A', qty: 1, buyer: 'c7' }], next: null });
    const none = await cli(['holds', 'B', '--store', url()]);
    expect(none.stdout.trim()).toBe('no live holds of B');
  });

  it('sweep: expires the due hold, then finds none (never exit 1)', async () => {
    const json = await cli(['sweep', '--json', '--limit', '10', '--store', url()]);
    expect(json.code).toBe(0);
    const result = JSON.parse(json.stdout) as { expired: number; more: boolean; entries: { kind: string; requestId: string }[] };
    expect(result).toMatchObject({ expired: 1, more: false });
    expect(result.entries.map((e) => [e.kind, e.requestId])).toEqual([['expire', 'cart-old']]);
    const again = await cli(['sweep', '--store', url()]);
    expect(again).toMatchObject({ code: 0, stdout: 'expired 0 holds; none left due\n' });
  });

  it('levels: every SKU over pages of any size, and --below for low stock', async () => {
    const human = await cli(['levels', '--store', url()]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^SKU\s+ON HAND\s+RESERVED\s+AVAILABLE\s+VERSION\nA\s+8\s+1\s+7\s+3\nB\s+5\s+0\s+5\s+\d+\n$/);
    const paged = await cli(['levels', '--limit', '1', '--json', '--store', url()]);
    expect((JSON.parse(paged.stdout) as { sku: string }[]).map((l) => l.sku)).toEqual(['A', 'B']);
    const low = await cli(['levels', '--below', '6', '--json', '--store', url()]);
    expect(JSON.parse(low.stdout)).toMatchObject([{ sku: 'B', available: 5 }]);
    const none = await cli(['levels', '--below=-1', '--store', url()]);
    expect(none).toMatchObject({ code: 0, stdout: 'no SKUs\n' });
  });

  it('events: the crossings with their cursors, a default threshold, and --after a cursor', async () => {
    const plain = await cli(['events', '--json', '--store', url()]);
    expect(plain.code, plain.stderr).toBe(0);
    const parse = (out: string): { type: string; sku: string; available: number; threshold: number; cursor: string }[] =>
      out.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { type: string; sku: string; available: number; threshold: number; cursor: string });
    expect(parse(plain.stdout).map((e) => [e.type, e.sku, e.available])).toEqual([['replenished', 'A', 10], ['replenished', 'B', 5]]);
    const low = parse((await cli(['events', '--low-stock-at', '7', '--json', '--store', url()])).stdout);
    expect(low.map((e) => [e.type, e.sku, e.available, e.threshold])).toEqual([['replenished', 'A', 10, 7], ['belowThreshold', 'A', 7, 7]]);
    const rest = parse((await cli(['events', '--low-stock-at', '7', '--after', low[0]?.cursor ?? '', '--json', '--store', url()])).stdout);
    expect(rest.map((e) => e.type)).toEqual(['belowThreshold']);
    const human = await cli(['events', '--low-stock-at', '7', '--store', url()]);
    expect(human.stdout).toMatch(/ belowThreshold A: available 8 -> 7 \(threshold 7\), entry #\d+ reserve cart-1; cursor \d+\n$/);
  });
}

// ---------------------------------------------------------------------------------------------
// SQLite: every command, plus what does not depend on the store

describe('cli on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-cli-'));
  const path = join(dir, 'stock.db');
  const url = `sqlite:${path}`;

  beforeAll(async () => {
    await seed(() => new SqliteStore({ path }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  commandTests(() => url);

  it('takes the store from STOCK_LEDGER_STORE', async () => {
    const run = await cli(['stock', 'A', '--json'], { STOCK_LEDGER_STORE: url });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject([{ sku: 'A', onHand: 8 }]);
  });

  it('verify: a progress line on a terminal (through a pseudo-terminal), none in a pipe', () => {
    const tty = spawnSync('script', ['-qec', `${process.execPath} ${BIN} verify --store ${url}`, '/dev/null'],
      { cwd: root, encoding: 'utf8', timeout: RUN_TIMEOUT_MS, env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toMatch(/verify: 1 chunk done, 2 SKUs checked/);
    expect(tty.stdout).toContain('\r\x1b[K'); // cleared before the report
    expect(tty.stdout).toContain('ok: 2 SKUs checked');
    const piped = spawnSync(process.execPath, [BIN, 'verify', '--store', url], { cwd: root, encoding: 'utf8', timeout: RUN_TIMEOUT_MS, env: cleanEnv({}) });
    expect(piped.status).toBe(0);
    expect(piped.stderr).toBe('');
    expect(piped.stdout).not.toContain('chunk');
  });

  it('entries --follow prints an entry appended after it started, and exits 0 on SIGINT', async () => {
    const child = spawn(process.execPath, [BIN, 'entries', '--follow', '--interval-ms', '50', '--json', '--store', url], { cwd: root, env: cleanEnv({}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const lines = (): { requestId: string; seq: number }[] => stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { requestId: string; seq: number });
      await waitFor('the seeded entries', 10_000, () => lines().some((e) => e.requestId === 'cart-old'));
      const ledger = new StockLedger({ store: new SqliteStore({ path }) });
      await ledger.restock({ requestId: 'po-follow', sku: 'C', qty: 3 });
      await ledger.close();
      await waitFor('the appended entry', 10_000, () => lines().some((e) => e.requestId === 'po-follow'));
      const seqs = lines().map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // each entry once, in order
      child.kill('SIGINT');
      const code = await Promise.race([exited, sleep(10_000).then(() => 'still running')]);
      expect(code, stderr).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('verify: drift exits 1 and names the invariant (a level row corrupted by hand)', async () => {
    const db = new Database(path);
    db.prepare("UPDATE stock_ledger_levels SET on_hand = on_hand + 1 WHERE sku = 'B'").run();
    db.close();
    const human = await cli(['verify', '--store', url]);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^DRIFT: 3 SKUs checked/);
    expect(human.stdout).toMatch(/\nB\s+fold\s+stored/);
    const json = await cli(['verify', '--json', '--store', url]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, drift: [{ sku: 'B', invariant: 'fold' }] });
  });
});

describe('cli compact on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-cli-compact-'));
  const path = join(dir, 'stock.db');
  const url = `sqlite:${path}`;

  beforeAll(async () => {
    await seed(() => new SqliteStore({ path }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('compact --window: nothing inside the window goes; with a window of 0, all up to the held cart, with a progress line on a terminal', async () => {
    const kept = await cli(['compact', '--window', '1h', '--json', '--store', url]);
    expect(kept.code, kept.stderr).toBe(0);
    expect(JSON.parse(kept.stdout)).toMatchObject({ requests: 0, reservations: 0, entries: 0, compactedThrough: 0 });
    await sleep(5);
    const tty = spawnSync('script', ['-qec', `${process.execPath} ${BIN} compact --window 0 --store ${url}`, '/dev/null'],
      { cwd: root, encoding: 'utf8', timeout: RUN_TIMEOUT_MS, env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(tty.status, tty.stderr).toBe(0);
    expect(tty.stdout).toMatch(/compact: 1 step done, 3 entries removed/);
    // po-1 (A, B) and o-1 go; cart-1 is held: its reserve entry (seq 4) and all after it stay.
    expect(tty.stdout).toMatch(/removed 2 request records, 0 reservations, 3 entries older than \S+ in 1 step; the feed now starts after seq 3/);
    const verify = await cli(['verify', '--store', url]);
    expect(verify).toMatchObject({ code: 0, stdout: 'ok: 2 SKUs checked, no drift\n' });
    const behind = await cli(['entries', '--after', '0', '--store', url]);
    expect(behind.code).toBe(1);
    expect(behind.stderr).toMatch(/compacted: the follower fell behind/);
    const from = await cli(['entries', '--json', '--store', url]);
    expect((JSON.parse(from.stdout) as { entries: { seq: number }[] }).entries[0]?.seq).toBe(4);
    expect((await cli(['request', 'o-1', '--store', url])).code).toBe(1);
    expect((await cli(['stock', 'A', '--json', '--store', url])).stdout).toMatch(/"onHand": 8/);
  });

  it('compact without --window, or with a bad one, is a usage error', async () => {
    for (const args of [['compact'], ['compact', '--window', '7 days'], ['compact', '--window', '-1']]) {
      const run = await cli([...args, '--store', url]);
      expect(run.code, args.join(' ')).toBe(2);
    }
  });
});

describe('cli usage', () => {
  it('--help and -h print usage and exit 0, at top level and on every command, without a store', async () => {
    for (const args of [['--help'], ['-h'], ...COMMANDS.flatMap((c) => [[c, '--help'], [c, '-h']])]) {
      const run = await cli(args);
      expect(run.code, args.join(' ')).toBe(0);
      expect(run.stdout, args.join(' ')).toMatch(/^Usage: stock-ledger/);
      if (args[0] !== '--help' && args[0] !== '-h') expect(run.stdout).toContain(`stock-ledger ${args[0]}`);
    }
  });

  it('exit 2 for usage errors: no command, unknown command or flag, missing argument, missing --store, bad URL', async () => {
    const cases: string[][] = [
      [],
      ['bogus', '--store', 'sqlite:x.db'],
      ['verify', '--bogus', '--store', 'sqlite:x.db'],
      ['stock', '--store', 'sqlite:x.db'],
      ['entries', '--limit', 'ten', '--store', 'sqlite:x.db'],
      ['verify'],
      ['verify', '--store', 'ftp://example.com/x'],
      ['verify', '--store', 'redis://127.0.0.1:6379'], // no prefix
      ['verify', '--store', 'sqlite:'],
      ['verify', '--store', `sqlite:${join(tmpdir(), 'no-such-dir-stock-ledger', 'x.db')}`],
    ];
    for (const args of cases) {
      const run = await cli(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr, args.join(' ')).toMatch(/^stock-ledger: /);
    }
    expect((await cli(['verify'])).stderr).toContain('--store');
  });

  it('exit 2 when the store cannot be reached', async () => {
    const run = await cli(['verify', '--store', 'postgres://postgres@127.0.0.1:1/postgres']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('cannot connect to PostgreSQL');
  });
});

// ---------------------------------------------------------------------------------------------
// Redis and PostgreSQL: the same commands, on real servers

const REDIS_URL = process.env['REDIS_URL'] !== undefined && process.env['REDIS_URL'] !== '' ? process.env['REDIS_URL'] : 'redis://127.0.0.1:6379';

async function redisReason(): Promise<string | false> {
  const { hostname, port } = new URL(REDIS_URL);
  try {
    await rawCommand({ host: hostname, port: Number(port === '' ? 6379 : port) }, ['PING']);
    return false;
  } catch (error) {
    return `no Redis at ${REDIS_URL} (${error instanceof Error ? error.message : String(error)})`;
  }
}

function pgReason(): string | false {
  return (process.env['PG_URL'] ?? '') === '' ? 'PG_URL is not set' : false;
}

/** describe.skipIf with the reason printed; under CI a missing server fails instead. */
function describeServer(name: string, reason: string | false, body: () => void): void {
  if (reason !== false && isCi()) throw new Error(`${name}: ${reason} (CI=true: failing instead of skipping)`);
  if (reason !== false) console.warn(`skipping ${name}: ${reason}`);
  describe.skipIf(reason !== false)(reason === false ? name : `${name} (${reason})`, body);
}

const unique = `${process.pid}_${Date.now().toString(36)}`;

describeServer('cli on Redis', await redisReason(), () => {
  const prefix = `cli-test-${unique}`;
  let client: Redis;

  beforeAll(async () => {
    client = new Redis(REDIS_URL);
    await seed(() => new RedisStore({ client, prefix }));
  });
  afterAll(async () => {
    const keys = await client.keys(`*{${prefix}}*`);
    if (keys.length > 0) await client.del(...keys);
    await client.quit();
  });

  commandTests(() => `${REDIS_URL}?prefix=${prefix}`);
});

describeServer('cli on PostgreSQL', pgReason(), () => {
  const schema = `cli_test_${unique}`;
  let pool: pg.Pool;
  const url = (): string => {
    const u = new URL(process.env['PG_URL'] ?? '');
    u.searchParams.set('schema', schema);
    return u.toString();
  };

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: process.env['PG_URL'] });
    await seed(() => new PostgresStore({ client: pool, schema }));
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  commandTests(url);
});
