import { InvalidInputError } from '../../src/index.js';

/** What a ledger prefix may be: 1 to 64 characters of `[A-Za-z0-9_.:-]`. */
const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;

/** The start of every key of a ledger: its hash tag is the prefix. */
const tagOf = (prefix: string): string => `stock-ledger:{${prefix}}:`;

/**
 * The twelve keys of one ledger, in the order of adapters/redis/lua/lib.lua's list. The store
 * names only the first (levels) in a script call: the scripts derive the others from it, and a
 * caller that names all of them, in this order, gets the same keys. Each carries the hash tag
 * `{<prefix>}`: the prefix holds no brace, so the tag is exactly the prefix and every key of a
 * ledger lands in one Cluster slot. SKUs, ids and buyers appear in key names only after the name
 * of the fourth key (`by-sku`) and a colon, each SKU's entry index (layout 2): after the hash
 * tag, so no SKU can move a key to another slot, and after a fixed name, so none can collide with
 * another key. The last two (buyer totals and their per-SKU index) came with purchase limits;
 * the first ten are as they were.
 *
 * @example
 * ```ts
 * ledgerKeys('shop-1')[0] === 'stock-ledger:{shop-1}:levels';
 * ```
 */
export function ledgerKeys(prefix: string): readonly string[] {
  const tag = tagOf(prefix);
  return Object.freeze(
    [
      'levels', 'seq', 'entries', 'by-sku', 'skus', 'requests', 'reversed', 'reservations', 'holds-by-sku', 'holds-due', 'buyers', 'buyers-by-sku',
    ].map((name) => tag + name),
  );
}

/**
 * The four keys of retention (compaction), after the twelve in every script's KEYS (see
 * adapters/redis/lua/lib.lua): each SKU's checkpoint and its index, the feed's horizon, and where
 * compaction's pass over the request records for closed ids stands. Only compaction writes them,
 * so a ledger of the earlier layout opens as it is and operations write what they always wrote.
 * Kept apart from `ledgerKeys`, whose twelve are the keys every operation needs.
 *
 * @example
 * ```ts
 * retentionKeys('shop-1')[2] === 'stock-ledger:{shop-1}:horizon';
 * ```
 */
export function retentionKeys(prefix: string): readonly string[] {
  const tag = tagOf(prefix);
  return Object.freeze(['checkpoints', 'checkpoints-by-sku', 'horizon', 'closed-scan'].map((name) => tag + name));
}

/**
 * The ledger's layout version: the store's layout script reads it (and moves an older layout's
 * keys into this one) before the store's first call of anything else. Each SKU's entry index
 * is a key of its own from layout 2 on: the bySku key's name, a colon, the SKU (see lib.lua).
 *
 * @example
 * ```ts
 * layoutKey('shop-1') === 'stock-ledger:{shop-1}:layout';
 * ```
 */
export function layoutKey(prefix: string): string {
  return `${tagOf(prefix)}layout`;
}

/**
 * The ledger's AOF marker: with `waitForAof`, the store INCRs it right after every script call,
 * on the same connection and in the same pipeline, so that connection has written something
 * after the state its script read (even for a replay or a rejection, which write nothing), and
 * WAITAOF then confirms that write, and everything before it in the append-only file. It is no
 * script's key: the scripts derive `ledgerKeys`, `retentionKeys` and `layoutKey` from the first.
 *
 * @example
 * ```ts
 * aofKey('shop-1') === 'stock-ledger:{shop-1}:aof';
 * ```
 */
export function aofKey(prefix: string): string {
  return `${tagOf(prefix)}aof`;
}

/**
 * Checks a ledger prefix; throws `INVALID_INPUT` for anything but 1 to 64 characters of
 * `[A-Za-z0-9_.:-]`.
 *
 * @example
 * ```ts
 * checkPrefix('shop-1'); // 'shop-1'
 * ```
 */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new InvalidInputError('prefix', 'must be 1 to 64 characters of A-Z, a-z, 0-9, _ . : -');
  }
  return prefix;
}
