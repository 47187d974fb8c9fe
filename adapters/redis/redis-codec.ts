import { InvalidInputError, InvariantViolationError } from '../../src/index.js';
import { byCodeUnits, levelOf, namedSkus, withPolicy } from '../../src/store-kit.js';
import type { Applied, Counters, Entry, EntryKind, FeedEntry, JsonObject, Line, OperationKind, ReservationState, StockPolicy } from '../../src/index.js';
import type {
  AmendCommand, Checkpoint, Command, CompactStep, Count, DeductCommand, HoldCheck, ReserveCommand, StoreOutcome, StoredHold, StoredRequest,
  StoredReservation,
} from '../../src/store-kit.js';
import type { LuaScriptName } from './redis-scripts.js';

/** A command as a script call: which script, and its ARGV (see each .lua file's header). */
export interface ScriptCall {
  script: LuaScriptName;
  args: string[];
}

function linesArgs(lines: readonly Line[] | null): string[] {
  if (lines === null) return ['-1'];
  const out = [String(lines.length)];
  for (const l of lines) out.push(l.sku, String(l.qty));
  return out;
}

/** An adjust's counts (adjust.lua's header): n, then per count its SKU, on-hand and expected version ("" for none). */
function countsArgs(counts: readonly Count[]): string[] {
  const out = [String(counts.length)];
  for (const c of counts) out.push(c.sku, String(c.onHand), c.expectedVersion === null ? '' : String(c.expectedVersion));
  return out;
}

/**
 * A deduct's, reserve's or amend's lines as given, after its merged lines (deduct.lua's header):
 * "0" when no line is an `anyOf` line (then the merged lines are all there is); else the number
 * of lines, the SKUs they name sorted here as JavaScript sorts (Lua compares bytes), and each line.
 */
function givenArgs(command: DeductCommand | ReserveCommand | AmendCommand): string[] {
  const { given } = command;
  if (given === null) return ['0'];
  const named = namedSkus(command);
  const out = [String(given.length), String(named.length), ...named];
  for (const l of given) {
    if ('sku' in l) out.push('sku', l.sku, String(l.qty));
    else out.push('anyOf', String(l.qty), l.split ? '1' : '0', l.prefer, String(l.anyOf.length), ...l.anyOf);
  }
  return out;
}

function metaArg(meta: JsonObject | null): string {
  return meta === null ? '' : JSON.stringify(meta);
}

/** A buyer as deduct.lua and reserve.lua read it: "" for none (a buyer is never empty). */
function buyerArg(buyer: string | null): string {
  return buyer ?? '';
}

/**
 * The script call of a command. Numbers travel as decimal strings; every quantity, time and
 * seq is a safe integer, so `String` writes it exactly.
 */
export function scriptCall(command: Command): ScriptCall {
  switch (command.kind) {
    case 'commit':
      return { script: 'commit', args: [command.reservationId, String(command.at), ...linesArgs(command.lines)] };
    case 'release':
      return { script: 'release', args: [command.reservationId, String(command.at)] };
    case 'extend':
      return { script: 'extend', args: [command.reservationId, String(command.at), String(command.expiresAt)] };
    case 'sweep':
      return { script: 'sweep', args: [String(command.limit), String(command.at)] };
    default:
      break;
  }
  const head = [command.requestId, command.fingerprint, String(command.at), metaArg(command.meta)];
  switch (command.kind) {
    case 'restock':
      return { script: 'restock', args: [...head, ...linesArgs(command.lines)] };
    case 'deduct':
      return { script: 'deduct', args: [...head, buyerArg(command.buyer), ...linesArgs(command.lines), ...givenArgs(command)] };
    case 'adjust':
      return { script: 'adjust', args: [...head, ...countsArgs(command.lines)] };
    case 'reverse':
      return { script: 'reverse', args: [...head, command.of, ...linesArgs(command.lines)] };
    case 'reserve':
      return { script: 'reserve', args: [...head, String(command.expiresAt), buyerArg(command.buyer), ...linesArgs(command.lines), ...givenArgs(command)] };
    case 'revoke':
      return { script: 'revoke', args: head };
    case 'policy':
      return { script: 'policy', args: [...head, command.sku, ...policyArgs(command.set)] };
    case 'amend':
      return { script: 'amend', args: [...head, command.reservationId, ...linesArgs(command.lines), ...givenArgs(command)] };
  }
}

