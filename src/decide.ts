import { InvariantViolationError } from './errors.js';
import { LIMITS } from './limits.js';
import type { Command, ReverseCommand, StoreOutcome, StoredRequest } from './store.js';
import type { Applied, Counters, Entry, Level, Line, Rejection } from './types.js';

/**
 * What a JavaScript store lets {@link decide} read, synchronously, inside its atomic step.
 * Unknown SKUs read as zeros.
 */
export interface StateView {
  counters(sku: string): Counters;
  request(requestId: string): StoredRequest | null;
  /** Units of `sku` already given back by reversals of request `of`. */
  reversed(of: string, sku: string): number;
}

/** One SKU's change, before the store gives it a `seq`. */
export interface Change {
  sku: string;
  onHandDelta: number;
  reservedDelta: number;
  before: Counters;
}

/** Everything an applied command writes; the store adds `seq` and persists it in one step. */
export interface Write {
  command: Command;
  /** One per SKU, sorted by SKU. */
  changes: Change[];
  /** Increments of the reversed tally of `command.of`, for a reverse. */
  reversals: Line[];
}

/** What to do: return an outcome without writing, or write. */
export type Decision = { outcome: StoreOutcome; write: null } | { outcome: null; write: Write };

const zero: Counters = Object.freeze({ onHand: 0, reserved: 0, version: 0 });

/** Counters of a SKU never seen. */
export function zeroCounters(): Counters {
  return { ...zero };
}

/** A level from counters. */
export function levelOf(sku: string, c: Counters): Level {
  return { sku, onHand: c.onHand, reserved: c.reserved, available: c.onHand - c.reserved, version: c.version };
}

const reject = (rejection: Rejection): Decision => ({ outcome: rejection, write: null });

/**
 * The pure decision of one command against the current state: a replay, a conflict, a
 * rejection, or the changes to write. Memory and SQLite stores call it inside their atomic step.
 *
 * @example
 * ```ts
 * const decision = decide(command, view);
 * if (decision.write) persist(decision.write); else return decision.outcome;
 * ```
 */
export function decide(command: Command, view: StateView): Decision {
  const stored = view.request(command.requestId);
  if (stored !== null) {
    if (stored.fingerprint === command.fingerprint) return { outcome: { ...stored.outcome, replayed: true }, write: null };
    return { outcome: { ok: false, code: 'IDEMPOTENCY_CONFLICT', requestId: command.requestId, storedKind: stored.kind }, write: null };
  }
  switch (command.kind) {
    case 'restock':
      return restock(command.sku, command.qty, command, view);
    case 'deduct':
      return deduct(command.lines, command, view);
    case 'adjust':
      return adjust(command, view);
    case 'reverse':
      return reverse(command, view);
  }
}

function written(command: Command, changes: Change[], reversals: Line[] = []): Decision {
  return { outcome: null, write: { command, changes, reversals } };
}

function overLimit(sku: string, requested: number, c: Counters): Rejection | null {
  if (c.onHand + requested <= LIMITS.quantityMax) return null;
  return { ok: false, code: 'QUANTITY_LIMIT', sku, requested, onHand: c.onHand, limit: LIMITS.quantityMax };
}

function restock(sku: string, qty: number, command: Command, view: StateView): Decision {
  const before = view.counters(sku);
  const limit = overLimit(sku, qty, before);
  if (limit !== null) return reject(limit);
  return written(command, [{ sku, onHandDelta: qty, reservedDelta: 0, before }]);
}

function deduct(lines: Line[], command: Command, view: StateView): Decision {
  const changes: Change[] = [];
  for (const { sku, qty } of lines) {
    const before = view.counters(sku);
    const available = before.onHand - before.reserved;
    if (available < qty) return reject({ ok: false, code: 'INSUFFICIENT_STOCK', sku, requested: qty, available });
    changes.push({ sku, onHandDelta: -qty, reservedDelta: 0, before });
  }
  return written(command, changes);
}

