import type { Rejection } from './types.js';

// Stryker disable next-line StringLiteral: any key works, as long as every copy of the package uses the same one
const BRAND = Symbol.for('stock-ledger.error');

/** Codes of errors that are thrown (business outcomes are returned instead). */
export type ErrorCode =
  | 'INVALID_INPUT'
  | 'IDEMPOTENCY_CONFLICT'
  | 'STORE_UNAVAILABLE'
  | 'INVARIANT_VIOLATION'
  | 'FEED_COMPACTED'
  | Rejection['code'];

/**
 * Base of every error the library throws. Check with {@link isStockLedgerError}, which keeps
 * working when an app ends up with two copies of the package.
 *
 * @example
 * ```ts
 * try { await ledger.deduct(input); }
 * catch (e) { if (isStockLedgerError(e) && e.code === 'STORE_UNAVAILABLE') retryLater(); else throw e; }
 * ```
 */
export class StockLedgerError extends Error {
  readonly code: ErrorCode;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * True for any error thrown by any copy of stock-ledger (it checks a `Symbol.for` brand,
 * not `instanceof`).
 *
 * @example
 * ```ts
 * if (isStockLedgerError(e)) console.log(e.code);
 * ```
 */
export function isStockLedgerError(value: unknown): value is StockLedgerError {
  // Stryker disable next-line ConditionalExpression: a primitive has no brand either; the test keeps the lookup off null and undefined
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/**
 * Input that can never be valid: checked before any store access, so nothing was changed.
 *
 * @example
 * ```ts
 * await ledger.deduct({ requestId: 'r1', sku: 'A', qty: 0 }); // rejects with InvalidInputError
 * ```
 */
export class InvalidInputError extends StockLedgerError {
  /** Path of the offending field, such as `lines[2].qty`. */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('INVALID_INPUT', `${field}: ${message}`, options);
    this.field = field;
  }
}

/**
 * The request id was already used for another payload. Nothing was changed.
 *
 * @example
 * ```ts
 * await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 1 });
 * await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 2 }); // rejects: IdempotencyConflictError
 * ```
 */
export class IdempotencyConflictError extends StockLedgerError {
  readonly requestId: string;
  /** The kind of operation recorded under that id. */
  readonly storedKind: string;

  constructor(requestId: string, storedKind: string) {
    super('IDEMPOTENCY_CONFLICT', `request ${JSON.stringify(requestId)} was already used for a different ${storedKind} payload`);
    this.requestId = requestId;
    this.storedKind = storedKind;
  }
}

/**
 * The store could not be reached or did not answer. The outcome may be unknown: retrying
 * with the same request id is always safe and returns a replay if it had been applied.
 *
 * @example
 * ```ts
 * catch (e) { if (isStockLedgerError(e) && e.code === 'STORE_UNAVAILABLE') queueForRetry(input); }
 * ```
 */
export class StoreUnavailableError extends StockLedgerError {
  /** How many attempts were made before giving up (1 when it was not retried). */
  readonly attempts: number;
  /**
   * What to run again: `'operation'`, the call itself (same request id); `'transaction'`, the
   * app's whole transaction the call ran in (it lost a serialization or deadlock conflict and
   * must be rolled back; the same request ids are safe to reuse).
   */
  readonly retry: 'operation' | 'transaction';

  constructor(message: string, options?: { cause?: unknown; attempts?: number; retry?: 'operation' | 'transaction' }) {
    super('STORE_UNAVAILABLE', message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.attempts = options?.attempts ?? 1;
    this.retry = options?.retry ?? 'operation';
  }
}

/**
 * A broken invariant: a bug in a store or the core. Fails loudly instead of guessing.
 *
 * @example
 * ```ts
 * throw new InvariantViolationError('reserved exceeds onHand for SKU A');
 * ```
 */
export class InvariantViolationError extends StockLedgerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVARIANT_VIOLATION', message, options);
  }
}

/**
 * A feed cursor points into the compacted part of the feed: the entries after it up to
 * `compactedThrough` are gone, so reading on would skip them. Rebuild what the follower keeps
 * from the levels, then go on from `compactedThrough`.
 *
 * @example
 * ```ts
 * try { page = await ledger.entries({ after }); }
 * catch (e) { if (e instanceof FeedCompactedError) after = await resync(e.compactedThrough); else throw e; }
 * ```
 */
export class FeedCompactedError extends StockLedgerError {
  /** Entries up to this `seq` were compacted away. */
  readonly compactedThrough: number;
  /** The cursor that was asked for. */
  readonly after: number;

  constructor(after: number, compactedThrough: number) {
    super('FEED_COMPACTED', `entries after ${after} up to ${compactedThrough} were compacted: the follower fell behind the retention window`);
    this.after = after;
    this.compactedThrough = compactedThrough;
  }
}

/**
 * Thrown by the `...OrThrow` variants for a returned business rejection; `rejection` holds it.
 *
 * @example
 * ```ts
 * try { await ledger.deductOrThrow(input); }
 * catch (e) { if (e instanceof RejectedError && e.code === 'INSUFFICIENT_STOCK') showSoldOut(); }
 * ```
 */
export class RejectedError extends StockLedgerError {
  readonly rejection: Rejection;

  constructor(rejection: Rejection) {
    super(rejection.code, `operation rejected: ${rejection.code}`);
    this.rejection = rejection;
  }
}

/**
 * For stores that join the app's transaction: a `STORE_UNAVAILABLE` raised inside it says
 * `retry: 'transaction'` (that transaction may be gone with its connection, or unable to go on:
 * what to run again is the whole of it, not the call). Other errors pass through.
 *
 * @example
 * ```ts
 * try { return runInSavepoint(command); } catch (error) { throw inAppTransaction(error); }
 * ```
 */
export function inAppTransaction(error: unknown): unknown {
  if (!(error instanceof StoreUnavailableError) || error.retry === 'transaction') return error;
  return new StoreUnavailableError(`${error.message}; roll your transaction back and retry the whole of it`, { cause: error.cause, retry: 'transaction' });
}