/** A setPolicy's fields as policy.lua reads them: "keep" for a field left out, "null" for none (no threshold, no limit). */
function policyArgs(set: Partial<StockPolicy>): [backorderMax: string, lowStockAt: string, buyerMax: string] {
  const { backorderMax, lowStockAt, buyerMax } = set;
  const nullable = (value: number | null | undefined): string => (value === undefined ? 'keep' : value === null ? 'null' : String(value));
  return [backorderMax === undefined ? 'keep' : String(backorderMax), nullable(lowStockAt), nullable(buyerMax)];
}

/** A string reply (a Buffer one decoded as UTF-8); anything else is a broken reply. */
export function text(reply: unknown, what: string): string {
  if (typeof reply === 'string') return reply;
  if (reply instanceof Uint8Array) return Buffer.from(reply).toString('utf8');
  throw new InvariantViolationError(`Redis: ${what} replied ${typeof reply}, expected a string`);
}

function parse<T>(json: string, what: string): T {
  try {
    return JSON.parse(json) as T;
  } catch (error) {
    throw new InvariantViolationError(`Redis: ${what} replied malformed JSON`, { cause: error });
  }
}

/**
 * The outcome of an applied deduct from its compact reply (taken_tail in lib.lua): the seq of
 * its first entry, then per line (the command's lines, in order) the SKU's level as stored
 * after it. The entries and levels are what the script would have written as JSON, with the
 * same fields in the same order; the meta is parsed once per entry, as a JSON reply gives each
 * entry its own.
 */
function takenOutcome(command: Command, tail: string): StoreOutcome {
  if (command.kind !== 'deduct' || command.given !== null) throw new InvariantViolationError(`Redis: ${command.kind} replied a deduct's compact outcome`);
  const parts = tail.split('\n');
  const first = integerField(parts[0] ?? '', 'deduct');
  if (parts.length !== command.lines.length + 1) throw new InvariantViolationError(`Redis: deduct replied ${parts.length - 1} levels for ${command.lines.length} lines`);
  const meta = metaArg(command.meta);
  const entries: Entry[] = [];
  const levels: Applied['levels'] = [];
  command.lines.forEach((line, i) => {
    const counters = countersOf(parts[i + 1] as string, 'deduct');
    const entry: Entry = {
      seq: first + i, requestId: command.requestId, kind: 'deduct', sku: line.sku, onHandDelta: -line.qty, reservedDelta: 0,
      onHandAfter: counters.onHand, reservedAfter: counters.reserved, at: command.at,
    };
    if (meta !== '') entry.meta = JSON.parse(meta) as JsonObject;
    if (command.buyer !== null) entry.buyer = command.buyer;
    entries.push(entry);
    levels.push(levelOf(line.sku, counters));
  });
  return { ok: true, replayed: false, entries, levels };
}

/**
 * The outcome a script replied for `command` (see lib.lua: A, a, R, X or C and a body). "B" and a
 * SKU is the one INVALID_INPUT only the store can find (the core's requireBuyer): a deduct or
 * reserve named no buyer, or an amend's reservation has none, and that SKU has a buyerMax;
 * nothing was written.
 */
export function outcomeOf(command: Command, reply: unknown): StoreOutcome {
  const raw = text(reply, command.kind);
  const body = raw.slice(1);
  switch (raw[0]) {
    case 'A': {
      const outcome = parse<StoreOutcome & { levels: Applied['levels'] }>(body, command.kind);
      // Lua lists a sweep's SKUs as met; results list levels in JavaScript's string order.
      if (command.kind === 'sweep') outcome.levels.sort((a, b) => byCodeUnits(a.sku, b.sku));
      return outcome;
    }
    case 'a':
      return takenOutcome(command, body);
    case 'R':
      return { ...parse<Applied>(body, command.kind), replayed: true };
    case 'X':
      return parse<StoreOutcome>(body, command.kind);
    case 'B':
      throw new InvalidInputError('buyer', `is required: SKU ${JSON.stringify(body)} has a buyerMax (a limit per buyer)`);
    case 'C': {
      const requestId = command.kind === 'commit' || command.kind === 'release' || command.kind === 'extend' ? command.reservationId
        : command.kind === 'sweep' ? '' : command.requestId;
      return { ok: false, code: 'IDEMPOTENCY_CONFLICT', requestId, storedKind: body as OperationKind };
    }
    default:
      throw new InvariantViolationError(`Redis: ${command.kind} replied ${JSON.stringify(raw.slice(0, 40))}`);
  }
}

