import { InvalidInputError, InvariantViolationError, StoreUnavailableError, isStockLedgerError } from '../../src/index.js';

type Arg = string | number;

/** The part of an ioredis client (`Redis` or `Cluster`) the store uses. */
export interface IoredisLike {
  evalsha(sha: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown>;
  call(command: string, ...args: Arg[]): Promise<unknown>;
}

/** The part of a node-redis v5 client (or cluster) the store uses. */
export interface NodeRedisLike {
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
}

/** A Redis client the app owns: ioredis 5 (`Redis` or `Cluster`) or node-redis 5 (client or cluster). */
export type RedisClientLike = IoredisLike | NodeRedisLike;

/** Runs scripts through whichever client the app handed in, never changing the client. */
export interface ScriptCaller {
  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  eval(body: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  /** Any other command, for a standalone client (WAITAOF and its detection). */
  command(args: readonly string[]): Promise<unknown>;
  /** True for a Cluster client. */
  cluster: boolean;
}

/**
 * Recognises the client by shape (no driver is imported): node-redis names the method
 * `evalSha`, ioredis `evalsha`.
 */
export function scriptCaller(client: unknown): ScriptCaller {
  const c = client as Partial<Record<'evalSha' | 'evalsha' | 'eval', unknown>> | null;
  if (typeof c?.evalSha === 'function' && typeof c.eval === 'function') {
    const r = client as NodeRedisLike;
    return {
      evalsha: (sha, keys, args) => r.evalSha(sha, { keys: [...keys], arguments: [...args] }),
      eval: (body, keys, args) => r.eval(body, { keys: [...keys], arguments: [...args] }),
      command: (args) => r.sendCommand([...args]),
      // A node-redis cluster has masters; a client has none.
      cluster: Array.isArray((client as { masters?: unknown }).masters),
    };
  }
  if (typeof c?.evalsha === 'function' && typeof c.eval === 'function') {
    const r = client as IoredisLike;
    return {
      evalsha: (sha, keys, args) => r.evalsha(sha, keys.length, ...keys, ...args),
      eval: (body, keys, args) => r.eval(body, keys.length, ...keys, ...args),
      command: ([name = '', ...args]) => r.call(name, ...args),
      cluster: (client as { isCluster?: unknown }).isCluster === true,
    };
  }
  throw new InvalidInputError('client', 'must be an ioredis Redis or Cluster, or a node-redis v5 client or cluster');
}

/** Server replies that mean "not now": the script did not run, or its outcome is unknown. */
const TRANSIENT = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|OOM|NOREPLICAS|MOVED|ASK|UNBLOCKED|NOSCRIPT)\b/;
/** `ERR` replies that mean the command did not run, and may run later. */
const TRANSIENT_ERR = /^ERR (max number of clients reached|Script killed by user)/;
/** Server replies that mean a bug or foreign data under the ledger's keys. */
const BROKEN = /^(ERR|WRONGTYPE)\b/;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
