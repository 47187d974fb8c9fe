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
 * Each operation gets its own reply; an operation that failed inside the batch (it wrote
 * nothing) rejects alone; a failed call (connection lost, reply lost) rejects every operation
 * in it, and the ledger retries each with its own request id.
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
    // Bounded: every pass takes at least one operation off a finite queue.
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#operationsMax);
      void this.#sendBatch(batch);
    }
  }

  async #sendBatch(batch: Pending[]): Promise<void> {
    const only = batch.length === 1 ? batch[0] : undefined;
    if (only !== undefined) {
      await this.#send(only.call.script, only.call.args).then(only.resolve, only.reject);
      return;
    }
    const args: string[] = [String(batch.length)];
    for (const { call } of batch) args.push(call.script, String(call.args.length), ...call.args);
    try {
      const replies = await this.#send('batch', args);
      batch.forEach((pending, i) => settle(pending, Array.isArray(replies) ? (replies as unknown[])[i] : undefined));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }
}

/** One operation's reply from a batch: "E" and a message is its own failure. */
function settle(pending: Pending, reply: unknown): void {
  const raw = reply instanceof Uint8Array ? Buffer.from(reply).toString('utf8') : reply;
  if (typeof raw === 'string' && raw.startsWith('E')) pending.reject(new Error(raw.slice(1)));
  else if (reply === undefined) pending.reject(new Error('ERR the batch reply holds no reply for this operation'));
  else pending.resolve(reply);
}