/** A stored request record: kind, at and fingerprint on their own lines, then the outcome. */
export function requestOf(requestId: string, reply: unknown): StoredRequest | null {
  const raw = text(reply, 'request');
  if (raw === '') return null;
  const a = raw.indexOf('\n');
  const b = raw.indexOf('\n', a + 1);
  const c = raw.indexOf('\n', b + 1);
  if (a < 0 || b < 0 || c < 0) throw new InvariantViolationError(`Redis: request ${JSON.stringify(requestId)} has a malformed record`);
  return {
    requestId, kind: raw.slice(0, a) as OperationKind, at: Number(raw.slice(a + 1, b)), fingerprint: raw.slice(b + 1, c),
    outcome: parse<Applied>(raw.slice(c + 1), 'request'),
  };
}

interface ReservationRecord {
  id: string; state: StoredReservation['state']; lines: Line[]; expiresAt: number; createdAt: number; committed?: Line[];
  meta?: string; buyer?: string; holds: string[]; outcome?: string;
}

/** A stored reservation record (its meta and outcome are kept as JSON text). */
export function reservationOf(reply: unknown): StoredReservation | null {
  const raw = text(reply, 'reservation');
  if (raw === '') return null;
  const r = parse<ReservationRecord>(raw, 'reservation');
  const stored: StoredReservation = {
    id: r.id, state: r.state, lines: r.lines, expiresAt: r.expiresAt, createdAt: r.createdAt, committed: r.committed ?? null,
    holds: r.holds, outcome: r.outcome === undefined ? null : parse<Applied>(r.outcome, 'reservation'),
  };
  if (r.meta !== undefined) stored.meta = parse<JsonObject>(r.meta, 'reservation');
  if (r.buyer !== undefined) stored.buyer = r.buyer;
  return stored;
}

/** Entries as the read script replies them. */
export function entriesOf(reply: unknown): FeedEntry[] {
  if (!Array.isArray(reply)) throw new InvariantViolationError('Redis: entries replied no array');
  return reply.map((item: unknown) => {
    const entry = parse<FeedEntry>(text(item, 'entries'), 'entries');
    if (!Number.isSafeInteger(entry.seq)) throw new InvariantViolationError('Redis: an entry of the feed has no seq');
    return entry;
  });
}

/** Comma-separated integers, as the scripts write counters. */
export function integers(reply: unknown, count: number, what: string): number[] {
  const parts = text(reply, what).split(',').map(Number);
  if (parts.length !== count || parts.some((n) => !Number.isSafeInteger(n))) {
    throw new InvariantViolationError(`Redis: ${what} replied ${JSON.stringify(reply)}`);
  }
  return parts;
}

/** One SKU of a verify chunk, as verify-chunk.lua read it atomically. */
export interface ChunkSku {
  sku: string;
  stored: Counters;
  /** The seq of the SKU's last entry when its level was read (0: none). */
  lastSeq: number;
  /** Its buyer totals as stored then, by buyer (0 where the index names a buyer the totals lack, as a missing total reads). */
  buyers: Map<string, number>;
  holds: HoldCheck[];
  /** What its compacted entries folded to, read with the rest; null when none was compacted. */
  checkpoint: Checkpoint | null;
}

/** Strings each hold takes in verify-chunk.lua's reply. */
const HOLD_FIELDS = 7;
/** Strings each checkpoint part takes in verify-chunk.lua's reply: tag, name, value. */
const CHECKPOINT_FIELDS = 3;

/**
 * verify-chunk.lua's reply: whether the walk goes on after this chunk, and its SKUs.
 *
 * @example
 * ```ts
 * verifyChunkOf(['0', 'A', '5,2,3', '3', '1', 'ann', '2', '1', 'cart', '2', '1700', 'held', '1700', '2', '1', '0']).skus[0]?.holds.length === 1;
 * ```
 */
