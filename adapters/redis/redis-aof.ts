import { StoreUnavailableError } from '../../src/index.js';
import type { Pipeline, ScriptInvoker } from './redis-client.js';

/** What `waitForAof` waits for: the local AOF, `replicas` replicas' AOFs, at most `timeoutMs`. */
export interface AofWait {
  replicas: number;
  timeoutMs: number;
}

/**
 * Runs every script call in one pipeline with its AOF confirmation, on one connection:
 * `CLIENT ID`, the script, `INCR <aof key>`, `WAITAOF 1 <replicas> <timeoutMs>`, `CLIENT ID`.
 *
 * WAITAOF counts only the writes of the connection that sends it. The INCR makes that
 * connection write after the state its script read, even for a replay or a rejection (which
 * write nothing); the AOF is append-only, so once that write is on disk, so is everything the
 * script saw or wrote. Equal CLIENT IDs prove that all five ran on one connection, in order: a
 * driver that reconnected in between and re-sent the rest (ioredis does) would show two ids,
 * and its WAITAOF would have answered for nothing. No MULTI: WAITAOF does not block inside one.
 *
 * @example
 * ```ts
 * const scripts = new ScriptRunner(aofInvoker(pipeline, aofKey('shop-1'), { replicas: 0, timeoutMs: 500 }));
 * ```
 */
export function aofInvoker(pipeline: Pipeline, key: string, wait: AofWait): ScriptInvoker {
  const send = async (script: readonly string[]): Promise<unknown> => {
    const waitaof = ['WAITAOF', '1', String(wait.replicas), String(wait.timeoutMs)];
    return aofConfirmed(await pipeline([['CLIENT', 'ID'], script, ['INCR', key], waitaof, ['CLIENT', 'ID']]), wait);
  };
  return {
    evalsha: (sha, keys, args) => send(['EVALSHA', sha, String(keys.length), ...keys, ...args]),
    eval: (body, keys, args) => send(['EVAL', body, String(keys.length), ...keys, ...args]),
    fcall: (name, keys, args) => send(['FCALL', name, String(keys.length), ...keys, ...args]),
    functionLoad: (body) => send(['FUNCTION', 'LOAD', body]),
  };
}

/**
 * The script's reply, when the pipeline's replies prove that it ran on the connection whose
 * write WAITAOF confirmed, in time; otherwise `STORE_UNAVAILABLE` (the operation may have been
 * applied: a retry with the same request id replays it and waits again).
 *
 * @example
 * ```ts
 * aofConfirmed([7, 'A{...}', 3, [1, 0], 7], { replicas: 0, timeoutMs: 500 }); // 'A{...}'
 * ```
 */
export function aofConfirmed(replies: readonly unknown[], wait: AofWait): unknown {
  const [idBefore, script, , waited, idAfter] = replies;
  const before = integerOf(idBefore);
  const after = integerOf(idAfter);
  if (replies.length !== 5 || before === null || before !== after) {
    throw new StoreUnavailableError(
      `Redis: the script and WAITAOF did not run on one connection (CLIENT ID ${String(idBefore)}, then ${String(idAfter)}): ` +
        'the driver reconnected in between, so WAITAOF confirmed nothing; retry with the same request id',
    );
  }
  const [local, replicas] = Array.isArray(waited) ? (waited as unknown[]).map(integerOf) : [];
  if (local === undefined || local === null || local < 1 || replicas === undefined || replicas === null || replicas < wait.replicas) {
    throw new StoreUnavailableError(
      `Redis: the write was not confirmed in the AOF within ${wait.timeoutMs} ms (WAITAOF replied ${JSON.stringify(waited)}, ` +
        `wanted 1 local and ${wait.replicas} replicas); retry with the same request id`,
    );
  }
  return script;
}

/** An integer reply (a number, or a string of digits as some drivers give), else null. */
function integerOf(reply: unknown): number | null {
  const n = typeof reply === 'number' ? reply : typeof reply === 'string' && /^-?\d+$/.test(reply) ? Number(reply) : NaN;
  return Number.isSafeInteger(n) ? n : null;
}
