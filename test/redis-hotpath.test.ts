/**
 * The Redis store's fast paths (plain_take in lib.lua for deducts and reserves, plain_commit in
 * commit.lua) against the general path they short-cut: the same script calls run on two
 * ledgers, one with the scripts as shipped and one with the fast paths switched off in the Lua
 * source, and every reply and every stored byte of both ledgers must be the same. The calls
 * reach the fast paths (one and several lines, meta, a policy with a backorder and a low-stock
 * threshold, quantities near the limit, a SKU holding NUL, rejections, replays, conflicts,
 * reserves with their records and hold indexes, whole commits) and each way out of them (a
 * buyer, an anyOf line, a SKU without a level, units reserved, a buyerMax, a SKU sent twice; for
 * commits a replay, a part, a buyer, an unknown or expired reservation, a due hold of another
 * reservation on its SKU), one script per call and all in one batch.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { type Redis } from 'ioredis';
import { LIMITS } from 'stock-ledger';
import { ledgerKeys, retentionKeys } from 'stock-ledger/redis';
import { expect, it } from 'vitest';
import { LUA_SOURCES, type LuaScriptName } from '../adapters/redis/redis-lua.generated.js';
import { describeRedis, ledgerKeysThere, redisSuiteHooks } from './support/redis-server.js';

let client: Redis;

const MAX = LIMITS.quantityMax;
const FAST_CALL = 'local reply, seen = plain_take(a, ';
const COMMIT_CALL = 'local reply, read = plain_commit(a)';

/** A script's body as the store builds it; `general` switches the fast path off (it answers nil). */
function body(name: LuaScriptName, general: boolean): string {
  const source: string = LUA_SOURCES[name];
  const filled = source.replaceAll('__QUANTITY_MAX__', String(LIMITS.quantityMax)).replaceAll('__EXPIRIES_PER_SKU_MAX__', String(LIMITS.expiriesPerSkuMax));
  if (!general) return filled;
  const off = filled.replaceAll(FAST_CALL, 'local reply, seen = (function() return nil end)(a, ').replaceAll(COMMIT_CALL, 'local reply, read = nil, nil');
  // Every script that holds a fast path had it switched off: a renamed call would leave it on.
  if (['deduct', 'reserve', 'commit', 'batch'].includes(name)) expect(off, name).not.toBe(filled);
  expect(off).not.toContain(FAST_CALL);
  expect(off).not.toContain(COMMIT_CALL);
  return off;
}

type ScriptCall = [LuaScriptName, string[]];

const at = (n: number): string => String(1_700_000_000_000 + n);
const restock = (id: string, sku: string, qty: number): ScriptCall => ['restock', [id, `fp-${id}`, at(0), '', '1', sku, String(qty)]];
const deduct = (id: string, lines: Array<[string, number]>, options: { fp?: string; meta?: string; buyer?: string; given?: string[] } = {}): ScriptCall => [
  'deduct',
  [id, options.fp ?? `fp-${id}`, at(1), options.meta ?? '', options.buyer ?? '', String(lines.length), ...lines.flatMap(([sku, qty]) => [sku, String(qty)]),
    ...(options.given ?? ['0'])],
];
const commit = (id: string, when: number, lines: Array<[string, number]> | null = null): ScriptCall =>
  ['commit', [id, at(when), ...(lines === null ? ['-1'] : [String(lines.length), ...lines.flatMap(([sku, qty]) => [sku, String(qty)])])]];
const policy = (id: string, sku: string, bo: string, ls: string, bm: string): ScriptCall => ['policy', [id, `fp-${id}`, at(0), '', sku, bo, ls, bm]];
const reserve = (id: string, sku: string, qty: number): ScriptCall => reserveLines(id, [[sku, qty]]);
function reserveLines(
  id: string, lines: Array<[string, number]>, options: { fp?: string; meta?: string; buyer?: string; given?: string[]; expires?: number } = {},
): ScriptCall {
  return ['reserve', [id, options.fp ?? `fp-${id}`, at(2), options.meta ?? '', at(options.expires ?? 3_600_000), options.buyer ?? '', String(lines.length),
    ...lines.flatMap(([sku, qty]) => [sku, String(qty)]), ...(options.given ?? ['0'])]];
}

const setup: ScriptCall[] = [
  restock('s-a', 'A', 10),
  restock('s-b', 'B', 5),
  restock('s-nul', 'b\u0000c', 3),
  restock('s-big', 'BIG', MAX),
  restock('s-p', 'P', 1),
  restock('s-l', 'L', 9),
  restock('s-r', 'R', 4),
  restock('s-c', 'C', 10),
  restock('s-d', 'D', 10),
  restock('s-e', 'E', 5),
  policy('p-p', 'P', '2', '1', 'null'),
  policy('p-l', 'L', 'keep', 'keep', '3'),
  reserve('hold-r', 'R', 1),
];