export function verifyChunkOf(reply: unknown): { more: boolean; skus: ChunkSku[] } {
  if (!Array.isArray(reply) || reply.length === 0) throw new InvariantViolationError('Redis: verifyChunk replied no array');
  const items = reply as unknown[];
  const field = (i: number): string => text(items[i], 'verifyChunk');
  const skus: ChunkSku[] = [];
  let i = 1;
  // Bounded: every pass consumes at least six items of a finite reply.
  while (i < items.length) {
    const sku = field(i);
    const level = field(i + 1);
    const stored = level === '' ? { onHand: 0, reserved: 0, version: 0 } : countersOf(level);
    const lastSeq = integerField(field(i + 2), 'verifyChunk');
    const buyerCount = integerField(field(i + 3), 'verifyChunk');
    i += 4;
    const buyers = new Map<string, number>();
    for (let b = 0; b < buyerCount; b += 1, i += 2) {
      const taken = field(i + 1);
      buyers.set(field(i), taken === '' ? 0 : integerField(taken, 'verifyChunk'));
    }
    const count = integerField(field(i), 'verifyChunk');
    i += 1;
    const holds: HoldCheck[] = [];
    for (let h = 0; h < count; h += 1, i += HOLD_FIELDS) holds.push(holdCheckOf(field, i));
    const parts = integerField(field(i), 'verifyChunk');
    const checkpoint = checkpointOf(field, i + 1, parts);
    i += 1 + parts * CHECKPOINT_FIELDS;
    skus.push({ sku, stored, lastSeq, buyers, holds, checkpoint });
  }
  if (i !== items.length) throw new InvariantViolationError('Redis: verifyChunk replied a truncated chunk');
  return { more: field(0) === '1', skus };
}

/**
 * A SKU's checkpoint from `parts` triples (tag, name, value) from item `i` of a verify chunk (see
 * checkpoint.lua): null when it has no counters part (nothing of the SKU was compacted); a part
 * missing its value reads as 0, so the comparison shows it.
 */
function checkpointOf(field: (i: number) => string, i: number, parts: number): Checkpoint | null {
  let checkpoint: Checkpoint | null = null;
  const holds = new Map<string, number>();
  const buyers = new Map<string, number>();
  for (let p = 0; p < parts; p += 1, i += CHECKPOINT_FIELDS) {
    const [tag, name, value] = [field(i), field(i + 1), field(i + 2)];
    if (tag === 'c') {
      const [onHand, reserved, version] = value === '' ? [0, 0, 0] : integers(value, 3, 'verifyChunk checkpoint');
      checkpoint = { onHand: onHand ?? 0, reserved: reserved ?? 0, version: version ?? 0, holds, buyers };
    } else if (tag === 'h' || tag === 'b') {
      (tag === 'h' ? holds : buyers).set(name, value === '' ? 0 : integerField(value, 'verifyChunk'));
    } else {
      throw new InvariantViolationError(`Redis: verifyChunk replied a checkpoint part tagged ${JSON.stringify(tag)}`);
    }
  }
  // Parts without counters (foreign damage) still count: as a checkpoint of zero counters.
  if (checkpoint === null && (holds.size > 0 || buyers.size > 0)) checkpoint = { onHand: 0, reserved: 0, version: 0, holds, buyers };
  return checkpoint;
}

function holdCheckOf(field: (i: number) => string, i: number): HoldCheck {
  const state = field(i + 3);
  const lineQty = field(i + 5);
  return {
    reservationId: field(i),
    qty: integerField(field(i + 1), 'verifyChunk'),
    expiresAt: integerField(field(i + 2), 'verifyChunk'),
    // A state the library never writes is passed on as it is: verify reports it as drift.
    record: state === '' ? null : {
      state: state as ReservationState,
      expiresAt: integerField(field(i + 4), 'verifyChunk'),
      lineQty: lineQty === '' ? null : integerField(lineQty, 'verifyChunk'),
      listed: field(i + 6) === '1',
    },
  };
}

