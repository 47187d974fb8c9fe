import { tracingChannel } from 'node:diagnostics_channel';
import { isStockLedgerError } from './errors.js';
import type { Command } from './store.js';

/**
 * The name of the `TracingChannel` every ledger operation is published on: subscribe to
 * `tracing:stock-ledger:operation:start`, `...:asyncEnd`, `...:error` (or use
 * `diagnostics_channel.tracingChannel(OPERATION_CHANNEL).subscribe({...})`).
 *
 * @example
 * ```ts
 * import { tracingChannel } from 'node:diagnostics_channel';
 * tracingChannel(OPERATION_CHANNEL).subscribe({ asyncEnd: (c) => console.log(c.kind, c.code, c.attempts) });
 * ```
 */
export const OPERATION_CHANNEL = 'stock-ledger:operation';

/**
 * What a subscriber sees of one operation, the same object at start and at the end. Set at
 * start: `kind`, `requestId`, `reservationId`, `skus`, `store`, `joined`. Set by the end:
 * `attempts` (1 plus the retries), `ok`, `code` (the rejection or error code, null when
 * applied), `replayed`; `error` is set when the call threw, `result` when it resolved.
 */
export interface OperationTrace {
  /** The command's kind: `restock`, `deduct`, ..., `policy` (setPolicy), `sweep` (sweepExpired). */
  kind: Command['kind'];
  /** The request id of an operation that has one; null for commit, release, extend and sweep. */
  requestId: string | null;
  /** The reservation a commit, release, extend or amend names; else null. */
  reservationId: string | null;
  /** SKUs the operation names up front (alternatives of `anyOf` lines included). */
  skus: string[];
  /** The store's class name (`MemoryStore`, `SqliteStore`, `RedisStore`, `PostgresStore`). */
  store: string;
  /** True when the call ran inside the app's own transaction (never retried then). */
  joined: boolean;
  attempts: number;
  ok: boolean | null;
  code: string | null;
  replayed: boolean | null;
  result?: unknown;
  error?: unknown;
}

const channel = tracingChannel<unknown, OperationTrace>(OPERATION_CHANNEL);

/**
 * Runs one operation, published on {@link OPERATION_CHANNEL} when something listens; when nothing
 * does, it is `run` itself, with one property read of overhead. `run` gets a counter to call
 * on every attempt it makes.
 */
export function traced<T>(command: Command, store: object, joined: boolean, run: (attempt: () => void) => Promise<T>): Promise<T> {
  if (!channel.hasSubscribers) return run(noop);
  const trace = traceOf(command, store, joined);
  const attempt = (): void => {
    trace.attempts += 1;
  };
  return channel.tracePromise(() => run(attempt).then((result) => {
    settle(trace, result);
    return result;
  }, (error: unknown) => {
    trace.ok = false;
    trace.code = isStockLedgerError(error) ? error.code : 'UNTYPED';
    throw error;
  }), trace);
}

const noop = (): void => undefined;

function traceOf(command: Command, store: object, joined: boolean): OperationTrace {
  const named = command as { requestId?: string; reservationId?: string };
  return {
    kind: command.kind, requestId: named.requestId ?? null, reservationId: named.reservationId ?? null, skus: skusOf(command),
    store: store.constructor.name, joined,
    attempts: 0, ok: null, code: null, replayed: null,
  };
}

/** SKUs a command names up front, whatever its shape: one `sku`, `lines`, and `anyOf` alternatives. */
function skusOf(command: Command): string[] {
  const c = command as { sku?: unknown; lines?: unknown; given?: unknown };
  const lines = Array.isArray(c.given) ? c.given : Array.isArray(c.lines) ? c.lines : [];
  const skus = (lines as Array<{ sku?: string; anyOf?: string[] }>).flatMap((l) => l.anyOf ?? (l.sku === undefined ? [] : [l.sku]));
  if (typeof c.sku === 'string') skus.push(c.sku);
  return [...new Set(skus)];
}

function settle(trace: OperationTrace, result: unknown): void {
  const r = result as { ok?: boolean; code?: string; replayed?: boolean };
  trace.ok = r.ok ?? true;
  trace.code = r.ok === false ? (r.code ?? null) : null;
  trace.replayed = r.replayed ?? false;
}
