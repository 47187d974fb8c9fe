/**
 * The writer thread of `new SqliteStore({ path, writerThread: true })`, one per process: a
 * connection of its own per store, and batches of commands from the main thread. Batches of
 * one store that wait here while a transaction commits are written together in the next one
 * (`BEGIN IMMEDIATE`, the core's decision inside it, at most `batchOperationsMax` operations),
 * so one fsync covers them all. The results go back only after COMMIT returned: the fsync
 * blocks this thread, never the app's event loop.
 */
import { parentPort, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { StoreUnavailableError } from '../../src/index.js';
import { batchRunnerOf, SqliteStore } from './sqlite-store.js';
import { sendError, type FromWriter, type ToWriter } from './sqlite-thread.js';

if (parentPort === null) throw new Error('sqlite-worker runs as a worker thread of SqliteStore');
const port: MessagePort = parentPort;

type BatchMessage = Extract<ToWriter, { type: 'batch' }>;

/** Each store's connection here, with the function that writes its batches. */
const stores = new Map<number, { store: SqliteStore; run: ReturnType<typeof batchRunnerOf>; batchOperationsMax: number }>();
const reply = (message: FromWriter): void => port.postMessage(message);
/** Messages taken off the port, in arrival order, not yet handled. */
const waiting: ToWriter[] = [];

port.on('message', (message: ToWriter) => {
  waiting.push(message);
  while (waiting.length > 0) handle(waiting.shift() as ToWriter);
});

function handle(message: ToWriter): void {
  if (message.type === 'open') {
    const { path, durability, busyTimeoutMs, tablePrefix, batchOperationsMax } = message.config;
    try {
      const store = new SqliteStore({ path, durability, busyTimeoutMs, groupCommit: false, ...(tablePrefix === undefined ? {} : { tablePrefix }) });
      stores.set(message.store, { store, run: batchRunnerOf(store), batchOperationsMax });
    } catch (error) {
      reply({ type: 'failed', store: message.store, error: sendError(error) });
    }
    return;
  }
  const opened = stores.get(message.store);
  if (message.type === 'close') {
    stores.delete(message.store);
    const closed = opened === undefined ? Promise.resolve() : opened.store.close();
    void closed.finally(() => reply({ type: 'closed', store: message.store }));
    return;
  }
  if (opened === undefined) {
    const error = sendError(new StoreUnavailableError('SQLite: the writer thread has no open connection for this store'));
    reply({ type: 'batchFailed', store: message.store, id: message.id, error });
    return;
  }
  const batches = joinWaiting(message, opened.batchOperationsMax);
  const commands = batches.flatMap((b) => b.commands);
  let results;
  try {
    results = opened.run(commands).map((r) => (r.ok ? r : { ok: false as const, error: sendError(r.error) }));
  } catch (error) {
    for (const b of batches) reply({ type: 'batchFailed', store: b.store, id: b.id, error: sendError(error) });
    return;
  }
  let at = 0;
  for (const b of batches) {
    const mine = results.slice(at, (at += b.commands.length));
    try {
      reply({ type: 'batch', store: b.store, id: b.id, results: mine });
    } catch (error) {
      // Committed, but an outcome could not be sent: the caller learns only that the outcome is unknown.
      reply({ type: 'batchFailed', store: b.store, id: b.id, error: sendError(new StoreUnavailableError(`SQLite writer thread: ${String(error)}`)) });
    }
  }
}

/**
 * The batch, and the batches of the same store that arrived right behind it (taken off the port
 * now, without waiting), while the total stays within `most` operations.
 */
function joinWaiting(first: BatchMessage, most: number): BatchMessage[] {
  const batches = [first];
  let total = first.commands.length;
  for (;;) {
    if (waiting.length === 0) {
      const received = receiveMessageOnPort(port);
      if (received === undefined) break;
      waiting.push(received.message as ToWriter);
    }
    const next = waiting[0] as ToWriter;
    if (next.type !== 'batch' || next.store !== first.store || total + next.commands.length > most) break;
    waiting.shift();
    batches.push(next);
    total += next.commands.length;
  }
  return batches;
}
