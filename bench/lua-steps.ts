/**
 * Where a Redis deduct's server time goes, step by step: 20,000 deducts (1 unit of one of 10,000
 * stocked SKUs) run inside one script, timed by the server's clock (`TIME`), with no network and
 * no batch in between; then the same with the deduct cut short after each step of the fast path
 * (plain_take in lib.lua), so each step's cost is the difference between two rows. Not a
 * benchmark (the bench gives the ratios): a Lua timing profile of the store's own scripts.
 *
 *   npx tsx bench/lua-steps.ts [rounds]
 *
 * REDIS_URL sets the server (default redis://127.0.0.1:6379). The ledger is a fresh prefix,
 * deleted afterwards. Each row is the median of `rounds` runs (default 3), alternating.
 */
import { Redis } from 'ioredis';
import { LIMITS } from 'stock-ledger';
import { ledgerKeys } from 'stock-ledger/redis';
import { LUA_SOURCES } from '../adapters/redis/redis-lua.generated.js';
import { DEFAULT_REDIS_URL, deleteKeysOf, freshPrefix } from './raw-redis.js';

const DEDUCTS = 20_000;
const SKUS = 10_000;

/** The batch script's library without its last line, so a test body can call OPS directly. */
const LIBRARY = LUA_SOURCES.batch.replaceAll('__QUANTITY_MAX__', String(LIMITS.quantityMax))
  .replaceAll('__EXPIRIES_PER_SKU_MAX__', String(LIMITS.expiriesPerSkuMax))
  .replace(/bind\(KEYS\)\s*return OPS\.batch\(ARGV\)\s*$/, '');

/** A cut: the deduct returns at this point of the source (the text it replaces must be there). */
interface Step {
  name: string;
  cut?: [find: string, replace: string];
}

const STEPS: Step[] = [
  { name: 'arguments only (the deduct returns at once)', cut: ['OPS.deduct = function(a)\n', "OPS.deduct = function(a)\n  do return 'x' end\n"] },
  { name: '+ request id looked up (HGET requests)', cut: ['local function plain_take(a, kind)\n', "local function plain_take(a, kind)\n  do return 'x' end\n"] },
  {
    name: '+ level read and checked (HGET levels)',
    cut: ["  if refusal then return 'X' .. refusal end\n  local request_id", "  if refusal then return 'X' .. refusal end\n  do return 'x' end\n  local request_id"],
  },
  { name: '+ changes decided', cut: ['  local at_text = fmt(at)\n', "  do return 'x' end\n"] },
  {
    name: '+ entry, index and level written',
    cut: ['  if not reserve then return record_taken(', "  if not reserve then do return 'x' end end\n  if not reserve then return record_taken("],
  },
  { name: '+ request recorded (the whole deduct)' },
];

/** The whole deduct with one piece taken out: how much that piece costs on its own. */
const WITHOUT: Step[] = [
  { name: 'the entry JSON (a constant string instead)', cut: ['    local e = entry_json(seq_text, s, c, at)\n    write(', "    local e = 'e'\n    write("] },
  { name: 'the entry write (HSET entries)', cut: ["    write('HSET', K_ENTRIES, seq_text, e)\n    index_entry(c.sku, seq_text)\n    entries[j] = e", '    index_entry(c.sku, seq_text)\n    entries[j] = e'] },
  { name: "the SKU's index write (ZADD by-sku:<sku>)", cut: ["    write('HSET', K_ENTRIES, seq_text, e)\n    index_entry(c.sku, seq_text)\n", "    write('HSET', K_ENTRIES, seq_text, e)\n"] },
  { name: 'the level write (HSET levels)', cut: ["    write('HSET', K_LEVELS, c.sku, fields[j])\n  end\n  return first", '  end\n  return first'] },
];

function bodyOf(step: Step): string {
  if (!step.cut) return LIBRARY;
  const [find, replace] = step.cut;
  if (!LIBRARY.includes(find)) throw new Error(`lua-steps: the source no longer holds ${JSON.stringify(find)}; update the cut`);
  return LIBRARY.replace(find, replace);
}

const SEED = `bind(KEYS)
for i = 0, ${SKUS - 1} do OPS.restock({ 'po-' .. i, 'fp', '1700000000000', '', '1', 'sku-' .. i, '1000000000' }) end
return 1`;

const RUN = `bind(KEYS)
local t0 = redis.call('TIME')
for i = 1, ${DEDUCTS} do
  OPS.deduct({ ARGV[1] .. i, 'fingerprint-0123456789abcdef', '1700000000000', '', '', '1', 'sku-' .. (i % ${SKUS}), '1', '0' })
end
local t1 = redis.call('TIME')
return (t1[1] - t0[1]) * 1000000 + (t1[2] - t0[2])`;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const client = new Redis(process.env['REDIS_URL'] || DEFAULT_REDIS_URL);
  const prefix = freshPrefix();
  const levels = ledgerKeys(prefix)[0] as string;
  try {
    await client.eval(`${LIBRARY}\n${SEED}`, 1, levels);
    const all = [...STEPS, ...WITHOUT];
    const times = all.map(() => [] as number[]);
    for (let round = 0; round < rounds; round += 1) {
      for (const [i, step] of all.entries()) {
        const us = Number(await client.eval(`${bodyOf(step)}\n${RUN}`, 1, levels, `r${round}-${i}-`));
        times[i]?.push(us / DEDUCTS);
      }
    }
    console.log(`${DEDUCTS} deducts inside one script, µs per deduct (median of ${rounds}), and each step's share:`);
    let before = 0;
    for (const [i, step] of STEPS.entries()) {
      const us = median(times[i] ?? []);
      console.log(`  ${us.toFixed(2).padStart(6)}  (${(us - before >= 0 ? '+' : '') + (us - before).toFixed(2)})  ${step.name}`);
      before = us;
    }
    console.log('The whole deduct without one piece (its cost: the difference from the whole):');
    for (const [j, step] of WITHOUT.entries()) {
      const us = median(times[STEPS.length + j] ?? []);
      console.log(`  ${us.toFixed(2).padStart(6)}  (${(us - before).toFixed(2)})  without ${step.name}`);
    }
  } finally {
    await deleteKeysOf(client, prefix);
    await client.quit();
  }
}

await main();
