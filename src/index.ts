/**
 * stock-ledger: inventory deduction that never oversells and never deducts twice.
 *
 * @example
 * ```ts
 * import { StockLedger } from 'stock-ledger';
 * import { MemoryStore } from 'stock-ledger/memory';
 * const ledger = new StockLedger({ store: new MemoryStore() });
 * ```
 *
 * Stores come from their own subpaths (`stock-ledger/memory`, `stock-ledger/sqlite`,
 * `stock-ledger/redis`); `stock-ledger/testing` is the conformance kit, and `stock-ledger/store`
 * what a store author needs.
 * @packageDocumentation
 */
export { StockLedger, type StockLedgerOptions, type CallOptions } from './ledger.js';
export {
  StockLedgerError, InvalidInputError, IdempotencyConflictError, StoreUnavailableError, InvariantViolationError,
  RejectedError, FeedCompactedError, isStockLedgerError, type ErrorCode,
} from './errors.js';
export { LIMITS, type Limits } from './limits.js';
export { OPERATION_CHANNEL, type OperationTrace } from './tracing.js';
export { withRetry, backoffMs, DEFAULT_RETRY_POLICY, type RetryPolicy, type RetryOptions } from './retry.js';
export type * from './types.js';
// The seam a store plugs into, for typing a store an app passes around; what store authors
// need beyond it lives in `stock-ledger/store`.
export type { StockStore } from './store.js';