function adjust(command: Extract<Command, { kind: 'adjust' }>, view: StateView): Decision {
  const { sku, onHand, expectedVersion } = command;
  const before = view.counters(sku);
  if (expectedVersion !== null && expectedVersion !== before.version) {
    return reject({ ok: false, code: 'VERSION_CONFLICT', sku, expectedVersion, level: levelOf(sku, before) });
  }
  if (onHand > LIMITS.quantityMax) {
    return reject({ ok: false, code: 'QUANTITY_LIMIT', sku, requested: onHand, onHand: before.onHand, limit: LIMITS.quantityMax });
  }
  if (onHand < before.reserved) return reject({ ok: false, code: 'BELOW_RESERVED', sku, requested: onHand, level: levelOf(sku, before) });
  return written(command, [{ sku, onHandDelta: onHand - before.onHand, reservedDelta: 0, before }]);
}

/** Units of each SKU the original took, from its entries. */
function takenBy(original: StoredRequest): Map<string, number> {
  const taken = new Map<string, number>();
  for (const entry of original.outcome.entries) taken.set(entry.sku, (taken.get(entry.sku) ?? 0) - entry.onHandDelta);
  return taken;
}

function reverse(command: ReverseCommand, view: StateView): Decision {
  const original = view.request(command.of);
  if (original === null) return reject({ ok: false, code: 'REQUEST_NOT_FOUND', requestId: command.of });
  if (original.kind !== 'deduct') return reject({ ok: false, code: 'NOT_REVERSIBLE', requestId: command.of, kind: original.kind });
  const taken = takenBy(original);
  const remaining = (sku: string): number => (taken.get(sku) ?? 0) - view.reversed(command.of, sku);
  const lines = command.lines ?? [...taken.keys()].map((sku) => ({ sku, qty: remaining(sku) })).filter((l) => l.qty > 0);
  if (lines.length === 0) {
    const [sku = '', qty = 0] = [...taken][0] ?? [];
    return reject({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku, requested: qty, remaining: 0 });
  }
  const changes: Change[] = [];
  for (const { sku, qty } of lines) {
    if (qty > remaining(sku)) return reject({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku, requested: qty, remaining: remaining(sku) });
    const before = view.counters(sku);
    const limit = overLimit(sku, qty, before);
    if (limit !== null) return reject(limit);
    changes.push({ sku, onHandDelta: qty, reservedDelta: 0, before });
  }
  return written(command, changes, lines);
}

/** Counters after a change, checked against the invariants. */
export function after(change: Change): Counters {
  const onHand = change.before.onHand + change.onHandDelta;
  const reserved = change.before.reserved + change.reservedDelta;
  if (reserved < 0 || onHand < reserved || onHand > LIMITS.quantityMax) {
    throw new InvariantViolationError(`SKU ${JSON.stringify(change.sku)} would reach onHand ${onHand}, reserved ${reserved}`);
  }
  return { onHand, reserved, version: change.before.version + 1 };
}

/**
 * Turns a write into its entries (numbered from `firstSeq`), its outcome and its request record.
 *
 * @example
 * ```ts
 * const { outcome, entries, request } = materialize(decision.write, lastSeq + 1);
 * ```
 */
export function materialize(write: Write, firstSeq: number): { outcome: Applied; entries: Entry[]; request: StoredRequest } {
  const { command } = write;
  const entries: Entry[] = [];
  const levels: Level[] = [];
  write.changes.forEach((change, i) => {
    const next = after(change);
    const entry: Entry = {
      seq: firstSeq + i,
      requestId: command.requestId,
      kind: command.kind,
      sku: change.sku,
      onHandDelta: change.onHandDelta,
      reservedDelta: change.reservedDelta,
      onHandAfter: next.onHand,
      reservedAfter: next.reserved,
      at: command.at,
    };
    if (command.meta !== null) entry.meta = command.meta;
    entries.push(entry);
    levels.push(levelOf(change.sku, next));
  });
  const outcome: Applied = { ok: true, replayed: false, entries, levels };
  const request: StoredRequest = { requestId: command.requestId, kind: command.kind, fingerprint: command.fingerprint, at: command.at, outcome };
  return { outcome, entries, request };
}
