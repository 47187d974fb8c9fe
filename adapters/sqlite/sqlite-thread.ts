import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  FeedCompactedError, IdempotencyConflictError, InvalidInputError, InvariantViolationError, RejectedError, StoreUnavailableError, isStockLedgerError,
} from '../../src/index.js';
import type { Rejection } from '../../src/index.js';
import type { Command, StoreOutcome } from '../../src/store-kit.js';
import type { Pending } from './sqlite-batch.js';
import type { SqliteDurability } from './sqlite-store.js';

/** What the writer thread needs to open its own connection to the ledger's file. */
export interface WriterThreadConfig {
  path: string;
  durability: SqliteDurability;
  busyTimeoutMs: number;
  tablePrefix: string | undefined;
  /** Most operations the thread writes in one transaction when it joins batches that waited. */
  batchOperationsMax: number;
}

/** An error as it crosses the thread boundary: the library's own errors by class and fields. */
export interface SentError {
  name: string;
  code: string | undefined;
  message: string;
  stack: string | undefined;
  /** The fields of the library's error classes (field, requestId, attempts, retry, rejection...). */
  fields: Record<string, unknown>;
  cause: { name: string; code: string | undefined; message: string } | null;
}

/** One command's result as the writer thread sends it back. */
export type SentResult = { ok: true; value: StoreOutcome } | { ok: false; error: SentError };

/** Messages to the writer thread; `store` names one store's connection there. */
export type ToWriter =
  | { type: 'open'; store: number; config: WriterThreadConfig }
  | { type: 'batch'; store: number; id: number; commands: Command[] }
  | { type: 'close'; store: number };

/** Messages from the writer thread. */
export type FromWriter =
  | { type: 'batch'; store: number; id: number; results: SentResult[] }
  | { type: 'batchFailed'; store: number; id: number; error: SentError }
  | { type: 'failed'; store: number; error: SentError }
  | { type: 'closed'; store: number };

/** Error fields worth carrying: the own fields of the library's error classes. */
const CARRIED = ['field', 'requestId', 'storedKind', 'attempts', 'retry', 'compactedThrough', 'after', 'rejection'] as const;

/** An error as plain data (structured clone keeps neither the class nor `code`). */
export function sendError(error: unknown): SentError {
  const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  for (const key of CARRIED) if (key in e) fields[key] = e[key];
  const cause = e.cause as Record<string, unknown> | undefined;
  return {
    name: typeof e.name === 'string' ? e.name : 'Error',
    code: typeof e.code === 'string' ? e.code : undefined,
    message: typeof e.message === 'string' ? e.message : String(error),
    stack: typeof e.stack === 'string' ? e.stack : undefined,
    fields: isStockLedgerError(error) ? fields : {},
    cause: typeof cause === 'object' && cause !== null
      ? { name: String(cause.name), code: typeof cause.code === 'string' ? cause.code : undefined, message: String(cause.message) }
      : null,
  };
}

/** The error again, as the class it was thrown as (a library error keeps its class, code and fields). */
export function receiveError(sent: SentError): Error {
  const cause = sent.cause === null ? undefined : Object.assign(new Error(sent.cause.message), { name: sent.cause.name, code: sent.cause.code });
  const f = sent.fields;
  let error: Error;
  switch (sent.code) {
    case 'INVALID_INPUT':
      error = new InvalidInputError(String(f.field), '', cause === undefined ? undefined : { cause });
      break;
    case 'IDEMPOTENCY_CONFLICT':
      error = new IdempotencyConflictError(String(f.requestId), String(f.storedKind));
      break;
    case 'STORE_UNAVAILABLE':
      error = new StoreUnavailableError(sent.message, {
        cause, attempts: typeof f.attempts === 'number' ? f.attempts : 1, retry: f.retry === 'transaction' ? 'transaction' : 'operation',
      });
      break;
    case 'INVARIANT_VIOLATION':
      error = new InvariantViolationError(sent.message, cause === undefined ? undefined : { cause });
      break;
    case 'FEED_COMPACTED':
      error = new FeedCompactedError(Number(f.after), Number(f.compactedThrough));
      break;
    default:
      error = f.rejection !== undefined
        ? new RejectedError(f.rejection as Rejection)
        : new InvariantViolationError(`SQLite writer thread: ${sent.name}: ${sent.message}`, cause === undefined ? undefined : { cause });
  }
  if (isStockLedgerError(error)) error.message = sent.message;
  if (sent.stack !== undefined) error.stack = sent.stack;
  return error;
}

/**
 * The writer thread's script, beside this module. Run from source (TypeScript, under tsx or
 * vitest), the thread starts with a bootstrap that loads it through tsx.
 */
function workerScript(): { script: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { script: new URL('./sqlite-worker.js', import.meta.url), eval: false };
  // tsx's ESM entry (a require.resolve would find its CommonJS one).
  const api = new URL('dist/esm/api/index.mjs', pathToFileURL(createRequire(import.meta.url).resolve('tsx/package.json'))).href;
  const script = new URL('./sqlite-worker.ts', import.meta.url).href;
  return { script: `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(script)}, ${JSON.stringify(import.meta.url)}))`, eval: true };
}

