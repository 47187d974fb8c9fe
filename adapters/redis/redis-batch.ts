import { InvariantViolationError, StoreUnavailableError } from '../../src/index.js';
import type { ScriptCall } from './redis-codec.js';

interface Pending {
  call: ScriptCall;
  resolve: (reply: unknown) => void;
  reject: (error: unknown) => void;
}

/** Runs one script by name with ARGV; rejects with the driver's error. */
export type SendScript = (script: ScriptCall['script'], args: readonly string[]) => Promise<unknown>;

/**
 * Gathers the operations submitted while the event loop is busy (the same turn) and sends
 * them as one `batch` script call, at most `operationsMax` per call. A lone operation goes out
 * as its own script, one event-loop turn later: no timer, no waiting for company.
 *
 * Each operation gets its own reply. An operation that failed inside the batch before it
 * wrote anything rejects alone, and the batch goes on. One that failed after it began writing
 * (Lua has no rollback: it is half-applied) rejects with `INVARIANT_VIOLATION`, and the batch
 * stops there: every operation after it rejects with `STORE_UNAVAILABLE` (it did not run; a
 * retry with its request id is safe). A failed call (connection lost, reply lost) rejects every
 * operation in it, and the ledger retries each with its own request id; so does a call that
 * cannot even be built (a command without a script: a bug), rather than leave them waiting.
 *
 * @example
 * ```ts
 * const batcher = new ScriptBatcher(send, 100);
 * const reply = await batcher.submit({ script: 'deduct', args });
 * ```
 */
export class ScriptBatcher {
  readonly #send: SendScript;
  readonly #operationsMax: number;
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(send: SendScript, operationsMax: number) {
    this.#send = send;
    this.#operationsMax = operationsMax;
  }

  submit(call: ScriptCall): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ call, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const size = batchSizeFor(this.#queue.length, this.#operationsMax);
    // Bounded: every pass takes at least one operation off a finite queue.
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, size);
      void this.#sendBatch(batch);
    }
  }

  /**
   * Sends one batch and settles each of its operations. Everything, reading the calls included,
   * is inside the `try`: #flush does not await this, so anything thrown outside it would leave
   * every operation of the batch waiting forever.
   */
  async #sendBatch(batch: Pending[]): Promise<void> {
    try {
      const only = batch.length === 1 ? batch[0] : undefined;
      if (only !== undefined) {
        only.resolve(await this.#send(only.call.script, only.call.args));
        return;
      }
      const replies = await this.#send('batch', batchArgs(batch));
      batch.forEach((pending, i) => deliver(pending, Array.isArray(replies) ? (replies as unknown[])[i] : undefined));
    } catch (error) {
      // Settled operations stay as they are: a promise settles once.
      for (const pending of batch) pending.reject(error);
    }
  }
}

/** From this many operations queued in one turn, they go as two calls or more (see batchSizeFor). */
export const SPLIT_FROM = 16;

/**
 * Operations per call for a queue of `queued`: as few calls as `operationsMax` allows, but at
 * least two from SPLIT_FROM on, of even size. Two calls in flight overlap: the server runs the
 * second while the client reads the replies of the first and sends their callers' next
 * operations, where one call would leave each side idle while the other works.
 */
export function batchSizeFor(queued: number, operationsMax: number): number {
  const calls = Math.max(Math.ceil(queued / operationsMax), queued >= SPLIT_FROM ? 2 : 1);
  return Math.max(1, Math.ceil(queued / calls));
}

/** batch.lua's ARGV: the count, then per operation its script name, its ARGV's length and its ARGV. */
function batchArgs(batch: readonly Pending[]): string[] {
  const args: string[] = [String(batch.length)];
  for (const { call } of batch) args.push(call.script, String(call.args.length), ...call.args);
  return args;
}

/**
 * Hands one operation its reply from a batch (see batch.lua): "E" is its own failure before
 * any write, "H" its failure after it began writing, "N" that it did not run.
 */
function deliver(pending: Pending, reply: unknown): void {
  const raw = reply instanceof Uint8Array ? Buffer.from(reply).toString('utf8') : reply;
  if (typeof raw !== 'string') {
    if (reply === undefined) pending.reject(new InvariantViolationError('Redis: the batch reply holds no reply for this operation'));
    else pending.resolve(reply);
    return;
  }
  switch (raw[0]) {
    case 'E':
      // The server's own error text: mapped like an error of the operation alone.
      pending.reject(new Error(raw.slice(1)));
      return;
    case 'H':
      pending.reject(new InvariantViolationError(`Redis: ${raw.slice(1)}`));
      return;
    case 'N':
      pending.reject(new StoreUnavailableError(`Redis: ${raw.slice(1)}`));
      return;
    default:
      pending.resolve(raw);
  }
}
