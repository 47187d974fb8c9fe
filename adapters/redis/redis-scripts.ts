import { createHash } from 'node:crypto';
import { LIMITS } from '../../src/index.js';
import { isNoScript, type ScriptInvoker } from './redis-client.js';
import { LUA_SOURCES, type LuaScriptName } from './redis-lua.generated.js';

/** A script with its limits filled in from the library's one limits file, and its SHA1. */
interface Script {
  body: string;
  sha: string;
}

function build(source: string): Script {
  const body = source
    .replaceAll('__QUANTITY_MAX__', String(LIMITS.quantityMax))
    .replaceAll('__EXPIRIES_PER_SKU_MAX__', String(LIMITS.expiriesPerSkuMax));
  return { body, sha: createHash('sha1').update(body).digest('hex') };
}

const SCRIPTS = Object.fromEntries(Object.entries(LUA_SOURCES).map(([name, source]) => [name, build(source)])) as Record<LuaScriptName, Script>;

/** Every script's name and SHA1, as the server caches them. */
export const SCRIPT_SHAS: Readonly<Record<LuaScriptName, string>> = Object.freeze(
  Object.fromEntries(Object.entries(SCRIPTS).map(([name, s]) => [name, s.sha])) as Record<LuaScriptName, string>,
);

/**
 * Runs scripts by EVALSHA. On NOSCRIPT (a fresh server, a failover, SCRIPT FLUSH) the script
 * did not run, so sending it with EVAL, which also caches it, is safe. One call loads it: calls
 * that meet NOSCRIPT while that load is in flight wait for it and go back to EVALSHA, so the
 * body goes out once, not once per call.
 *
 * @example
 * ```ts
 * const scripts = new ScriptRunner(scriptCaller(client));
 * const reply = await scripts.run('deduct', keys, args);
 * ```
 */
export class ScriptRunner {
  readonly #caller: ScriptInvoker;
  readonly #loading = new Map<LuaScriptName, Promise<void>>();

  /** `caller` runs one script call: the client itself, or `aofInvoker` for `waitForAof`. */
  constructor(caller: ScriptInvoker) {
    this.#caller = caller;
  }

  async run(name: LuaScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const script = SCRIPTS[name];
    try {
      return await this.#caller.evalsha(script.sha, keys, args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
    }
    const loading = this.#loading.get(name);
    if (loading !== undefined) {
      await loading;
      try {
        return await this.#caller.evalsha(script.sha, keys, args);
      } catch (error) {
        // Flushed again meanwhile: this call loads it itself, below.
        if (!isNoScript(error)) throw error;
      }
    }
    return this.#load(name, script, keys, args);
  }

  /** Runs the script by EVAL, which caches it; others meeting NOSCRIPT meanwhile wait for it. */
  async #load(name: LuaScriptName, script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const reply = this.#caller.eval(script.body, keys, args);
    const done = reply.then(
      () => undefined,
      () => undefined,
    );
    this.#loading.set(name, done);
    try {
      return await reply;
    } finally {
      if (this.#loading.get(name) === done) this.#loading.delete(name);
    }
  }
}

export type { LuaScriptName };
