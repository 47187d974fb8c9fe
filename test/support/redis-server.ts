/**
 * Redis servers for the Redis tests.
 *
 * The harness starts its own `redis-server` on a free loopback port in a temporary directory
 * when the binary is on PATH, else uses `REDIS_URL`, else skips with a clear message. With
 * `CI=true` it never skips: a missing Redis is an error there.
 *
 * A spawned server can be killed (SIGKILL included) and restarted on the same port and directory,
 * which the fault tests need (lost AOF tail, restart with `appendfsync always`). Every spawned
 * process is killed when the test worker exits, so no redis-server outlives a run, and the
 * machine's own Redis on 6379 is never touched: ports come from the kernel, never a default.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe } from 'vitest';

/** Loopback only: the test servers must not be reachable from anywhere else. */
export const REDIS_HOST = '127.0.0.1';
/** The message printed (and used as the describe suffix) when Redis tests are skipped. */
export const REDIS_SKIP_REASON = 'Redis tests skipped: no redis-server on PATH and no REDIS_URL';
/** The message used when a test needs a spawned server but only `REDIS_URL` is available. */
export const REDIS_SPAWN_SKIP_REASON =
  'Redis fault tests skipped: they need redis-server on PATH (a REDIS_URL server cannot be killed or restarted)';

const READY_WAIT_MS = 5_000;
const EXIT_WAIT_MS = 5_000;
const POLL_MS = 20;
const PORT_ATTEMPTS_MAX = 5;
const CALL_TIMEOUT_MS = 1_000;
const LOG_TAIL_LINES = 25;

// ---------------------------------------------------------------------------------------------
// Where Redis tests run

/** How the Redis tests of this process run. */
export type RedisTarget = { kind: 'spawn' } | { kind: 'url'; url: string } | { kind: 'skip'; reason: string };

/** What {@link redisTarget} looks at; injectable so the decision itself can be tested. */
export interface RedisTargetProbe {
  env?: NodeJS.ProcessEnv;
  /** Whether `redis-server` is an executable on PATH; defaults to searching `env.PATH`. */
  hasServerBinary?: () => boolean;
}

