import { InvalidInputError, InvariantViolationError, StoreUnavailableError, isStockLedgerError } from '../../src/index.js';

type Arg = string | number;

/** A pipeline of ioredis: commands queued with `call`, sent together by `exec`. */
export interface IoredisPipelineLike {
  call(command: string, ...args: Arg[]): unknown;
  exec(): Promise<unknown>;
}

/** The part of an ioredis client (`Redis` or `Cluster`) the store uses. */
export interface IoredisLike {
  evalsha(sha: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown>;
  call(command: string, ...args: Arg[]): Promise<unknown>;
  /** Used by `waitForAof` only. */
  pipeline?(): IoredisPipelineLike;
}

/** A node-redis v5 multi, run without MULTI by `execAsPipeline`. */
export interface NodeRedisMultiLike {
  addCommand(args: string[]): unknown;
  execAsPipeline(): Promise<unknown>;
}

/** The part of a node-redis v5 client (or cluster) the store uses. */
export interface NodeRedisLike {
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  /** Used by `waitForAof` only. */
  multi?(): NodeRedisMultiLike;
}

/** A Redis client the app owns: ioredis 5 (`Redis` or `Cluster`) or node-redis 5 (client or cluster). */
export type RedisClientLike = IoredisLike | NodeRedisLike;

/**
 * What runs a script: by its SHA1, or by its body (which also caches it); or as a function of a
 * loaded library (FCALL), after loading the library (FUNCTION LOAD).
 */
export interface ScriptInvoker {
  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  eval(body: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  fcall(name: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  functionLoad(body: string): Promise<unknown>;
}

/**
 * Commands sent together on one connection, in order, without MULTI (WAITAOF does not block
 * inside MULTI): resolves to their replies, or rejects with the first command's error.
 */
export type Pipeline = (commands: ReadonlyArray<readonly string[]>) => Promise<unknown[]>;

/** Runs scripts through whichever client the app handed in, never changing the client. */
export interface ScriptCaller extends ScriptInvoker {
  /** Any other command (the checks `waitForAof` makes before the first write). */
  command(args: readonly string[]): Promise<unknown>;
  /**
   * The client's pipeline on its one connection, or why it has none that can be trusted to stay
   * on one connection (a Cluster, a node-redis pool, a client without pipelines).
   */
  pipeline: Pipeline | { refused: string };
  /** A Cluster client: one that may send a command to any of several servers. */
  cluster: boolean;
}

/**
 * Recognises the client by shape (no driver is imported): node-redis names the method
 * `evalSha`, ioredis `evalsha`.
 *
 * @example
 * ```ts
 * const caller = scriptCaller(new Redis());
 * if ('refused' in caller.pipeline) console.log(caller.pipeline.refused);
 * ```
 */
export function scriptCaller(client: unknown): ScriptCaller {
  const c = client as Partial<Record<'evalSha' | 'evalsha' | 'eval', unknown>> | null;
  if (typeof c?.evalSha === 'function' && typeof c.eval === 'function') return nodeRedisCaller(client as NodeRedisLike);
  if (typeof c?.evalsha === 'function' && typeof c.eval === 'function') return ioredisCaller(client as IoredisLike);
  throw new InvalidInputError('client', 'must be an ioredis Redis or Cluster, or a node-redis v5 client or cluster');
}

function nodeRedisCaller(r: NodeRedisLike): ScriptCaller {
  // A node-redis cluster has masters; a client has none. A pool counts its clients.
  const cluster = Array.isArray((r as { masters?: unknown }).masters);
  const pool = 'totalClients' in r;
  let pipeline: ScriptCaller['pipeline'];
  if (cluster) pipeline = { refused: 'a node-redis cluster may send the commands to several nodes' };
  else if (pool) pipeline = { refused: 'a node-redis pool may send each command on another of its clients' };
  else if (typeof r.multi !== 'function') pipeline = { refused: 'this client has no multi() to pipeline with' };
  else pipeline = nodeRedisPipeline(r.multi.bind(r));
  return {
    evalsha: (sha, keys, args) => r.evalSha(sha, { keys: [...keys], arguments: [...args] }),
    eval: (body, keys, args) => r.eval(body, { keys: [...keys], arguments: [...args] }),
    fcall: (name, keys, args) => r.sendCommand(['FCALL', name, String(keys.length), ...keys, ...args]),
    functionLoad: (body) => r.sendCommand(['FUNCTION', 'LOAD', body]),
    command: (args) => r.sendCommand([...args]),
    pipeline,
    cluster,
  };
}

function ioredisCaller(r: IoredisLike): ScriptCaller {
  const cluster = (r as { isCluster?: unknown }).isCluster === true;
  let pipeline: ScriptCaller['pipeline'];
  if (cluster) pipeline = { refused: 'an ioredis Cluster may send the commands to several nodes' };
  else if (typeof r.pipeline !== 'function') pipeline = { refused: 'this client has no pipeline()' };
  else pipeline = ioredisPipeline(r.pipeline.bind(r));
  return {
    evalsha: (sha, keys, args) => r.evalsha(sha, keys.length, ...keys, ...args),
    eval: (body, keys, args) => r.eval(body, keys.length, ...keys, ...args),
    fcall: (name, keys, args) => r.call('FCALL', name, keys.length, ...keys, ...args),
    functionLoad: (body) => r.call('FUNCTION', 'LOAD', body),
    command: ([name = '', ...args]) => r.call(name, ...args),
    pipeline,
    cluster,
  };
}

/** node-redis: `multi().execAsPipeline()` writes the commands as one chain on the client's socket. */
function nodeRedisPipeline(multi: () => NodeRedisMultiLike): Pipeline {
  return async (commands) => {
    const m = multi();
    for (const command of commands) m.addCommand([...command]);
    const replies = await m.execAsPipeline();
    if (!Array.isArray(replies) || replies.length !== commands.length) {
      throw new StoreUnavailableError(`Redis: a pipeline of ${commands.length} commands replied ${describe(replies)}`);
    }
    return replies as unknown[];
  };
}

/** ioredis: `pipeline()` writes the commands together on the client's one connection. */
function ioredisPipeline(pipeline: () => IoredisPipelineLike): Pipeline {
  return async (commands) => {
    const p = pipeline();
    for (const [name = '', ...args] of commands) p.call(name, ...args);
    const settled = await p.exec();
    if (!Array.isArray(settled) || settled.length !== commands.length) {
      throw new StoreUnavailableError(`Redis: a pipeline of ${commands.length} commands replied ${describe(settled)}`);
    }
    const replies: unknown[] = [];
    for (const item of settled as unknown[]) {
      // Each item is [error or null, reply].
      if (!Array.isArray(item)) throw new StoreUnavailableError(`Redis: a pipeline replied ${describe(item)} for a command`);
      const [error, reply] = item as unknown[];
      if (error !== null && error !== undefined) throw error instanceof Error ? error : new Error(String(error));
      replies.push(reply);
    }
    return replies;
  };
}

function describe(reply: unknown): string {
  return Array.isArray(reply) ? `an array of ${reply.length}` : typeof reply;
}

/** Server replies that mean "not now": the script did not run, or its outcome is unknown. */
const TRANSIENT = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|OOM|NOREPLICAS|MOVED|ASK|UNBLOCKED|NOSCRIPT)\b/;
/** `ERR` replies that mean the command did not run, and may run later. */
const TRANSIENT_ERR = /^ERR (max number of clients reached|Script killed by user|Function not found)/;
/** Server replies that mean a bug or foreign data under the ledger's keys. */
const BROKEN = /^(ERR|WRONGTYPE)\b/;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True when Redis answered that no function of that name is loaded. */
export function isNoFunction(error: unknown): boolean {
  return /^ERR Function not found\b/.test(messageOf(error));
}

/**
 * True when Redis refused to run FCALL at all: a server without functions (before 7.0) or an
 * ACL that denies the command. Nothing ran. Any other error of a function that started (a Lua
 * error after a write included) is the operation's own, as with EVALSHA.
 */
export function isFcallRefused(error: unknown): boolean {
  return /^(ERR unknown command|NOPERM)\b/.test(messageOf(error));
}

/**
 * True when Redis refused to load the library: an ACL, a server that does not allow functions or
 * this library's use of them. Not a lost connection, not a server busy or loading: those fail
 * the operation as any other call would.
 */
export function isLoadRefused(error: unknown): boolean {
  const message = messageOf(error);
  return /^(ERR|NOPERM)\b/.test(message) && !TRANSIENT_ERR.test(message);
}

/** True when Redis answered that it does not know the script's SHA. */
export function isNoScript(error: unknown): boolean {
  return /^NOSCRIPT\b/.test(messageOf(error));
}

/**
 * Maps a driver failure to the library's errors. A script's own invariant check, a Lua error
 * or data of the wrong type under the ledger's keys is `INVARIANT_VIOLATION`; every other
 * failure (connection lost, timeout, server loading or failing over, reply lost) is
 * `STORE_UNAVAILABLE`: its outcome may be unknown, and a retry with the same request id is safe.
 */
export function redisFailure(error: unknown): Error {
  if (isStockLedgerError(error)) return error;
  const message = messageOf(error);
  if (message.includes('STOCK_LEDGER_INVARIANT')) return new InvariantViolationError(`Redis: ${message}`, { cause: error });
  if (!TRANSIENT.test(message) && !TRANSIENT_ERR.test(message) && BROKEN.test(message)) return new InvariantViolationError(`Redis: ${message}`, { cause: error });
  return new StoreUnavailableError(`Redis: ${message}`, { cause: error });
}
