/** A JSON value as accepted in `meta`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object, the shape of `meta`. */
export type JsonObject = { [key: string]: JsonValue };

/** The stock of one SKU. An unknown SKU has all zeros. */
export interface Level {
  sku: string;
  /** Units physically there. */
  onHand: number;
  /** Units held for someone. */
  reserved: number;
  /** `onHand - reserved`: what a deduct may take. */
  available: number;
  /** Number of entries this SKU has; grows by one on every change. */
  version: number;
}

/** Kinds of operation, and of the entries they append. */
export type OperationKind = 'restock' | 'deduct' | 'adjust' | 'reverse';

/** One immutable record of a change to one SKU. */
export interface Entry {
  /** Position in the ledger, from 1, growing by one per entry: a cursor for readers. */
  seq: number;
  requestId: string;
  kind: OperationKind;
  sku: string;
  onHandDelta: number;
  reservedDelta: number;
  onHandAfter: number;
  reservedAfter: number;
  /** Time of the operation, in ms, from the ledger's clock. */
  at: number;
  meta?: JsonObject;
}

/** One SKU and a quantity. */
export interface Line {
  sku: string;
  qty: number;
}

/** Outcome of an applied operation (or of a replay of one). */
export interface Applied {
  ok: true;
  /** True when this request id had already been applied: nothing changed this time. */
  replayed: boolean;
  entries: Entry[];
  /** The levels right after the operation, one per SKU it touched, sorted by SKU. */
  levels: Level[];
}

/** A deduct (or reserve) line asked for more than is available. */
export interface InsufficientStock {
  ok: false;
  code: 'INSUFFICIENT_STOCK';
  sku: string;
  requested: number;
  available: number;
}

/** `adjust` with an `expectedVersion` that is not the current one. */
export interface VersionConflict {
  ok: false;
  code: 'VERSION_CONFLICT';
  sku: string;
  expectedVersion: number;
  level: Level;
}

/** `adjust` to an on-hand below what is reserved. */
export interface BelowReserved {
  ok: false;
  code: 'BELOW_RESERVED';
  sku: string;
  requested: number;
  level: Level;
}

/** The change would take a SKU's on-hand past {@link LIMITS.quantityMax}. */
export interface QuantityLimit {
  ok: false;
  code: 'QUANTITY_LIMIT';
  sku: string;
  requested: number;
  onHand: number;
  limit: number;
}

/** `reverse` names a request id that was never applied. */
export interface RequestNotFound {
  ok: false;
  code: 'REQUEST_NOT_FOUND';
  requestId: string;
}

/** `reverse` names a request that is not a deduct. */
export interface NotReversible {
  ok: false;
  code: 'NOT_REVERSIBLE';
  requestId: string;
  kind: OperationKind;
}

/** The reversals of one request would give back more than it took of a SKU. */
export interface ReversalExceedsOriginal {
  ok: false;
  code: 'REVERSAL_EXCEEDS_ORIGINAL';
  sku: string;
  requested: number;
  /** Units of that SKU still reversible. */
  remaining: number;
}

/** Every business rejection. A rejected operation records nothing. */
export type Rejection =
  | InsufficientStock
  | VersionConflict
  | BelowReserved
  | QuantityLimit
  | RequestNotFound
  | NotReversible
  | ReversalExceedsOriginal;

export type RestockResult = Applied | QuantityLimit;
export type DeductResult = Applied | InsufficientStock;
export type AdjustResult = Applied | VersionConflict | BelowReserved | QuantityLimit;
export type ReverseResult = Applied | RequestNotFound | NotReversible | ReversalExceedsOriginal | QuantityLimit;
export type OperationResult = Applied | Rejection;

interface InputBase {
  /** Caller-chosen id, unique per ledger across every kind: the idempotency key. */
  requestId: string;
  /** Small JSON object saying who and why (order id, user, reason); part of the payload. */
  meta?: JsonObject;
}

export interface RestockInput extends InputBase {
  sku: string;
  qty: number;
}

export type DeductInput = (InputBase & { lines: Line[] }) | (InputBase & { sku: string; qty: number });

export interface AdjustInput extends InputBase {
  sku: string;
  /** The counted on-hand, set absolutely. */
  onHand: number;
  /** When given, the adjust applies only if the SKU's version is still this one. */
  expectedVersion?: number;
}

export interface ReverseInput extends InputBase {
  /** Request id of the deduct to give back. */
  of: string;
  /** Lines to give back; all that the original took when omitted. */
  lines?: Line[];
}

export interface EntriesQuery {
  /** Return entries with `seq` greater than this (default 0). */
  after?: number;
  /** Only this SKU's entries. */
  sku?: string;
  /** Page size, 1 to 1000, default 100. */
  limit?: number;
}

export interface EntriesPage {
  entries: Entry[];
  /** The `seq` to pass as `after` for the next page; null when this page is empty. */
  next: number | null;
}

/** What `request(id)` returns: the stored outcome of an applied request. */
export interface RequestRecord extends Applied {
  requestId: string;
  kind: OperationKind;
  at: number;
  replayed: true;
}

/** The counters of a SKU as stored, or as folded from its entries. */
export interface Counters {
  onHand: number;
  reserved: number;
  version: number;
}

/** One SKU whose stored level does not match its entries, or breaks an invariant. */
export interface Drift {
  sku: string;
  stored: Counters;
  folded: Counters;
  problems: string[];
}

export interface VerifyReport {
  ok: boolean;
  skusChecked: number;
  drift: Drift[];
}