/** True when `CI` is set to anything but empty, `0` or `false`. */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/** True when `name` is an executable file in one of the directories of `path`. */
export function onPath(name: string, path: string | undefined = process.env.PATH): boolean {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/**
 * Decides how Redis tests run: `spawn` when `redis-server` is on PATH, else `url` when `REDIS_URL`
 * is set, else `skip` with {@link REDIS_SKIP_REASON}. Throws instead of skipping when CI is set.
 *
 * @example
 * const target = redisTarget(); // { kind: 'spawn' } on a machine with redis-server
 */
export function redisTarget(probe: RedisTargetProbe = {}): RedisTarget {
  const env = probe.env ?? process.env;
  const hasBinary = probe.hasServerBinary ?? (() => onPath('redis-server', env.PATH));
  if (hasBinary()) return { kind: 'spawn' };
  const url = env.REDIS_URL;
  if (url !== undefined && url !== '') return { kind: 'url', url };
  if (isCi(env)) throw new Error(`${REDIS_SKIP_REASON}; CI is set, so this is an error, not a skip`);
  return { kind: 'skip', reason: REDIS_SKIP_REASON };
}

/** Options of {@link redisSkipReason} and {@link describeRedis}. */
export interface RedisSkipOptions {
  /** The tests kill, restart or reconfigure the server, or build a cluster: `REDIS_URL` is not enough. */
  needsSpawn?: boolean;
  probe?: RedisTargetProbe;
}

/**
 * The reason to skip Redis tests, or `false` to run them. Never returns a reason under CI (throws).
 *
 * @example
 * const reason = redisSkipReason({ needsSpawn: true });
 * describe.skipIf(reason !== false)(`redis faults ${reason || ''}`, () => { ... });
 */
export function redisSkipReason(options: RedisSkipOptions = {}): string | false {
  const target = redisTarget(options.probe);
  if (target.kind === 'skip') return target.reason;
  if (target.kind === 'url' && options.needsSpawn === true) {
    if (isCi(options.probe?.env ?? process.env)) {
      throw new Error(`${REDIS_SPAWN_SKIP_REASON}; CI is set, so this is an error, not a skip`);
    }
    return REDIS_SPAWN_SKIP_REASON;
  }
  return false;
}

/**
 * `describe` for Redis tests: runs `body` when Redis is available, otherwise prints the reason and
 * registers the block as skipped with the reason in its name. Under CI it throws instead.
 *
 * @example
 * describeRedis('redis store under faults', () => { it('...', async () => { ... }); }, { needsSpawn: true });
 */
export function describeRedis(name: string, body: () => void, options: RedisSkipOptions = {}): void {
  const reason = redisSkipReason(options);
  const unavailable = reason !== false;
  if (unavailable) console.warn(`${name}: ${reason}`);
  // Skipped only when there is no Redis to run against (never under CI: redisSkipReason throws).
  describe.skipIf(unavailable)(unavailable ? `${name} (${reason})` : name, body);
}

// ---------------------------------------------------------------------------------------------
// A raw RESP call, for readiness checks and for looking at a server without a client library

/** A host and port. */
export interface Endpoint {
  host: string;
  port: number;
}

/** A reply of {@link rawCommand}: simple and bulk strings, integers, or null. */
export type RawReply = string | number | null;

/** Parses one RESP reply from the start of `buf`; `undefined` while it is incomplete. */
function parseReply(buf: Buffer): { reply: RawReply } | { error: string } | undefined {
  const end = buf.indexOf('\r\n');
  if (end < 0) return undefined;
  const line = buf.toString('utf8', 1, end);
  switch (String.fromCharCode(buf[0] ?? 0)) {
    case '+':
      return { reply: line };
    case '-':
      return { error: line };
    case ':':
      return { reply: Number(line) };
    case '$': {
      const length = Number(line);
      if (length < 0) return { reply: null };
      const start = end + 2;
      if (buf.length < start + length + 2) return undefined;
      return { reply: buf.toString('utf8', start, start + length) };
    }
    default:
      return { error: `rawCommand cannot parse a reply starting with ${JSON.stringify(line.slice(0, 20))}` };
  }
}

/**
 * Sends one command on a fresh connection and returns its reply (array replies are not supported).
 * Rejects with the server's error text, on a connection error, or after `timeoutMs`.
 *
 * @example
 * await rawCommand(server, ['GET', 'k']); // '1'
 */
export function rawCommand(
  endpoint: Endpoint,
  args: readonly (string | number)[],
  timeoutMs: number = CALL_TIMEOUT_MS,
): Promise<RawReply> {
  const parts = args.map(String);
  const payload = `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
  return new Promise<RawReply>((resolve, reject) => {
    const socket = createConnection({ host: endpoint.host, port: endpoint.port });
    let received = Buffer.alloc(0);
    const finish = (error: Error | undefined, reply: RawReply = null): void => {
      socket.destroy();
      if (error === undefined) resolve(reply);
      else reject(error);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`${parts[0] ?? ''} timed out after ${timeoutMs} ms`)));
    socket.on('error', (error) => finish(error));
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const parsed = parseReply(received);
      if (parsed === undefined) return;
      if ('error' in parsed) finish(new Error(parsed.error));
      else finish(undefined, parsed.reply);
    });
  });
}

/** The value of `field` in an `INFO` or `CLUSTER INFO` text, or undefined. */
export function infoField(info: RawReply, field: string): string | undefined {
  if (typeof info !== 'string') return undefined;
  const line = info.split('\r\n').find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1);
}

/**
 * Polls `check` every few milliseconds until it returns true, for at most `timeoutMs`.
 * Errors thrown by `check` count as "not yet"; the last one is reported on timeout.
 */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await sleep(POLL_MS);
  }
  const detail = last instanceof Error ? ` (last error: ${last.message})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}

// ---------------------------------------------------------------------------------------------
// Ports

/** A port the kernel reports free on loopback now (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, REDIS_HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from the kernel'))));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Servers

/** Options of {@link startRedis}. */
export interface RedisServerOptions {
  /** `appendonly` (default false: no persistence at all, which is fastest). */
  appendonly?: boolean;
  /** `appendfsync` (default `everysec`, Redis's own default). */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** Start the server as a cluster node (`cluster-enabled yes`, its own `nodes.conf` and bus port). */
  cluster?: boolean;
  /**
   * The server binary to spawn (default `redis-server` from PATH): a path to another build
   * that takes the same options, such as `valkey-server` (see {@link waitAofServerBinary}).
   */
  binary?: string;
}

/** A Redis server for a test; see {@link startRedis}. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://host:port` (or the given `REDIS_URL`). */
  readonly url: string;
  /** The temporary directory holding the AOF, `nodes.conf` and `redis.log` ('' for `REDIS_URL`). */
  readonly dir: string;
  /** The cluster bus port of a cluster node, else undefined. */
  readonly busPort: number | undefined;
  /** True when the harness spawned the server (kill and restart work). */
  readonly spawned: boolean;
  /** The pid of the running server process, undefined when it is down or not spawned. */
  readonly pid: number | undefined;
  /** Sends `signal` (default SIGKILL) and waits until the process exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again (same port, directory and options; stops it first if it runs) and waits until it answers PING and finished loading the AOF. */
  restart(): Promise<void>;
  /** Stops the server gracefully and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

/** Kills every server and removes every directory still around when the worker exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

function logTail(logPath: string): string {
  try {
    return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(no log)';
  }
}

function serverArgs(port: number, dir: string, options: RedisServerOptions, busPort: number | undefined): string[] {
  const args = ['--bind', REDIS_HOST, '--port', String(port), '--dir', dir, '--save', ''];
  args.push('--appendonly', options.appendonly === true ? 'yes' : 'no');
  args.push('--appendfsync', options.appendfsync ?? 'everysec');
  args.push('--daemonize', 'no', '--protected-mode', 'no');
  if (busPort !== undefined) {
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort));
  }
  return args;
}

/** Resolves when `child` exited (at once if it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

/** Resolves true when `child` exited within `timeoutMs`, else false; leaves no timer behind. */
async function exitedWithin(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const timer = new AbortController();
  const late = sleep(timeoutMs, false, { signal: timer.signal }).catch(() => false);
  const gone = await Promise.race([exited(child).then(() => true), late]);
  timer.abort();
  return gone;
}

class SpawnedRedis implements RedisServer {
  readonly host = REDIS_HOST;
  readonly spawned = true;
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private removed = false;

  constructor(
    readonly port: number,
    readonly dir: string,
    readonly busPort: number | undefined,
    private readonly args: readonly string[],
    private readonly binary: string = 'redis-server',
  ) {
    this.logPath = join(dir, 'redis.log');
  }

  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns the process and waits until it is ready; on failure the process is gone and the log tail is in the error. */
  async launch(): Promise<void> {
    const log = openSync(this.logPath, 'a');
    const child = spawn(this.binary, [...this.args], { stdio: ['ignore', log, log] });
    closeSync(log);
    // Without a listener, a failed spawn (say ENOENT) would crash the test worker.
    let spawnError: Error | undefined;
    child.once('error', (error) => (spawnError = error));
    this.child = child;
    liveChildren.add(child);
    void exited(child).then(() => liveChildren.delete(child));
    try {
      await this.waitReady(child, () => spawnError);
    } catch (error) {
      await this.kill('SIGKILL');
      const message = error instanceof Error ? error.message : String(error);
      const tail = logTail(this.logPath);
      throw new Error(`${this.binary} on port ${this.port} did not start: ${message}\n${tail}`, { cause: error });
    }
  }

  private async waitReady(child: ChildProcess, spawnError: () => Error | undefined): Promise<void> {
    const ready = async (): Promise<boolean> => {
      if ((await rawCommand(this, ['PING'])) !== 'PONG') return false;
      return infoField(await rawCommand(this, ['INFO', 'persistence']), 'loading') === '0';
    };
    const deadline = Date.now() + READY_WAIT_MS;
    while (Date.now() < deadline) {
      const failed = spawnError();
      if (failed !== undefined) throw failed;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('redis-server exited');
      if (await ready().catch(() => false)) return;
      await sleep(POLL_MS);
    }
    throw new Error(`no PONG with loading:0 within ${READY_WAIT_MS} ms`);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    if (child.pid === undefined) return; // never started (spawn error): nothing to wait for
    child.kill(signal);
    if (!(await exitedWithin(child, EXIT_WAIT_MS))) {
      child.kill('SIGKILL');
      await exited(child);
    }
  }

  async restart(): Promise<void> {
    if (this.removed) throw new Error('restart after stop: the directory is gone');
    await this.kill('SIGTERM');
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    if (this.removed) return;
    this.removed = true;
    rmSync(this.dir, { recursive: true, force: true });
    liveDirs.delete(this.dir);
  }
}

/**
 * Spawns a `redis-server` on a free loopback port in a new temporary directory and waits until it
 * answers PING. Retries with another port when the chosen one was taken in between.
 *
 * @example
 * const server = await spawnRedis({ appendonly: true, appendfsync: 'always' });
 * await server.kill('SIGKILL');
 * await server.restart();
 */
export async function spawnRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  installExitHook();
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS_MAX; attempt += 1) {
    const port = await freePort();
    const busPort = options.cluster === true ? await freePort() : undefined;
    if (busPort === port) continue;
    const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-redis-'));
    liveDirs.add(dir);
    const server = new SpawnedRedis(port, dir, busPort, serverArgs(port, dir, options, busPort), options.binary);
    try {
      await server.launch();
      return server;
    } catch (error) {
      lastError = error;
      await server.stop();
      if (!(error instanceof Error && error.message.includes('Address already in use'))) throw error;
    }
  }
  throw lastError instanceof Error ? lastError : new Error('could not start redis-server');
}

