import { LIMITS } from '../../src/index.js';
import type {
  AdjustInput, DeductInput, Entry, JsonObject, Level, Line, OperationKind, OperationResult, RequestRecord,
  RestockInput, ReverseInput,
} from '../../src/index.js';
import type { Op, Outcome, Thrown } from './ops.js';

/** One applied operation, kept exactly as it was first answered. Never changed afterwards. */
interface AppliedOperation {
  requestId: string;
  kind: OperationKind;
  /** The normalized payload as canonical text: same text, same request. */
  payload: string;
  /** For a reverse: the request it gives back. */
  of: string | null;
  at: number;
  entries: Entry[];
  levels: Level[];
}

/** A change to one SKU, before it becomes an entry. */
interface Delta {
  sku: string;
  onHandDelta: number;
}

/**
 * The reference model of one ledger: deliberately plain and slow, written from the contract
 * (DESIGN.md sections 2 to 5), not from the library's decision code.
 *
 * Its whole state is the list of applied operations. Entries are their concatenation, a
 * SKU's level is the fold of its entries, and "what is left to reverse" is recomputed from the
 * list each time. It expects input that passed validation, except for the two invalid inputs
 * the generators make on purpose (merged quantities past the limit, a reverse of itself), which
 * it answers with `{ thrown: 'INVALID_INPUT' }`.
 *
 * @example
 * ```ts
 * const model = new ReferenceModel();
 * model.apply({ kind: 'restock', input: { requestId: 'r1', sku: 'A', qty: 5 } }, 1000);
 * model.level('A').onHand === 5;
 * ```
 */
export class ReferenceModel {
  #applied: AppliedOperation[] = [];

  /** An independent copy (applied operations are immutable, so sharing them is safe). */
  clone(): ReferenceModel {
    const copy = new ReferenceModel();
    copy.#applied = [...this.#applied];
    return copy;
  }

  /** Runs one op at time `at` (ignored by `stock`) and returns what the ledger must answer. */
  apply(op: Op, at: number): Outcome {
    switch (op.kind) {
      case 'restock':
        return this.restock(op.input, at);
      case 'deduct':
        return this.deduct(op.input, at);
      case 'adjust':
        return this.adjust(op.input, at);
      case 'reverse':
        return this.reverse(op.input, at);
      case 'stock':
        return this.level(op.sku);
    }
  }

