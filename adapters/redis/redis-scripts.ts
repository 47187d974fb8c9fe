import { createHash } from 'node:crypto';
import { LIMITS } from '../../src/index.js';
import { isFcallRefused, isLoadRefused, isNoFunction, isNoScript, type ScriptInvoker } from './redis-client.js';
import { LUA_LIBRARY, LUA_SOURCES, type LuaScriptName } from './redis-lua.generated.js';

/** A script with its limits filled in from the library's one limits file, and its SHA1. */
interface Script {
  body: string;
  sha: string;
}

const withLimits = (source: string): string =>
  source.replaceAll('__QUANTITY_MAX__', String(LIMITS.quantityMax)).replaceAll('__EXPIRIES_PER_SKU_MAX__', String(LIMITS.expiriesPerSkuMax));

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');

function build(source: string): Script {
  const body = withLimits(source);
  return { body, sha: sha1(body) };
}

const SCRIPTS = Object.fromEntries(Object.entries(LUA_SOURCES).map(([name, source]) => [name, build(source)])) as Record<LuaScriptName, Script>;

/** Every script's name and SHA1, as the server caches them. */
export const SCRIPT_SHAS: Readonly<Record<LuaScriptName, string>> = Object.freeze(
  Object.fromEntries(Object.entries(SCRIPTS).map(([name, s]) => [name, s.sha])) as Record<LuaScriptName, string>,
);

/**
 * The function library: its name carries a hash of its body, so two versions of the library
 * (two apps on one server, or a rolling upgrade) load side by side and never call each other's
 * functions. A function's name is the library's, `_`, the script's.
 */
export const LIBRARY = ((): { name: string; body: string } => {
  const template = withLimits(LUA_LIBRARY);
  const name = `stockledger_${sha1(template).slice(0, 16)}`;
  return { name, body: template.replaceAll('__LIBRARY__', name) };
})();

/** What #fcall answers when the server refused functions: the call goes by EVALSHA. */
const REFUSED: unique symbol = Symbol('functions refused');

/** How many times a call loads the library and calls again before it gives up (a server flushing functions meanwhile). */
const FUNCTION_ATTEMPTS_MAX = 3;

/**
 * Runs scripts as functions of the library (FCALL), or by EVALSHA.
 *
 * Functions first, when asked for: the library's body runs once, when it is loaded, where a
 * script's runs on every call. When a function is not found (a fresh server, a restart without
 * persistence, FUNCTION FLUSH) it did not run, so loading the library (FUNCTION LOAD) and
 * calling again is safe; one call loads it, others meeting the same wait for that load. A
 * server that refuses functions (before Redis 7.0, an ACL that denies them) turns them off for
 * this runner, and every call goes by EVALSHA from then on.
 *
 * By EVALSHA. On NOSCRIPT (a fresh server, a failover, SCRIPT FLUSH) the script
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
  #functions: boolean;
  #loadingLibrary: Promise<boolean> | null = null;

  /**
   * `caller` runs one script call: the client itself, or `aofInvoker` for `waitForAof`.
   * `functions`: call the library's functions (FCALL) while the server allows them.
   */
  constructor(caller: ScriptInvoker, options: { functions: boolean }) {
    this.#caller = caller;
    this.#functions = options.functions;
  }

  async run(name: LuaScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    if (this.#functions) {
      const reply = await this.#fcall(name, keys, args);
      if (reply !== REFUSED) return reply;
    }
    return this.#evalsha(name, keys, args);
  }

  /** The function's reply, or REFUSED once the server refused functions (nothing ran). */
  async #fcall(name: LuaScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const fn = `${LIBRARY.name}_${name}`;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#caller.fcall(fn, keys, args);
      } catch (error) {
        if (isFcallRefused(error)) return this.#refuse();
        if (!isNoFunction(error) || attempt === FUNCTION_ATTEMPTS_MAX) throw error;
      }
      if (!(await this.#loadLibrary())) return REFUSED;
    }
  }

  /** Loads the library once for all calls that need it now: true when it is there, false when refused. */
  #loadLibrary(): Promise<boolean> {
    this.#loadingLibrary ??= this.#caller.functionLoad(LIBRARY.body).then(
      () => true,
      (error: unknown) => {
        // Loaded meanwhile, by another runner or another process: there it is.
        if (/already exists/.test(error instanceof Error ? error.message : String(error))) return true;
        if (!isLoadRefused(error)) throw error;
        this.#refuse();
        return false;
      },
    ).finally(() => {
      this.#loadingLibrary = null;
    });
    return this.#loadingLibrary;
  }

  /** The server refused functions: every call of this runner goes by EVALSHA from now on. */
  #refuse(): typeof REFUSED {
    this.#functions = false;
    return REFUSED;
  }

  async #evalsha(name: LuaScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
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