const calls: ScriptCall[] = [
  deduct('one', [['A', 1]]),
  deduct('two', [['A', 2], ['B', 1]], { meta: '{"order":"o-1","n":12345678901234}' }),
  deduct('one', [['A', 1]]),
  deduct('one', [['A', 2]], { fp: 'fp-other' }),
  deduct('short', [['A', 1], ['B', 9]]),
  deduct('nul', [['b\u0000c', 3]]),
  deduct('nul-short', [['b\u0000c', 1]]),
  deduct('big', [['BIG', MAX - 1]]),
  deduct('big-short', [['BIG', 2]]),
  // A backorder: onHand goes below 0, and the level shows the policy.
  deduct('backorder', [['P', 3]]),
  deduct('backorder-short', [['P', 1]]),
  // Ways out of the fast path.
  deduct('limited', [['L', 1]]),
  deduct('limited-buyer', [['L', 2]], { buyer: 'ann' }),
  deduct('buyer', [['A', 1]], { buyer: 'bob' }),
  deduct('missing', [['A', 1], ['NOPE', 1]]),
  deduct('reserved', [['R', 3]]),
  deduct('reserved-short', [['A', 1], ['R', 1]]),
  deduct('any', [['A', 1]], { given: ['2', '2', 'A', 'B', 'sku', 'A', '1', 'anyOf', '1', '0', 'order', '2', 'B', 'A'] }),
  deduct('after', [['A', 1], ['B', 1]]),
  // Lines the caller did not merge (the store always does): the general path, step by step.
  deduct('unmerged', [['B', 1], ['B', 1]]),
  // Replays of deducts kept once (layout 3): the outcome is rebuilt from the entries the record names.
  deduct('two', [['A', 2], ['B', 1]], { meta: '{"order":"o-1","n":12345678901234}' }),
  deduct('buyer', [['A', 1]], { buyer: 'bob' }),
  deduct('backorder', [['P', 3]]),
  // Reserves: the fast path writes the reservation's record and hold indexes too.
  reserveLines('h-c', [['C', 2]]),
  reserveLines('h-de', [['D', 3], ['E', 1]], { meta: '{"cart":"c-1"}' }),
  reserveLines('h-c', [['C', 2]]),
  reserveLines('h-c', [['C', 1]], { fp: 'fp-other' }),
  reserveLines('h-short', [['B', 1], ['E', 9]]),
  reserveLines('h-policy', [['P', 1]]),
  reserveLines('h-big', [['BIG', 1]]),
  // Ways out: units reserved already, a buyer, a buyerMax, an anyOf line, a SKU without a level.
  reserveLines('h-c2', [['C', 1]]),
  reserveLines('h-buyer', [['D', 1]], { buyer: 'cat' }),
  reserveLines('h-limited', [['L', 1]]),
  reserveLines('h-any', [['D', 1]], { given: ['2', '2', 'C', 'D', 'sku', 'D', '1', 'anyOf', '1', '0', 'order', '2', 'C', 'D'] }),
  reserveLines('h-missing', [['NOPE', 1]]),
  // Commits: the whole of a held reservation with no buyer and no due hold on its SKUs is the
  // fast path (plain_commit); a replay, a part, a buyer, one not found, one past its expiry and
  // one whose SKU holds a due hold of another reservation are not.
  reserveLines('h-due', [['D', 1]], { expires: 10 }),
  reserveLines('h-late', [['E', 1]], { expires: 10 }),
  commit('h-c', 5),
  commit('h-c', 6),
  commit('h-de', 7, [['D', 2]]),
  commit('h-buyer', 8),
  commit('h-nope', 9),
  commit('h-big', 9),
  commit('h-policy', 9),
  commit('h-late', 20),
  commit('h-any', 20),
  commit('h-c2', 21),
];

/** Every key of a ledger, read whole: its name after the prefix, its type and its content. */
async function dump(prefix: string): Promise<unknown[]> {
  const out: unknown[] = [];
  const tag = Buffer.from(`stock-ledger:{${prefix}}:`);
  for (const key of await ledgerKeysThere(client, prefix)) {
    out.push(key.subarray(tag.length).toString('hex'));
    const type = await client.type(key);
    // As bytes: members hold NUL and 0xFF (enc() in lib.lua), which no UTF-8 decoding keeps.
    const hex = (values: Buffer[]): string[] => values.map((b) => b.toString('hex'));
    if (type === 'hash') {
      const flat = hex((await client.callBuffer('HGETALL', key)) as Buffer[]);
      const pairs = Array.from({ length: flat.length / 2 }, (_, i) => `${flat[2 * i]}=${flat[2 * i + 1]}`);
      out.push(type, pairs.sort());
    } else if (type === 'zset') out.push(type, hex((await client.callBuffer('ZRANGE', key, '0', '-1', 'WITHSCORES')) as Buffer[]));
    else if (type === 'string') out.push(type, (await client.getBuffer(key))?.toString('hex'));
    else out.push(type);
  }
  return out;
}

