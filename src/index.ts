/**
 * stock-ledger: inventory deduction that never oversells and never deducts twice.
 *
 * @example
 * ```ts
 * import { StockLedger } from 'stock-ledger';
 * import { MemoryStore } from 'stock-ledger/memory';
 * const ledger = new StockLedger({ store: new MemoryStore() });
 * ```
 * @packageDocumentation
 */
export { StockLedger, type StockLedgerOptions } from './ledger.js';
export {
  StockLedgerError, InvalidInputError, IdempotencyConflictError, StoreUnavailableError, InvariantViolationError,
  RejectedError, isStockLedgerError, type ErrorCode,
} from './errors.js';
export { LIMITS, type Limits } from './limits.js';
export { withRetry, backoffMs, DEFAULT_RETRY_POLICY, type RetryPolicy, type RetryOptions } from './retry.js';
export {
  decide, materialize, levelOf, levelAsOf, zeroCounters, reservationState, publicReservation,
  type StateView, type Change, type Step, type Write, type Decision, type HoldRef, type Materialized,
} from './decide.js';
export { canonicalJson, fingerprint } from './fingerprint.js';
export { verifyItem } from './verify.js';
export { byCodeUnits, compareCodePoints } from './order.js';
export type * from './types.js';
export type * from './store.js';
