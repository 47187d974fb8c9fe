import { InvalidInputError } from '../../src/index.js';

/**
 * Group commit of {@link PostgresStore}: operations of one process issued while a batch is
 * pending share one transaction (one commit flush), each with its own outcome.
 *
 * @example
 * ```ts
 * new PostgresStore({ client: pool, groupCommit: { batchOperationsMax: 64, batchWaitMs: 1, batchesInFlightMax: 2 } });
 * ```
 */
export interface PostgresGroupCommitOptions {
  /** Most operations in one transaction, 1 to 1000. Default 128. A full batch starts at once. */
  batchOperationsMax?: number;
  /**
   * How long the first operation of a batch waits for others, 0 to 100 ms. Default 0: the
   * batch starts on the next event-loop turn, with what was issued in this one (and whatever
   * queued while earlier batches were in flight).
   */
  batchWaitMs?: number;
  /**
   * Batches in flight at once, 1 to 16 (each on its own connection). Default 4 with a pool
   * (1 with a single connection). More lets batches on different SKUs overlap; batches on
   * one hot SKU wait for each other's row locks anyway.
   */
  batchesInFlightMax?: number;
}

/** Resolved settings. */
export interface GroupCommitSettings {
  batchOperationsMax: number;
  batchWaitMs: number;
  batchesInFlightMax: number;
}

const LIMITS_OF = {
  batchOperationsMax: { fallback: 128, min: 1, max: 1000 },
  batchWaitMs: { fallback: 0, min: 0, max: 100 },
  batchesInFlightMax: { fallback: 4, min: 1, max: 16 },
} as const;

/**
 * The group-commit settings in force (null: one transaction per operation), or
 * `INVALID_INPUT` for a bad option. `inFlightDefault` is what the connection allows.
 *
 * @example
 * ```ts
 * checkGroupCommit(undefined, 4); // { batchOperationsMax: 128, batchWaitMs: 0, batchesInFlightMax: 4 }
 * ```
 */
export function checkGroupCommit(value: unknown, inFlightDefault: number): GroupCommitSettings | null {
  if (value === false) return null;
  const settings: GroupCommitSettings = {
    batchOperationsMax: LIMITS_OF.batchOperationsMax.fallback, batchWaitMs: LIMITS_OF.batchWaitMs.fallback, batchesInFlightMax: inFlightDefault,
  };
  if (value === undefined || value === true) return settings;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError('groupCommit', 'must be a boolean or { batchOperationsMax?, batchWaitMs?, batchesInFlightMax? }');
  }
  for (const [key, given] of Object.entries(value as Record<string, unknown>)) {
    if (!(key in LIMITS_OF)) throw new InvalidInputError(`groupCommit.${key}`, 'is not an option');
    if (given === undefined) continue;
    const { min, max } = LIMITS_OF[key as keyof typeof LIMITS_OF];
    if (typeof given !== 'number' || !Number.isInteger(given) || given < min || given > max) {
      throw new InvalidInputError(`groupCommit.${key}`, `must be an integer from ${min} to ${max}`);
    }
    settings[key as keyof GroupCommitSettings] = given as number;
  }
  return settings;
}

/** One queued operation and its promise. */
export interface Pending<C, R> {
  command: C;
  resolve(result: R): void;
  reject(error: unknown): void;
}

/**
 * Queues operations and hands them to `write` in bounded batches, at most
 * `batchesInFlightMax` at a time. `write` settles every promise of its batch itself.
 *
 * @example
 * ```ts
 * const queue = new BatchQueue(settings, (batch) => writeBatch(batch));
 * const outcome = await queue.push(command);
 * ```
 */
export class BatchQueue<C, R> {
  readonly #settings: GroupCommitSettings;
  readonly #write: (batch: Pending<C, R>[]) => Promise<void>;
  #queue: Pending<C, R>[] = [];
  #inFlight = 0;
  #scheduled = false;
  #idle: Array<() => void> = [];

  constructor(settings: GroupCommitSettings, write: (batch: Pending<C, R>[]) => Promise<void>) {
    this.#settings = settings;
    this.#write = write;
  }

  push(command: C): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ command, resolve, reject });
      if (this.#queue.length >= this.#settings.batchOperationsMax) this.#start();
      else this.#schedule();
    });
  }

  /** Resolves once everything queued now has been written (for close: no promise left hanging). */
  drain(): Promise<void> {
    this.#start();
    if (this.#queue.length === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const go = (): void => {
      this.#scheduled = false;
      this.#start();
    };
    if (this.#settings.batchWaitMs === 0) setImmediate(go);
    else setTimeout(go, this.#settings.batchWaitMs);
  }

  /** Starts batches while connections allow; what is left starts when one finishes. */
  #start(): void {
    while (this.#inFlight < this.#settings.batchesInFlightMax && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#settings.batchOperationsMax);
      this.#inFlight += 1;
      void this.#write(batch)
        .catch((error: unknown) => {
          // write settles every promise itself; this only keeps a bug from leaving one hanging.
          for (const pending of batch) pending.reject(error);
        })
        .finally(() => {
          this.#inFlight -= 1;
          // Operations that queued meanwhile form the next batch at once: that is group commit.
          this.#start();
          if (this.#queue.length === 0 && this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
        });
    }
  }
}