let ledgers = 0;

/** Runs `setup` one by one, then `calls` one by one or in one batch script; the replies and the stored ledger. */
async function run(general: boolean, batched: boolean): Promise<{ replies: unknown; stored: unknown[] }> {
  const prefix = `hotpath-${process.pid}-${(ledgers += 1)}`;
  const keys = [...ledgerKeys(prefix), ...retentionKeys(prefix)];
  const evalScript = (name: LuaScriptName, args: string[]): Promise<unknown> => client.eval(body(name, general), keys.length, ...keys, ...args);
  for (const [name, args] of setup) expect(String(await evalScript(name, args))).toMatch(/^A/);
  let replies: unknown;
  if (batched) {
    replies = await evalScript('batch', [String(calls.length), ...calls.flatMap(([name, args]) => [name, String(args.length), ...args])]);
  } else {
    replies = [];
    for (const [name, args] of calls) (replies as unknown[]).push(await evalScript(name, args));
  }
  return { replies, stored: await dump(prefix) };
}

describeRedis('Redis store: the deduct, reserve and commit fast paths decide and write as the general path', () => {
  redisSuiteHooks((_server, connected) => {
    client = connected;
  });

  for (const batched of [false, true]) {
    it(batched ? 'all in one batch script' : 'one script per call', async () => {
      const general = await run(true, batched);
      const fast = await run(false, batched);
      expect(fast.replies).toEqual(general.replies);
      expect(fast.stored).toEqual(general.stored);
      // The dump holds the per-SKU entry indexes (by-sku:A, by-sku:B, ...), not only the fixed keys.
      const names = general.stored.filter((x): x is string => typeof x === 'string' && /^[0-9a-f]*$/.test(x)).map((h) => Buffer.from(h, 'hex').toString());
      expect(names).toEqual(expect.arrayContaining(['by-sku:A', 'by-sku:B', 'levels', 'entries', 'requests']));
      // Every way the calls were meant to end: applied, replayed, conflict, refused, no buyer.
      expect((general.replies as string[]).map((r) => String(r)[0])).toEqual([
        'a', 'a', 'R', 'C', 'X', 'a', 'X', 'a', 'X', 'a', 'X', 'B', 'a', 'a', 'X', 'a', 'X', 'A', 'a', 'a', 'R', 'R', 'R',
        'A', 'A', 'R', 'C', 'X', 'X', 'A', 'A', 'A', 'B', 'A', 'X',
        'A', 'A', 'A', 'R', 'A', 'A', 'X', 'A', 'X', 'X', 'A', 'A',
      ]);
    });
  }
});

describeRedis('Redis store: q() writes a string as cjson does', () => {
  redisSuiteHooks((_server, connected) => {
    client = connected;
  });

  it('the same bytes as cjson.encode for ASCII, controls, DEL, quotes, slashes, NUL and any Unicode', async () => {
    const lib = readFileSync(new URL('../adapters/redis/lua/lib.lua', import.meta.url), 'utf8')
      .replaceAll('__QUANTITY_MAX__', String(LIMITS.quantityMax)).replaceAll('__EXPIRIES_PER_SKU_MAX__', String(LIMITS.expiriesPerSkuMax));
    const script = `${lib}\nlocal out = {}\nfor i, s in ipairs(ARGV) do out[i] = q(s) end\nlocal json = {}\nfor i, s in ipairs(ARGV) do json[i] = cjson.encode(s) end\nreturn { out, json }`;
    const fixed = ['sku-1', '', 'a/b', 'a"b', 'a\\b', 'a\u0000b', 'a\u007fb', 'a\u001fb', '\n', 'pear 🍐', 'é', '{x}:y', ' spaced ', '\u2028'];
    const seed = Number(process.env['FC_SEED'] ?? Date.now() % 1_000_000);
    const drawn = fc.sample(fc.string({ unit: 'binary', maxLength: 12 }), { numRuns: 300, seed });
    const strings = [...fixed, ...drawn];
    const [ours, cjson] = (await client.eval(script, 0, ...strings)) as [string[], string[]];
    expect(ours, `seed ${seed}`).toEqual(cjson);
    expect(ours[0]).toBe('"sku-1"');
  });
});