/** A handle on a server given by `REDIS_URL`: usable, but never killed, restarted or flushed. */
function urlServer(url: string): RedisServer {
  const parsed = new URL(url);
  const refuse = (what: string) => async (): Promise<void> => {
    throw new Error(`${what} needs a spawned redis-server (this server comes from REDIS_URL)`);
  };
  return {
    host: parsed.hostname,
    port: Number(parsed.port === '' ? '6379' : parsed.port),
    url,
    dir: '',
    busPort: undefined,
    spawned: false,
    pid: undefined,
    kill: refuse('kill'),
    restart: refuse('restart'),
    stop: async () => {},
  };
}

/**
 * A Redis server for a test: spawned when `redis-server` is on PATH, else the `REDIS_URL` server
 * (whose `kill` and `restart` reject, and which cannot take `options`). Throws when neither is
 * available; guard the test with {@link describeRedis} or {@link redisSkipReason}.
 *
 * @example
 * const server = await startRedis();
 * const client = new Redis(server.url);
 * // ... afterAll: client.disconnect(); await server.stop();
 */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const target = redisTarget();
  if (target.kind === 'skip') throw new Error(target.reason);
  if (target.kind === 'spawn') return spawnRedis(options);
  if (Object.keys(options).length > 0) {
    throw new Error(`startRedis(${JSON.stringify(options)}) needs a spawned redis-server (this server comes from REDIS_URL)`);
  }
  return urlServer(target.url);
}

