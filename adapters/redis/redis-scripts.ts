import { createHash } from 'node:crypto';
import { LIMITS } from '../../src/index.js';
import { isNoScript, type ScriptCaller } from './redis-client.js';
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
 * Runs a script by EVALSHA. On NOSCRIPT (a fresh server, a failover, SCRIPT FLUSH) the script
 * did not run, so sending it once with EVAL, which also caches it, is safe; the next call goes
 * back to EVALSHA. The body is never sent otherwise.
 */
export async function runScript(caller: ScriptCaller, name: LuaScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
  const script = SCRIPTS[name];
  try {
    return await caller.evalsha(script.sha, keys, args);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    return caller.eval(script.body, keys, args);
  }
}

export type { LuaScriptName };
