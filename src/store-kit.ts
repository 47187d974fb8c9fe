/**
 * What a store author needs, `stock-ledger/store`: the `StockStore` seam, the commands a store
 * receives, and the pure core that JavaScript stores run inside their atomic step (`decide`,
 * then `materialize`), with the comparators that fix the order of stored rows. Apps do not
 * need this subpath; they import the ledger from `stock-ledger` and a store from its own subpath.
 *
 * @example
 * ```ts
 * import { decide, materialize, type StockStore } from 'stock-ledger/store';
 * const decision = decide(command, view);
 * const written = decision.write && materialize(decision.write, lastSeq + 1);
 * ```
 * @packageDocumentation
 */
export {
  decide, materialize, levelOf, levelAsOf, zeroCounters, reservationState, publicReservation, availableOf, policyOf, withPolicy, isDefaultPolicy,
  DEFAULT_POLICY,
  type StateView, type Change, type Step, type Write, type Decision, type HoldRef, type Materialized,
} from './decide.js';
export { canonicalJson, fingerprint } from './fingerprint.js';
export { verifyItem } from './verify.js';
export { emptyCheckpoint, foldIntoCheckpoint, holderOf, reservationOf, isSettled, endsReservation, ownsRecord, withCheckpoint, type Checkpoint } from './checkpoint.js';
export { inAppTransaction } from './errors.js';
export { byCodeUnits, compareCodePoints } from './order.js';
export type * from './store.js';
export { namedSkus } from './store.js';