/** A connected node-redis client, as {@link redisSuiteHooks} hands it over. */
export type NodeRedisClient = ReturnType<typeof createClient>;

/** Options of {@link redisSuiteHooks}. */
export interface RedisSuiteOptions {
  /** Also connect a node-redis client and hand it here, for suites that check both drivers. */
  nodeRedis?: (client: NodeRedisClient) => void;
}

/**
 * The hooks of a suite that needs one server and one ioredis client on it (and, asked for, one
 * node-redis client): all made before the suite (and handed to `set`), disconnected and stopped
 * after it. One place for this, so every Redis suite starts and cleans up its server the same
 * way. Call it inside the suite's {@link describeRedis}, so a skipped suite starts nothing.
 *
 * @example
 * let server: RedisServer; let client: Redis; let nodeRedis: NodeRedisClient;
 * describeRedis('...', () => { redisSuiteHooks((s, c) => { server = s; client = c; }); ... });
 * // both drivers:
 * redisSuiteHooks((s, c) => { server = s; client = c; }, { nodeRedis: (n) => { nodeRedis = n; } });
 */
export function redisSuiteHooks(set: (server: RedisServer, client: Redis) => void, options: RedisSuiteOptions = {}): void {
  let started: { server: RedisServer; client: Redis; nodeRedis?: NodeRedisClient } | undefined;
  beforeAll(async () => {
    const server = await startRedis();
    started = { server, client: new Redis(server.url) };
    set(started.server, started.client);
    if (options.nodeRedis === undefined) return;
    started.nodeRedis = createClient({ url: server.url });
    await started.nodeRedis.connect();
    options.nodeRedis(started.nodeRedis);
  });
  afterAll(async () => {
    started?.client.disconnect();
    await started?.nodeRedis?.close();
    await started?.server.stop();
  });
}

// ---------------------------------------------------------------------------------------------
// Looking at what a server did

/**
 * How many times `command` ran on the server so far (`INFO commandstats`; lower case, e.g.
 * `evalsha`, `waitaof`).
 *
 * @example
 * const before = await commandCalls(server, 'evalsha');
 */