/**
 * One page of verify-fold.lua: the sums and the last seq it covered, per reservation its net
 * held units, per buyer its net units taken, per (kind, request id) its entries.
 */
export interface FoldPage {
  onHand: number;
  reserved: number;
  count: number;
  lastSeq: number;
  held: Array<[reservationId: string, qty: number]>;
  bought: Array<[buyer: string, taken: number]>;
  applied: Array<[kind: EntryKind, requestId: string, entries: number]>;
}

/**
 * verify-fold.lua's reply; null when the SKU's checkpoint moved since its chunk was read (the
 * page was not read: the SKU is read again).
 *
 * @example
 * ```ts
 * foldPageOf(['0,2,1,3', '1', 'cart', '2', '1', 'ann', '2', 'reserve', 'cart', '1']).bought; // [['ann', 2]]
 * ```
 */
export function foldPageOf(reply: unknown): FoldPage | null {
  if (Array.isArray(reply) && reply.length === 1 && text(reply[0], 'verifyFold') === 'moved') return null;
  if (!Array.isArray(reply) || reply.length < 2) throw new InvariantViolationError('Redis: verifyFold replied no page');
  const items = reply as unknown[];
  const field = (i: number): string => text(items[i], 'verifyFold');
  const [onHand, reserved, count, lastSeq] = integers(items[0], 4, 'verifyFold') as [number, number, number, number];
  const truncated = (): never => {
    throw new InvariantViolationError('Redis: verifyFold replied a truncated page');
  };
  const heldCount = integerField(field(1), 'verifyFold');
  const boughtAt = 2 + 2 * heldCount;
  if (boughtAt >= items.length) truncated();
  const boughtCount = integerField(field(boughtAt), 'verifyFold');
  const triplesFrom = boughtAt + 1 + 2 * boughtCount;
  if (triplesFrom > items.length || (items.length - triplesFrom) % 3 !== 0) truncated();
  const held: FoldPage['held'] = [];
  for (let i = 2; i < boughtAt; i += 2) held.push([field(i), integerField(field(i + 1), 'verifyFold')]);
  const bought: FoldPage['bought'] = [];
  for (let i = boughtAt + 1; i < triplesFrom; i += 2) bought.push([field(i), integerField(field(i + 1), 'verifyFold')]);
  const applied: FoldPage['applied'] = [];
  // The kind is passed on as stored: verify compares request ids and kinds, it does not act on them.
  for (let i = triplesFrom; i < items.length; i += 3) applied.push([field(i) as EntryKind, field(i + 1), integerField(field(i + 2), 'verifyFold')]);
  return { onHand, reserved, count, lastSeq, held, bought, applied };
}

/**
 * Counters from a level as stored (see lib.lua): "onHand,reserved,version" (the default
 * policy), or with ",backorderMax,lowStockAt" after it (lowStockAt "" for none), and then
 * ",buyerMax" when the SKU has one. The policy is kept only when it is not the default, as the
 * core's counters carry it.
 *
 * @example
 * ```ts
 * countersOf('5,2,3'); // { onHand: 5, reserved: 2, version: 3 }
 * countersOf('-2,0,4,10,'); // { onHand: -2, reserved: 0, version: 4, policy: { backorderMax: 10, lowStockAt: null, buyerMax: null } }
 * countersOf('5,0,4,0,,2'); // { onHand: 5, reserved: 0, version: 4, policy: { backorderMax: 0, lowStockAt: null, buyerMax: 2 } }
 * ```
 */
export function countersOf(level: string, what = 'verifyChunk'): Counters {
  const parts = level.split(',');
  if (parts.length !== 3 && parts.length !== 5 && parts.length !== 6) throw new InvariantViolationError(`Redis: ${what} replied ${JSON.stringify(level)} for a level`);
  const [onHand, reserved, version, backorderMax = 0] = parts.slice(0, 4).map((p) => integerField(p, what)) as [number, number, number, number?];
  const lowStockAt = parts[4] === undefined || parts[4] === '' ? null : integerField(parts[4], what);
  const buyerMax = parts[5] === undefined ? null : integerField(parts[5], what);
  return withPolicy({ onHand, reserved, version }, { backorderMax, lowStockAt, buyerMax });
}

