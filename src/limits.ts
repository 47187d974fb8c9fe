/**
 * Every bound of the library, in one place. Inputs past these are `INVALID_INPUT` (or
 * `QUANTITY_LIMIT` for levels), checked before any store is touched.
 *
 * @example
 * ```ts
 * import { LIMITS } from 'stock-ledger';
 * if (lines.length > LIMITS.linesPerOperationMax) splitIntoSeveralOrders(lines);
 * ```
 */
export const LIMITS = Object.freeze({
  /**
   * Largest quantity in one line, and largest on-hand level of a SKU. 10^15 keeps the sum of
   * any two quantities below 2^53, so every store (Lua doubles included) computes exactly.
   */
  quantityMax: 1_000_000_000_000_000,
  /** Longest SKU, in UTF-8 bytes. */
  skuBytesMax: 256,
  /** Longest request id (and reservation id), in UTF-8 bytes. */
  requestIdBytesMax: 128,
  /** Most lines in one deduct, restock, adjust, reverse, reserve, amend or commit, before duplicates are merged. */
  linesPerOperationMax: 100,
  /**
   * Most alternatives in one `anyOf` line. A deduct or reserve names at most
   * `linesPerOperationMax` SKUs in all, alternatives included.
   */
  alternativesPerLineMax: 16,
  /** Largest `meta`, as canonical JSON, in UTF-8 bytes. */
  metaBytesMax: 4096,
  /** Deepest nesting of objects and arrays inside `meta`. */
  metaDepthMax: 8,
  /** Most SKUs in one `stocks()` call. */
  skusPerReadMax: 1000,
  /** Largest page of `entries()`. */
  entriesPageMax: 1000,
  /** Default page of `entries()`. */
  entriesPageDefault: 100,
  /** SKUs compared per atomic chunk of `verify()`. */
  verifyChunkSkus: 200,
  /** Upper bound on chunks one `verify()` walks: 200 x 1,000,000 SKUs. */
  verifyChunksMax: 1_000_000,
  /** Longest reservation, in ms (one year). */
  ttlMsMax: 366 * 24 * 60 * 60 * 1000,
  /**
   * Most due holds one operation expires per SKU it touches before it checks. A SKU with more
   * due holds than this still blocks until the next call or `sweepExpired()` clears them.
   */
  expiriesPerSkuMax: 1000,
  /** Most holds one `sweepExpired()` call expires. */
  sweepHoldsMax: 1000,
  /** Most entries (and, separately, closed request ids) one atomic step of `compact()` removes. */
  compactStepItemsMax: 1000,
  /** Upper bound on the steps one `compact()` takes. */
  compactStepsMax: 1_000_000,
  /** Longest idempotency window, in ms (ten years). */
  windowMsMax: 3660 * 24 * 60 * 60 * 1000,
  /** Largest page of `levels()`. */
  levelsPageMax: 1000,
  /** Fingerprints longer than this are stored as a SHA-256 digest. */
  fingerprintInlineCharsMax: 256,
});

/** The type of {@link LIMITS}. */
export type Limits = typeof LIMITS;
