import { FeedCompactedError, InvalidInputError, StoreUnavailableError } from './errors.js';
import { LIMITS } from './limits.js';
import type { StockStore } from './store.js';
import { policyOf } from './decide.js';
import type { EntriesPage, FeedEntry, RequestRecord, StockEvent, StockEventType, StockPolicy } from './types.js';

/** Rounds of reading "from the oldest kept" while compaction keeps moving it, before giving up. */
const FEED_START_ATTEMPTS_MAX = 8;

/**
 * One page of the feed from a store, never with a silent gap: a cursor below the compacted
 * part throws {@link FeedCompactedError}; no cursor reads from the oldest entry kept. The
 * compacted part is read after the entries: it only grows, so a cursor at or above it then was
 * at or above it when the entries were read.
 */
export async function readFeed(store: StockStore, query: { after: number | null; sku: string | null; limit: number }): Promise<FeedEntry[]> {
  const horizon = store.compactedThrough;
  if (horizon === undefined) return store.entries({ ...query, after: query.after ?? 0 });
  const { after } = query;
  if (after !== null) {
    const entries = await store.entries({ ...query, after });
    const through = await horizon.call(store);
    if (after < through) throw new FeedCompactedError(after, through);
    return entries;
  }
  let from = await horizon.call(store);
  for (let attempt = 0; attempt < FEED_START_ATTEMPTS_MAX; attempt += 1) {
    const entries = await store.entries({ ...query, after: from });
    const through = await horizon.call(store);
    if (through <= from) return entries;
    from = through;
  }
  throw new StoreUnavailableError('the feed kept being compacted while its oldest entries were read; retry');
}

/** A follower's position: after entry `seq`, and past the events of entry `seq + 1` up to index `done`. */
interface EventCursor {
  seq: number;
  done: number;
}

/** Checked options of a stock-events follower. */
export interface EventsPlan {
  from: EventCursor | null;
  lowStockAt: number | null;
  follow: boolean;
  pollMs: number;
  signal: AbortSignal | null;
  pageSize: number;
}

/** Validates the options of `stockEvents()` (`StockEventsOptions`). */
export function toEventsOptions(input: unknown): EventsPlan {
  if (typeof input !== 'object' || input === null) throw new InvalidInputError('options', 'must be an object');
  const o = input as Record<string, unknown>;
  const lowStockAt = o['lowStockAt'] ?? null;
  if (lowStockAt !== null && !isCount(lowStockAt, LIMITS.quantityMax)) throw new InvalidInputError('lowStockAt', `must be an integer from 0 to ${LIMITS.quantityMax}`);
  const pollMs = o['pollMs'] ?? 500;
  if (!isCount(pollMs, 60_000)) throw new InvalidInputError('pollMs', 'must be an integer from 0 to 60000');
  const pageSize = o['pageSize'] ?? 500;
  if (!isCount(pageSize, LIMITS.entriesPageMax) || pageSize === 0) throw new InvalidInputError('pageSize', `must be an integer from 1 to ${LIMITS.entriesPageMax}`);
  const follow = o['follow'] ?? true;
  if (typeof follow !== 'boolean') throw new InvalidInputError('follow', 'must be a boolean');
  const signal = o['signal'] ?? null;
  if (signal !== null && !(signal instanceof AbortSignal)) throw new InvalidInputError('signal', 'must be an AbortSignal');
  return { from: cursorOf(o['after']), lowStockAt: lowStockAt as number | null, follow, pollMs: pollMs as number, signal, pageSize: pageSize as number };
}

function isCount(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}

/** `"12"` is after entry 12; `"12.1"` is inside entry 12, past its events 0 and 1. */
function cursorOf(value: unknown): EventCursor | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return { seq: value, done: -1 };
  const match = typeof value === 'string' ? /^(\d{1,16})(?:\.(\d))?$/.exec(value) : null;
  const seq = match === null ? NaN : Number(match[1]);
  if (match === null || !Number.isSafeInteger(seq)) throw new InvalidInputError('after', 'must be an event cursor or a non-negative entry seq');
  return match[2] === undefined ? { seq, done: -1 } : { seq: seq - 1, done: Number(match[2]) };
}

/** What a follower reads through: the ledger's feed, request records and current policies. */
export interface EventSource {
  page: (after: number | null, limit: number) => Promise<EntriesPage>;
  skuPage: (sku: string, after: number, limit: number) => Promise<FeedEntry[]>;
  record: (requestId: string) => Promise<RequestRecord | null>;
  policies: (skus: string[]) => Promise<StockPolicy[]>;
}

/**
 * The events of the feed from the options' cursor on, as an async iterable. Bad options reject
 * the first `next()` (an operation never throws synchronously). A SKU's policy comes from the
 * record of the first entry the follower meets of it, then from the feed's policy entries.
 */
export function followStockEvents(options: unknown, source: EventSource): AsyncIterable<StockEvent> {
  return { [Symbol.asyncIterator]: () => run(options, source) };
}