  restock(input: RestockInput, at: number): OperationResult | Thrown {
    const payload = canonical(['restock', input.sku, input.qty, input.meta ?? null]);
    return this.#run(input.requestId, 'restock', payload, null, input.meta, at, () => {
      const level = this.level(input.sku);
      if (level.onHand + input.qty > LIMITS.quantityMax) {
        return { ok: false, code: 'QUANTITY_LIMIT', sku: input.sku, requested: input.qty, onHand: level.onHand, limit: LIMITS.quantityMax };
      }
      return [{ sku: input.sku, onHandDelta: input.qty }];
    });
  }

  deduct(input: DeductInput, at: number): OperationResult | Thrown {
    const lines = mergeLines('lines' in input ? input.lines : [{ sku: input.sku, qty: input.qty }]);
    if (lines.some((line) => line.qty > LIMITS.quantityMax)) return { thrown: 'INVALID_INPUT' };
    const payload = canonical(['deduct', lines.map((l) => [l.sku, l.qty]), input.meta ?? null]);
    return this.#run(input.requestId, 'deduct', payload, null, input.meta, at, () => {
      for (const line of lines) {
        const available = this.level(line.sku).available;
        if (available < line.qty) return { ok: false, code: 'INSUFFICIENT_STOCK', sku: line.sku, requested: line.qty, available };
      }
      return lines.map((line) => ({ sku: line.sku, onHandDelta: -line.qty }));
    });
  }

  adjust(input: AdjustInput, at: number): OperationResult | Thrown {
    const payload = canonical(['adjust', input.sku, input.onHand, input.expectedVersion ?? null, input.meta ?? null]);
    return this.#run(input.requestId, 'adjust', payload, null, input.meta, at, () => {
      const level = this.level(input.sku);
      if (input.expectedVersion !== undefined && input.expectedVersion !== level.version) {
        return { ok: false, code: 'VERSION_CONFLICT', sku: input.sku, expectedVersion: input.expectedVersion, level };
      }
      if (input.onHand > LIMITS.quantityMax) {
        return { ok: false, code: 'QUANTITY_LIMIT', sku: input.sku, requested: input.onHand, onHand: level.onHand, limit: LIMITS.quantityMax };
      }
      if (input.onHand < level.reserved) return { ok: false, code: 'BELOW_RESERVED', sku: input.sku, requested: input.onHand, level };
      return [{ sku: input.sku, onHandDelta: input.onHand - level.onHand }];
    });
  }

  reverse(input: ReverseInput, at: number): OperationResult | Thrown {
    if (input.of === input.requestId) return { thrown: 'INVALID_INPUT' };
    const asked = input.lines === undefined ? null : mergeLines(input.lines);
    if (asked !== null && asked.some((line) => line.qty > LIMITS.quantityMax)) return { thrown: 'INVALID_INPUT' };
    const payload = canonical(['reverse', input.of, asked === null ? null : asked.map((l) => [l.sku, l.qty]), input.meta ?? null]);
    return this.#run(input.requestId, 'reverse', payload, input.of, input.meta, at, () => {
      const original = this.#find(input.of);
      if (original === undefined) return { ok: false, code: 'REQUEST_NOT_FOUND', requestId: input.of };
      if (original.kind !== 'deduct') return { ok: false, code: 'NOT_REVERSIBLE', requestId: input.of, kind: original.kind };
      const remaining = (sku: string): number => this.#taken(original, sku) - this.#givenBack(input.of, sku);
      let lines: Line[];
      if (asked === null) {
        lines = original.entries.map((e) => ({ sku: e.sku, qty: remaining(e.sku) })).filter((line) => line.qty > 0);
        const first = original.entries[0];
        if (lines.length === 0 && first !== undefined) {
          return { ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: first.sku, requested: this.#taken(original, first.sku), remaining: 0 };
        }
      } else {
        lines = asked;
      }
      for (const line of lines) {
        const left = remaining(line.sku);
        if (line.qty > left) return { ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: line.sku, requested: line.qty, remaining: left };
        const onHand = this.level(line.sku).onHand;
        if (onHand + line.qty > LIMITS.quantityMax) {
          return { ok: false, code: 'QUANTITY_LIMIT', sku: line.sku, requested: line.qty, onHand, limit: LIMITS.quantityMax };
        }
      }
      return lines.map((line) => ({ sku: line.sku, onHandDelta: line.qty }));
    });
  }

  /** Every entry so far, in order. */
  entries(): Entry[] {
    return this.#applied.flatMap((op) => op.entries.map(copyEntry));
  }

  /** The level of a SKU: the fold of its entries. */
  level(sku: string): Level {
    let onHand = 0;
    let reserved = 0;
    let version = 0;
    for (const op of this.#applied) {
      for (const entry of op.entries) {
        if (entry.sku !== sku) continue;
        onHand += entry.onHandDelta;
        reserved += entry.reservedDelta;
        version += 1;
      }
    }
    return { sku, onHand, reserved, available: onHand - reserved, version };
  }

  /** Every SKU with an entry, sorted. */
  skus(): string[] {
    return [...new Set(this.#applied.flatMap((op) => op.entries.map((e) => e.sku)))].sort();
  }

  /** What `ledger.request(id)` must return. */
  request(requestId: string): RequestRecord | null {
    const op = this.#find(requestId);
    if (op === undefined) return null;
    return {
      ok: true, replayed: true, entries: op.entries.map(copyEntry), levels: op.levels.map((l) => ({ ...l })),
      requestId: op.requestId, kind: op.kind, at: op.at,
    };
  }

  /** Units of `sku` a reverse of `of` may still give back (0 unless `of` is an applied deduct). */
  reversible(of: string, sku: string): number {
    const original = this.#find(of);
    if (original === undefined || original.kind !== 'deduct') return 0;
    return this.#taken(original, sku) - this.#givenBack(of, sku);
  }

  /** Ids of every applied operation, in order. */
  requestIds(): string[] {
    return this.#applied.map((op) => op.requestId);
  }

  /** The kind of an applied request, or null. */
  kindOf(requestId: string): OperationKind | null {
    return this.#find(requestId)?.kind ?? null;
  }

  /** Text that is equal for two models exactly when their applied operations are. */
  key(): string {
    return JSON.stringify(this.#applied.map((op) => [op.requestId, op.payload, op.at, op.entries.length]));
  }

  #find(requestId: string): AppliedOperation | undefined {
    return this.#applied.find((op) => op.requestId === requestId);
  }

  #taken(original: AppliedOperation, sku: string): number {
    let taken = 0;
    for (const entry of original.entries) if (entry.sku === sku) taken -= entry.onHandDelta;
    return taken;
  }

  #givenBack(of: string, sku: string): number {
    let given = 0;
    for (const op of this.#applied) {
      if (op.kind !== 'reverse' || op.of !== of) continue;
      for (const entry of op.entries) if (entry.sku === sku) given += entry.onHandDelta;
    }
    return given;
  }

  /**
   * The idempotency rule, then the operation: a known id with the same payload is a replay of
   * the first answer, with another payload a conflict; an unknown id is evaluated, and only an
   * applied result is remembered.
   */
  #run(
    requestId: string, kind: OperationKind, payload: string, of: string | null, meta: JsonObject | undefined, at: number,
    evaluate: () => Delta[] | Exclude<OperationResult, { ok: true }>,
  ): OperationResult | Thrown {
    const known = this.#find(requestId);
    if (known !== undefined) {
      if (known.payload !== payload) return { thrown: 'IDEMPOTENCY_CONFLICT' };
      return { ok: true, replayed: true, entries: known.entries.map(copyEntry), levels: known.levels.map((l) => ({ ...l })) };
    }
    const decided = evaluate();
    if (!Array.isArray(decided)) return decided;
    let seq = this.entries().length;
    const entries: Entry[] = [];
    const levels: Level[] = [];
    for (const delta of decided) {
      const before = this.level(delta.sku);
      seq += 1;
      const entry: Entry = {
        seq, requestId, kind, sku: delta.sku, onHandDelta: delta.onHandDelta, reservedDelta: 0,
        onHandAfter: before.onHand + delta.onHandDelta, reservedAfter: before.reserved, at,
      };
      if (meta !== undefined) entry.meta = JSON.parse(JSON.stringify(meta)) as JsonObject;
      entries.push(entry);
      levels.push({
        sku: delta.sku, onHand: entry.onHandAfter, reserved: entry.reservedAfter,
        available: entry.onHandAfter - entry.reservedAfter, version: before.version + 1,
      });
    }
    this.#applied.push({ requestId, kind, payload, of, at, entries, levels });
    return { ok: true, replayed: false, entries: entries.map(copyEntry), levels: levels.map((l) => ({ ...l })) };
  }
}

/** Same SKU on several lines adds up; then sorted by SKU (JavaScript string order). */
function mergeLines(lines: readonly Line[]): Line[] {
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.qty);
  return [...totals.keys()].sort().map((sku) => ({ sku, qty: totals.get(sku) ?? 0 }));
}

/** JSON with object keys sorted, so `{ a, b }` and `{ b, a }` give one text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    return `{${Object.keys(object).sort().map((key) => `${JSON.stringify(key)}:${canonical(object[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function copyEntry(entry: Entry): Entry {
  return { ...entry };
}