export async function commandCalls(endpoint: Endpoint, command: string): Promise<number> {
  const line = infoField(await rawCommand(endpoint, ['INFO', 'commandstats']), `cmdstat_${command}`);
  return line === undefined ? 0 : Number(/calls=(\d+)/.exec(line)?.[1] ?? 0);
}

/**
 * Every key of a ledger there is (its per-SKU entry indexes too), as bytes, sorted: a bounded
 * SCAN of `stock-ledger:{<prefix>}:*`.
 *
 * @example
 * const keys = await ledgerKeysThere(client, 'shop-1');
 */
export async function ledgerKeysThere(client: Redis, prefix: string): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  let cursor = '0';
  // Bounded: a test ledger holds far fewer keys than 1000 pages of 1000.
  for (let page = 0; page < 1000; page += 1) {
    const [next, found] = (await client.callBuffer('SCAN', cursor, 'MATCH', `stock-ledger:{${prefix}}:*`, 'COUNT', '1000')) as [Buffer, Buffer[]];
    keys.push(...found);
    cursor = next.toString();
    if (cursor === '0') return keys.sort(Buffer.compare);
  }
  throw new Error(`SCAN of ledger ${prefix} did not end after 1000 pages`);
}

/**
 * Script calls that ran on the server so far: by EVALSHA or FCALL (the store calls its functions
 * where the server allows them, else EVALSHA).
 *
 * @example
 * const before = await scriptCalls(server);
 */
export async function scriptCalls(endpoint: Endpoint): Promise<number> {
  return (await commandCalls(endpoint, 'evalsha')) + (await commandCalls(endpoint, 'fcall'));
}

/**
 * Writes the server has applied since it started or last saved (`rdb_changes_since_last_save`):
 * unchanged across a call means the call wrote nothing.
 *
 * @example
 * const before = await writesSoFar(server);
 */
export async function writesSoFar(endpoint: Endpoint): Promise<number> {
  return Number(infoField(await rawCommand(endpoint, ['INFO', 'persistence']), 'rdb_changes_since_last_save'));
}

// ---------------------------------------------------------------------------------------------
// A server that knows WAITAOF (Redis 7.2 or later, or Valkey)

/** The variable naming a server binary that knows WAITAOF, for the waitForAof success path. */
export const WAITAOF_SERVER_ENV = 'STOCK_LEDGER_WAITAOF_SERVER';

/** `redis-server` 7.2 or later (or a Valkey, which forked from 7.2.4) reports a version like this. */
function knowsWaitAof(versionLine: string): boolean {
  if (/^Valkey server v=/.test(versionLine)) return true;
  const [major = 0, minor = 0] = (/ v=(\d+)\.(\d+)/.exec(versionLine)?.slice(1) ?? []).map(Number);
  return major > 7 || (major === 7 && minor >= 2);
}

/**
 * A server binary that knows WAITAOF, or why there is none. Looked for in this order: the path
 * in `STOCK_LEDGER_WAITAOF_SERVER`, `valkey-server` on PATH, `redis-server` on PATH if it is
 * 7.2 or later. The project installs none of them (Debian bookworm ships redis-server 7.0), so
 * a machine without one skips the tests that need it, CI included, with this reason.
 *
 * @example
 * const found = waitAofServerBinary();
 * describe.skipIf('skip' in found)(...);
 */
export function waitAofServerBinary(env: NodeJS.ProcessEnv = process.env): { binary: string; version: string } | { skip: string } {
  const candidates = [env[WAITAOF_SERVER_ENV], onPath('valkey-server', env.PATH) ? 'valkey-server' : undefined, onPath('redis-server', env.PATH) ? 'redis-server' : undefined];
  const seen: string[] = [];
  for (const binary of candidates) {
    if (binary === undefined || binary === '') continue;
    let version: string;
    try {
      version = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: CALL_TIMEOUT_MS * 5 }).trim();
    } catch (error) {
      seen.push(`${binary}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    if (knowsWaitAof(version)) return { binary, version };
    seen.push(`${binary}: ${version}`);
  }
  return {
    skip: `no server that knows WAITAOF (Redis 7.2+ or Valkey): set ${WAITAOF_SERVER_ENV} to one, or put valkey-server on PATH ` +
      `(found: ${seen.length === 0 ? 'none' : seen.join('; ')})`,
  };
}