/**
 * One SKU of read-stocks.lua's reply: "onHand,reserved,version,dueQty,dueCount", then
 * ",backorderMax,lowStockAt" when its policy is not the default, and ",buyerMax" when it has one.
 *
 * @example
 * ```ts
 * stockOf('5,2,3,1,1'); // { counters: { onHand: 5, reserved: 2, version: 3 }, dueQty: 1, dueCount: 1 }
 * ```
 */
export function stockOf(reply: unknown): { counters: Counters; dueQty: number; dueCount: number } {
  const parts = text(reply, 'stocks').split(',');
  const [onHand = '', reserved = '', version = '', dueQty = '', dueCount = '', ...policy] = parts;
  if (parts.length !== 5 && parts.length !== 7 && parts.length !== 8) throw new InvariantViolationError(`Redis: stocks replied ${JSON.stringify(reply)}`);
  return {
    counters: countersOf([onHand, reserved, version, ...policy].join(','), 'stocks'),
    dueQty: integerField(dueQty, 'stocks'), dueCount: integerField(dueCount, 'stocks'),
  };
}

function integerField(s: string, what: string): number {
  const n = /^-?\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw new InvariantViolationError(`Redis: ${what} replied ${JSON.stringify(s)} for an integer`);
  return n;
}

/** The holds a read-holds reply lists: id, qty, expiresAt, meta (or ""), buyer (or "") for each. */
export function holdsOf(reply: unknown): StoredHold[] {
  if (!Array.isArray(reply) || reply.length % 5 !== 0) throw new InvariantViolationError('Redis: holds replied something else than a list of fives');
  const holds: StoredHold[] = [];
  for (let i = 0; i < reply.length; i += 5) {
    const meta = text(reply[i + 3], 'hold meta');
    const buyer = text(reply[i + 4], 'hold buyer');
    const hold: StoredHold = {
      reservationId: text(reply[i], 'hold id'), qty: Number(text(reply[i + 1], 'hold qty')), expiresAt: Number(text(reply[i + 2], 'hold expiry')),
    };
    if (meta !== '') hold.meta = JSON.parse(meta) as JsonObject;
    if (buyer !== '') hold.buyer = buyer;
    holds.push(hold);
  }
  return holds;
}

/**
 * read-buyers.lua's reply: one total per SKU asked, in order.
 *
 * @example
 * ```ts
 * buyerTotalsOf(['2', '0'], 2); // [2, 0]
 * ```
 */
export function buyerTotalsOf(reply: unknown, count: number): number[] {
  if (!Array.isArray(reply) || reply.length !== count) throw new InvariantViolationError('Redis: buyerTotals replied no total per SKU');
  return (reply as unknown[]).map((item) => integerField(text(item, 'buyerTotals'), 'buyerTotals'));
}

/**
 * compact.lua's reply: "requests,reservations,entries,compactedThrough,more".
 *
 * @example
 * ```ts
 * compactStepOf('2,1,5,40,0'); // { requests: 2, reservations: 1, entries: 5, compactedThrough: 40, more: false }
 * ```
 */
export function compactStepOf(reply: unknown): CompactStep {
  const [requests, reservations, entries, compactedThrough, more] = integers(reply, 5, 'compact') as [number, number, number, number, number];
  return { requests, reservations, entries, compactedThrough, more: more === 1 };
}

/**
 * read-levels.lua's reply: pairs of a SKU and its stock string (as {@link stockOf} reads it).
 *
 * @example
 * ```ts
 * levelsOf(['A', '5,2,3,0,0']); // [{ sku: 'A', stock: { counters: { onHand: 5, reserved: 2, version: 3 }, dueQty: 0, dueCount: 0 } }]
 * ```
 */
export function levelsOf(reply: unknown): Array<{ sku: string; stock: ReturnType<typeof stockOf> }> {
  if (!Array.isArray(reply) || reply.length % 2 !== 0) throw new InvariantViolationError('Redis: levels replied something else than pairs');
  const out: Array<{ sku: string; stock: ReturnType<typeof stockOf> }> = [];
  for (let i = 0; i < reply.length; i += 2) out.push({ sku: text(reply[i], 'levels'), stock: stockOf(reply[i + 1]) });
  return out;
}
