/**
 * The seeded differential harness of the Redis tests: a ledger on a clock the test moves, a
 * plan of calls and clock moves, a player that runs it one call at a time or batched, and a
 * reading of everything a ledger holds. The memory store (the core's decide()) is the
 * reference: a plan played on it and on a Redis store must give the same outcomes and state.
 */
import { StockLedger, isStockLedgerError } from 'stock-ledger';
import { type MemoryStore } from 'stock-ledger/memory';
import { RedisStore, type RedisClientLike } from 'stock-ledger/redis';
import { readAllEntries } from 'stock-ledger/testing';
import { seededRandom } from '../../testing/random.js';

/** The time every clocked ledger starts at. */
export const T0 = 1_700_000_000_000;

/** A ledger, its prefix (none for memory) and a clock the test moves. */
export interface Clocked {
  ledger: StockLedger;
  prefix: string;
  clock: { now: number };
}

/** A ledger on `store` with its own clock at {@link T0} and no retry, so both stores see the same times and calls. */
export function clocked(store: MemoryStore | RedisStore, prefix = ''): Clocked {
  const clock = { now: T0 };
  return { ledger: new StockLedger({ store, clock: () => clock.now, retry: false }), prefix, clock };
}

let ledgers = 0;

/** A Redis ledger under a fresh prefix (`<name>-<pid>-<n>`), so the ledgers of a shared server never meet. */
export function redisClocked(client: RedisClientLike, name: string, batch: boolean): Clocked {
  const prefix = `${name}-${process.pid}-${(ledgers += 1)}`;
  return clocked(new RedisStore({ client, prefix, batch }), prefix);
}

/** A call on a ledger (an operation or a read), as plans and hand-written lists of calls hold them. */
export type Call = (l: StockLedger) => Promise<unknown>;

/** Runs a call and gives what it returned, or what it threw in a form `toEqual` compares. */
export type Outcome = (call: () => Promise<unknown>) => Promise<unknown>;

/**
 * An {@link Outcome} that gives a thrown StockLedgerError as its code and one detail: the
 * `storedKind` of an idempotency conflict, or the `message` where the wording is the point.
 * Other errors are rethrown: they are bugs of the test, not outcomes.
 */
export function outcomeWith(detail: 'storedKind' | 'message'): Outcome {
  return async (call) => {
    try {
      return await call();
    } catch (error) {
      if (!isStockLedgerError(error)) throw error;
      const kept = detail === 'message' ? error.message : (error as { storedKind?: unknown }).storedKind;
      return { threw: error.code, [detail]: kept };
    }
  };
}

/**
 * The outcomes of `calls` on `ledger`, each awaited before the next: the reference a batch of
 * the same calls must give.
 */
export async function oneByOne(ledger: StockLedger, calls: readonly Call[], outcome: Outcome): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const call of calls) out.push(await outcome(() => call(ledger)));
  return out;
}

/** The outcomes of `calls` on `ledger`, all submitted in one event-loop turn: one batch on a batching store. */
export function allAtOnce(ledger: StockLedger, calls: readonly Call[], outcome: Outcome): Promise<unknown[]> {
  return Promise.all(calls.map((call) => outcome(() => call(ledger))));
}

/** One step: a call on a ledger (a read or an operation), or a move of the clock. */
export type Step = { call: Call; read?: true } | { advanceMs: number };

/** Draws of a plan: a whole number in [min, max], an element of a list. */
export interface Draws {
  int: (min: number, max: number) => number;
  pick: <T>(xs: readonly T[]) => T;
}

/** Seeded draws (mulberry32, {@link seededRandom}): a plan is the same on every run of a seed. */
export function generator(seed: number): Draws {
  const random = seededRandom(seed);
  const int = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));
  return { int, pick: (xs) => xs[int(0, xs.length - 1)] as (typeof xs)[number] };
}

/** A plan as it is drawn: its steps, and the requests so far with their ids, for replays and reversals to draw from. */
export interface PlanDraft {
  steps: Step[];
  requests: Call[];
  ids: string[];
}

/**
 * Draws `length` requests, q0, q1, ...: `draw` gives the call of each, kept as a step and as a
 * request (for replays to draw from), or null when it has none to make (no cart yet) or added a
 * step of its own (a clock move, a read). One loop for every seeded plan.
 */