async function* run(options: unknown, source: EventSource): AsyncGenerator<StockEvent> {
  const plan = toEventsOptions(options);
  const policies = new Map<string, StockPolicy>();
  let after = plan.from === null ? null : plan.from.seq;
  // Inside an entry: skip its events the follower already handled.
  const resumeIn = plan.from === null || plan.from.done < 0 ? null : { seq: plan.from.seq + 1, done: plan.from.done };
  while (!aborted(plan.signal)) {
    const page = await source.page(after, plan.pageSize);
    await learnPolicies(page.entries, policies, source);
    for (const entry of page.entries) {
      const events = crossings(entry, policies, plan.lowStockAt);
      const skip = resumeIn !== null && entry.seq === resumeIn.seq ? resumeIn.done : -1;
      for (const [i, event] of events.entries()) {
        if (aborted(plan.signal)) return;
        if (i > skip) yield { ...event, cursor: i === events.length - 1 ? String(entry.seq) : `${entry.seq}.${i}` };
      }
      after = entry.seq;
    }
    if (page.entries.length < plan.pageSize) {
      if (!plan.follow) return;
      await pause(plan.pollMs, plan.signal);
    }
  }
}

/**
 * The policy in force at the first entry of each SKU the follower has not met yet: exact from
 * the request records (their levels carry the policy as it stood), else the current one.
 */
async function learnPolicies(entries: FeedEntry[], known: Map<string, StockPolicy>, source: EventSource): Promise<void> {
  const firsts = new Map<string, FeedEntry>();
  for (const entry of entries) if (!known.has(entry.sku) && !firsts.has(entry.sku)) firsts.set(entry.sku, entry);
  const unknown: string[] = [];
  for (const [sku, entry] of firsts) {
    const policy = entry.kind === 'policy' ? { ...(entry.policy as StockPolicy) } : await policyAt(entry, source);
    if (policy === null) unknown.push(sku);
    else known.set(sku, policy);
  }
  if (unknown.length === 0) return;
  const found = await source.policies(unknown);
  unknown.forEach((sku, i) => known.set(sku, found[i] as StockPolicy));
}

/**
 * The policy of `entry.sku` right after `entry`, from the record of its request: the level it
 * shows for the SKU, then any policy entry of the SKU between that level and `entry`. Null
 * when the record is gone (compacted) or names no earlier entry of the SKU.
 */
async function policyAt(entry: FeedEntry, source: EventSource): Promise<StockPolicy | null> {
  const record = await source.record(entry.requestId);
  if (record === null) return null;
  const i = record.entries.findIndex((e) => e.sku === entry.sku && e.seq !== null && e.seq <= entry.seq);
  const level = record.levels.find((l) => l.sku === entry.sku);
  const from = record.entries[i];
  if (from === undefined || from.seq === null || level === undefined) return null;
  let policy = policyOf(level);
  let after = from.seq;
  while (after < entry.seq) {
    const page = await source.skuPage(entry.sku, after, POLICY_SCAN_PAGE);
    for (const e of page) if (e.seq < entry.seq && e.policy !== undefined) policy = { ...e.policy };
    const last = page[page.length - 1];
    if (last === undefined) break;
    after = last.seq;
  }
  return policy;
}

/** Entries of one SKU read per page while looking for policy changes. */
const POLICY_SCAN_PAGE = 1000;

type Crossing = Omit<StockEvent, 'cursor'>;

/**
 * The events one entry causes, in the order they happen (below the threshold, then empty). A
 * policy entry moves no stock and causes none: later entries are judged by the new policy.
 */
function crossings(entry: FeedEntry, policies: Map<string, StockPolicy>, fallback: number | null): Crossing[] {
  if (entry.policy !== undefined) {
    policies.set(entry.sku, { ...entry.policy });
    return [];
  }
  const policy = policies.get(entry.sku) as StockPolicy;
  const availableBefore = entry.onHandAfter - entry.onHandDelta - (entry.reservedAfter - entry.reservedDelta) + policy.backorderMax;
  const available = entry.onHandAfter - entry.reservedAfter + policy.backorderMax;
  const low = policy.lowStockAt ?? fallback;
  const event = (type: StockEventType, threshold: number): Crossing => ({ type, sku: entry.sku, availableBefore, available, threshold, entry });
  const out: Crossing[] = [];
  if (low !== null && available <= low && availableBefore > low) out.push(event('belowThreshold', low));
  if (availableBefore > 0 && available <= 0) out.push(event('depleted', 0));
  // Back above the threshold, or above 0 without one.
  const floor = low ?? 0;
  if (availableBefore <= floor && available > floor) out.push(event('replenished', floor));
  return out;
}

/** Read through a call, so each check sees the signal as it is now. */
function aborted(signal: AbortSignal | null): boolean {
  return signal?.aborted === true;
}

function pause(ms: number, signal: AbortSignal | null): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
