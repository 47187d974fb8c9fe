import { InvariantViolationError } from '../../src/index.js';
import type { Counters, Entry, EntryKind, FeedEntry, JsonObject, Level, Line, StockPolicy } from '../../src/index.js';
import { levelOf, withPolicy } from '../../src/store-kit.js';

/**
 * PostgreSQL `text` cannot hold U+0000, which SKUs and request ids may contain. Keys are
 * stored escaped: U+0000 as U+0001 U+0001, U+0001 as U+0001 U+0002, everything else as is.
 * The escape is prefix-free and keeps code-point order (U+0000 < U+0001 < U+0002...), so byte
 * order (`COLLATE "C"`) of stored keys is the code-point order of the keys, and no two keys
 * share a stored form.
 *
 * @example
 * ```ts
 * encodeKey('a\u0000b'); // 'a\u0001\u0001b'
 * ```
 */
export function encodeKey(key: string): string {
  if (!key.includes('\u0000') && !key.includes('\u0001')) return key;
  let out = '';
  for (const c of key) out += c === '\u0000' ? '\u0001\u0001' : c === '\u0001' ? '\u0001\u0002' : c;
  return out;
}

/** The inverse of {@link encodeKey}. */
export function decodeKey(stored: string): string {
  if (!stored.includes('\u0001')) return stored;
  let out = '';
  for (let i = 0; i < stored.length; i += 1) {
    const c = stored[i] as string;
    if (c !== '\u0001') {
      out += c;
      continue;
    }
    i += 1;
    out += stored[i] === '\u0001' ? '\u0000' : '\u0001';
  }
  return out;
}

/** An integer the database returned (a number, a bigint's text, or a bigint), checked. */
export function int(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' || typeof value === 'bigint' ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new InvariantViolationError(`PostgreSQL store: ${what} is not a safe integer: ${String(value)}`);
  return n;
}

export function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new InvariantViolationError(`PostgreSQL store: ${what} is not text: ${String(value)}`);
  return value;
}

/** A policy as stored: `backorder_max`, `low_stock_at` and `buyer_max` (null: none), as numbers or bigint text. */
function storedPolicy(backorderMax: unknown, lowStockAt: unknown, buyerMax: unknown): StockPolicy {
  return {
    backorderMax: int(backorderMax, 'backorder_max'),
    lowStockAt: lowStockAt === null || lowStockAt === undefined ? null : int(lowStockAt, 'low_stock_at'),
    buyerMax: buyerMax === null || buyerMax === undefined ? null : int(buyerMax, 'buyer_max'),
  };
}

/** The row shape of a level inside the store's JSON replies: counters and policy. */
export interface LevelJson {
  s: string; h: number | string; r: number | string; v: number | string; bm: number | string; ls: number | string | null; bx: number | string | null;
  /** The row version's xmin, where the lock-and-load asks for it (its staleness check). */
  x?: string;
}

/** SQL naming the fields of a {@link LevelJson}, from a levels row aliased `a` (inside a json_build_object). */
export const levelFields = (a: string): string =>
  `'s', ${a}.sku, 'h', ${a}.on_hand, 'r', ${a}.reserved, 'v', ${a}.version, 'bm', ${a}.backorder_max, 'ls', ${a}.low_stock_at, 'bx', ${a}.buyer_max`;

/** Counters from a level row; a default policy leaves `policy` out, as the core expects. */
export function countersOf(row: LevelJson): Counters {
  const counters = { onHand: int(row.h, 'on_hand'), reserved: int(row.r, 'reserved'), version: int(row.v, 'version') };
  return withPolicy(counters, storedPolicy(row.bm, row.ls, row.bx));
}

/** The row shape of an entry inside the store's JSON replies (short names keep replies small). */
export interface EntryJson {
  op: number; pos: number; seq: number | null; r: string; k: EntryKind; s: string; dh: number; dr: number; ah: number; ar: number;
  v: number; at: number; m: string | null;
  /** The SKU's policy right after the entry (on every entry: replays rebuild levels from them). */
  bm: number; ls: number | null; bx: number | null;
  /** The buyer, escaped like every key; null: none. */
  b: string | null;
  /** On amend entries: the reservation whose hold moved (escaped); null otherwise. */
  vr: string | null;
}

/** SQL that builds an {@link EntryJson} from an entries row aliased `e`. */
export const ENTRY_JSON =
  "json_build_object('op', e.op, 'pos', e.pos, 'seq', e.seq, 'r', e.request_id, 'k', e.kind, 's', e.sku, 'dh', e.on_hand_delta, " +
  "'dr', e.reserved_delta, 'ah', e.on_hand_after, 'ar', e.reserved_after, 'v', e.version_after, 'at', e.at, 'm', e.meta, " +
  "'bm', e.backorder_max_after, 'ls', e.low_stock_at_after, 'bx', e.buyer_max_after, 'b', e.buyer, 'vr', e.reservation_id)";

/** Where an entry lives: its place in the ledger's (op, pos) order. */
export interface EntryRef {
  op: number;
  pos: number;
}

/** An entry from its stored row. `seq` is null until the sequencer numbered it. */
export function entryOf(row: EntryJson): Entry {
  const entry: Entry = {
    seq: row.seq, requestId: decodeKey(row.r), kind: row.k, sku: decodeKey(row.s), onHandDelta: row.dh, reservedDelta: row.dr,
    onHandAfter: row.ah, reservedAfter: row.ar, at: row.at,
  };
  if (row.m !== null) entry.meta = JSON.parse(row.m) as JsonObject;
  // Only a policy entry shows the policy (the whole of it, defaults included).
  if (row.k === 'policy') entry.policy = storedPolicy(row.bm, row.ls, row.bx);
  if (row.b !== null && row.b !== undefined) entry.buyer = decodeKey(row.b);
  if (row.vr !== null && row.vr !== undefined) entry.reservationId = decodeKey(row.vr);
  return entry;
}

/**
 * An entry of the feed from its stored row: the feed reads numbered rows only.
 *
 * @example
 * ```ts
 * const page = rows.map(feedEntryOf);
 * ```
 */
export function feedEntryOf(row: EntryJson): FeedEntry {
  const entry = entryOf(row);
  if (entry.seq === null) throw new InvariantViolationError(`PostgreSQL store: the feed read an unnumbered entry of ${JSON.stringify(entry.requestId)}`);
  return entry as FeedEntry;
}

/** The level right after an entry, from its row, the policy of that moment included. */
export function levelAfter(row: EntryJson): Level {
  return levelOf(decodeKey(row.s), withPolicy({ onHand: row.ah, reserved: row.ar, version: row.v }, storedPolicy(row.bm, row.ls, row.bx)));
}

/** Lines stored as JSON text (JSON escapes U+0000, so lines keep their SKUs as they are). */
export function linesOf(text: string): Line[] {
  return JSON.parse(text) as Line[];
}