export function drawPlan(length: number, draw: (id: string, draft: PlanDraft) => Call | null): PlanDraft {
  const draft: PlanDraft = { steps: [], requests: [], ids: [] };
  for (let i = 0; i < length; i += 1) {
    const id = `q${i}`;
    const call = draw(id, draft);
    if (call === null) continue;
    draft.steps.push({ call });
    draft.requests.push(call);
    draft.ids.push(id);
  }
  return draft;
}

/** A move of the clock by 0 to 120 ms, added to the draft: due holds are what the plans are about. */
export function advanceOf({ int }: Draws, draft: PlanDraft): null {
  draft.steps.push({ advanceMs: int(0, 120) });
  return null;
}

/** A restock of a drawn SKU by 1 to 4 units: the plans' one way to add stock. */
export function restockOf({ int, pick }: Draws, requestId: string, skus: readonly string[]): Call {
  const input = { requestId, sku: pick(skus), qty: int(1, 4) };
  return (l) => l.restock(input);
}

/** A commit of a drawn cart, whole or (one time in two) one unit of a drawn SKU; null while there is no cart. */
export function commitOf({ int, pick }: Draws, carts: readonly string[], skus: readonly string[]): Call | null {
  if (carts.length === 0) return null;
  const cart = pick(carts);
  const input = int(0, 1) === 0 ? { reservationId: cart } : { reservationId: cart, lines: [{ sku: pick(skus), qty: 1 }] };
  return (l) => l.commit(input);
}

/** A release of a drawn cart; null while there is no cart. */
export function releaseOf({ pick }: Draws, carts: readonly string[]): Call | null {
  if (carts.length === 0) return null;
  const cart = pick(carts);
  return (l) => l.release({ reservationId: cart });
}

/** A reversal of `of`, whole or (one time in two) one unit of a drawn SKU: a part now and then, often not in it. */
export function reversalOf({ int, pick }: Draws, requestId: string, of: string, skus: readonly string[]): Call {
  const input = int(0, 1) === 0 ? { requestId, of } : { requestId, of, lines: [{ sku: pick(skus), qty: 1 }] };
  return (l) => l.reverse(input);
}

/** How {@link play} runs a plan. */
export interface PlayOptions {
  /** Submit the operations between two clock moves (or reads) in one event-loop turn. */
  batch: boolean;
  /** How each call's outcome is recorded: see {@link outcomeWith}. */
  outcome: Outcome;
  /** A reading taken after every clock move and at the end, added to the outcomes. */
  observe?: (ledger: StockLedger) => Promise<unknown>;
}

/**
 * Runs the plan. Batched, the operations between two clock moves (or reads) are submitted in
 * one event-loop turn (one batch script, applied in order); the outcomes are those of running
 * them one by one. Reads are not batched: a read waits for the round before it.
 */
export async function play({ ledger, clock }: Clocked, plan: readonly Step[], options: PlayOptions): Promise<unknown[]> {
  const out: unknown[] = [];
  let round: Array<Promise<unknown>> = [];
  const flush = async (): Promise<void> => {
    out.push(...(await Promise.all(round)));
    round = [];
  };
  const observe = async (): Promise<void> => {
    if (options.observe !== undefined) out.push(await options.observe(ledger));
  };
  for (const step of plan) {
    if ('advanceMs' in step) {
      await flush();
      clock.now += step.advanceMs;
      await observe();
      continue;
    }
    if (step.read === true) await flush();
    const pending = options.outcome(() => step.call(ledger));
    if (options.batch && step.read !== true) round.push(pending);
    else out.push(await pending);
  }
  await flush();
  await observe();
  return out;
}

/** What a ledger holds: every entry, every request record and reservation, the levels of `skus`. */
export async function ledgerState(ledger: StockLedger, skus: readonly string[]): Promise<Record<string, unknown>> {
  const entries = await readAllEntries(ledger);
  const ids = [...new Set(entries.map((e) => e.requestId))].sort();
  return {
    entries,
    records: await Promise.all(ids.map((id) => ledger.request(id))),
    reservations: await Promise.all(ids.map((id) => ledger.reservation(id))),
    levels: await ledger.stocks([...skus]),
  };
}