/** How long the writer thread outlives the last store that used it, for the next one to come. */
const WRITER_IDLE_MS = 2000;

/**
 * The one writer thread of the process, shared by every store with `writerThread: true` (each
 * with its own connection there); started with the first such store and ended
 * {@link WRITER_IDLE_MS} after the last one closed. It keeps the process alive only while a
 * batch is out.
 */
class WriterHost {
  readonly #worker: Worker;
  readonly #stores = new Map<number, WriterThread>();
  #out = 0;
  #idle: NodeJS.Timeout | null = null;

  constructor() {
    const { script, eval: isEval } = workerScript();
    this.#worker = new Worker(script, { eval: isEval });
    this.#worker.unref();
    this.#worker.on('message', (message: FromWriter) => this.#stores.get(message.store)?.received(message));
    this.#worker.on('error', (error) => this.#failAll(new StoreUnavailableError(`SQLite writer thread failed: ${error.message}`, { cause: error })));
    this.#worker.on('exit', (code) => this.#failAll(new StoreUnavailableError(`SQLite writer thread stopped (exit code ${code})`)));
  }

  attach(id: number, store: WriterThread, config: WriterThreadConfig): void {
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
    this.#stores.set(id, store);
    this.send({ type: 'open', store: id, config });
  }

  /** The store is closed there: the thread ends a while after the last one, unless another comes. */
  detach(id: number): void {
    this.#stores.delete(id);
    if (this.#stores.size > 0 || this.#idle !== null) return;
    this.#idle = setTimeout(() => {
      if (this.#stores.size > 0) return;
      if (host === this) host = null;
      void this.#worker.terminate();
    }, WRITER_IDLE_MS);
    this.#idle.unref();
  }

  send(message: ToWriter): void {
    this.#worker.postMessage(message);
  }

  /** A batch (or a close) went out, or came back: the process stays alive while one is out. */
  busy(delta: 1 | -1): void {
    this.#out += delta;
    if (delta === 1 && this.#out === 1) this.#worker.ref();
    if (this.#out === 0) this.#worker.unref();
  }

  #failAll(error: Error): void {
    if (host === this) host = null;
    for (const store of this.#stores.values()) store.fail(error);
    this.#stores.clear();
  }
}

let host: WriterHost | null = null;
let nextStoreId = 1;

/**
 * A store's side of the writer thread: hands its batches of commands to its connection there
 * and settles each operation's promise with what comes back, only after the batch's COMMIT
 * returned there.
 */
export class WriterThread {
  readonly #host: WriterHost;
  readonly #id = nextStoreId++;
  readonly #out = new Map<number, { batch: readonly Pending<Command, StoreOutcome>[]; done: () => void }>();
  #nextBatch = 1;
  /** Set once the connection failed or was closed: every batch from then on fails with it. */
  #broken: Error | null = null;
  #closed: Promise<void> | null = null;
  #onClosed: (() => void) | null = null;

  constructor(config: WriterThreadConfig) {
    host ??= new WriterHost();
    this.#host = host;
    this.#host.attach(this.#id, this, config);
  }

  /** Hands one batch over; resolves once every operation of it is settled. */
  write(batch: readonly Pending<Command, StoreOutcome>[]): Promise<void> {
    if (this.#broken !== null) {
      for (const pending of batch) pending.reject(this.#broken);
      return Promise.resolve();
    }
    const id = this.#nextBatch++;
    return new Promise<void>((done) => {
      this.#out.set(id, { batch, done });
      this.#host.busy(1);
      this.#host.send({ type: 'batch', store: this.#id, id, commands: batch.map((p) => p.command) });
    });
  }

  /** Closes this store's connection in the thread (call once nothing is out). */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      if (this.#broken !== null) {
        this.#host.detach(this.#id);
        resolve();
        return;
      }
      this.#onClosed = resolve;
      this.#host.busy(1);
      this.#host.send({ type: 'close', store: this.#id });
    });
    return this.#closed;
  }

  /** A message from the thread for this store. */
  received(message: FromWriter): void {
    if (message.type === 'closed') {
      this.#broken ??= new StoreUnavailableError('SQLite: the database is closed');
      this.#host.busy(-1);
      this.#host.detach(this.#id);
      this.#onClosed?.();
      return;
    }
    if (message.type === 'failed') {
      this.fail(receiveError(message.error));
      return;
    }
    const out = this.#out.get(message.id);
    if (out === undefined) return;
    this.#out.delete(message.id);
    this.#host.busy(-1);
    if (message.type === 'batchFailed') {
      const error = receiveError(message.error);
      for (const pending of out.batch) pending.reject(error);
    } else {
      message.results.forEach((result, i) => {
        const pending = out.batch[i] as Pending<Command, StoreOutcome>;
        if (result.ok) pending.resolve(result.value);
        else pending.reject(receiveError(result.error));
      });
    }
    out.done();
  }

  /**
   * Every batch out fails with `error` (its outcome unknown, as with a lost connection), and so
   * does every later one; a close waiting for the thread finishes.
   */
  fail(error: Error): void {
    this.#broken ??= error;
    for (const [id, out] of this.#out) {
      this.#out.delete(id);
      for (const pending of out.batch) pending.reject(this.#broken);
      out.done();
    }
    this.#onClosed?.();
  }
}
