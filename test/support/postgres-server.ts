/**
 * PostgreSQL for the tests: `PG_URL` when set (a server someone else runs), else a cluster of
 * our own started with initdb/pg_ctl on a free loopback port in a temp directory. Without
 * either the PostgreSQL suites skip, saying why; with `CI=true` they fail instead. Each test
 * file works in a database of its own, dropped afterwards.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe } from 'vitest';

const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function onPath(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' }).status === 0;
}

/** Whether this machine can start a cluster of its own (initdb refuses root: we run it as `postgres`). */
export function canStartOwnCluster(): boolean {
  if (!onPath('initdb') || !onPath('pg_ctl')) return false;
  if (!runningAsRoot) return true;
  return onPath('runuser') && spawnSync('id', ['-u', 'postgres']).status === 0;
}

/** Why the PostgreSQL suites cannot run here, or null when they can. */
export function unavailableReason(): string | null {
  if ((process.env['PG_URL'] ?? '') !== '') return null;
  if (canStartOwnCluster()) return null;
  return 'no PostgreSQL: PG_URL is not set and initdb/pg_ctl are not on PATH (install postgresql, or set PG_URL)';
}

/**
 * `describe` for a PostgreSQL suite: skipped with the reason printed when no server can be had,
 * a failure under CI=true (a CI run that skips its database tests proves nothing).
 */
export function describePostgres(name: string, body: () => void): void {
  const reason = unavailableReason();
  if (reason !== null && process.env['CI'] === 'true') throw new Error(`${name}: ${reason} (CI=true: failing instead of skipping)`);
  if (reason !== null) console.warn(`skipping ${name}: ${reason}`);
  describe.skipIf(reason !== null)(name, body);
}

/** A `describe` that needs a cluster of our own (to restart it): same rules, own reason. */
export function describeOwnCluster(name: string, body: () => void): void {
  const reason = canStartOwnCluster() ? null : 'cannot start a PostgreSQL cluster of its own: initdb/pg_ctl (and, as root, runuser and a postgres user) needed';
  if (reason !== null && process.env['CI'] === 'true') throw new Error(`${name}: ${reason} (CI=true: failing instead of skipping)`);
  if (reason !== null) console.warn(`skipping ${name}: ${reason}`);
  describe.skipIf(reason !== null)(name, body);
}

/** A server to test against. */
export interface PostgresServer {
  /** URL of its `postgres` database. */
  url: string;
  /** True for a cluster this process started (it can be restarted and is stopped by `stop`). */
  own: boolean;
  /** `pg_ctl restart -m immediate`: a crash and recovery (own clusters only). */
  crashRestart(): void;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function asPostgresUser(command: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const [bin, argv] = runningAsRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  const result = spawnSync(bin, argv, { encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

function must(result: { status: number | null; stdout: string; stderr: string }, what: string): void {
  if (result.status !== 0) throw new Error(`${what} failed (${result.status}): ${result.stderr}${result.stdout}`);
}

/**
 * Starts a cluster of our own: initdb (trust auth, user postgres) in a fresh temp directory
 * owned by the `postgres` user, then pg_ctl start on a free loopback port, its socket in that
 * directory.
 */
export async function startOwnCluster(): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-pg-'));
  if (runningAsRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const data = join(dir, 'data');
  must(asPostgresUser('initdb', ['-D', data, '--auth=trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']), 'initdb');
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=64MB`;
  const start = (): void => must(asPostgresUser('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']), 'pg_ctl start');
  start();
  let stopped = false;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    asPostgresUser('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopSync);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    own: true,
    crashRestart: () => must(asPostgresUser('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-m', 'immediate', '-w', '-t', '60', 'restart']), 'pg_ctl restart'),
    stop: async () => stopSync(),
  };
}

/** The server the suites use: PG_URL's, or a cluster of our own. */
export async function startPostgres(): Promise<PostgresServer> {
  const url = process.env['PG_URL'] ?? '';
  if (url !== '') {
    return { url, own: false, crashRestart: () => { throw new Error('PG_URL server: not ours to restart'); }, stop: async () => {} };
  }
  return startOwnCluster();
}

let databases = 0;

/** A database of its own on `server`, for one test file; `drop()` removes it (closing what is still connected). */
export async function createDatabase(server: PostgresServer, label: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  databases += 1;
  const name = `sl_${label.replace(/[^a-z0-9_]/g, '_')}_${process.pid}_${databases}_${Date.now() % 1_000_000}`;
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * A pg Pool that hears its idle connections' errors (pg requires a listener: a connection
 * that dies while idle, as when the test's database is dropped, emits 'error' on the pool).
 */
export function quietPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on('error', () => {});
  return pool;
}
