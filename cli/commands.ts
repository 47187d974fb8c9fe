/**
 * The commands: each reads the ledger, prints, and returns its exit code. They never exit the
 * process themselves, so `index.ts` always gets to close the store.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { StockLedger, type StockStore } from '../src/index.js';
import type { CommandName, ParsedArgs } from './args.js';
import {
  formatEntries, formatEntryLine, formatHolds, formatLevels, formatRequest, formatReservation, formatSweep, formatVerify,
} from './format.js';

/** Where a command writes; injectable streams keep the commands free of globals. */
export interface CommandIo {
  out: (text: string) => void;
  err: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborted on SIGINT/SIGTERM: `entries --follow` stops polling. */
  stop: AbortSignal;
}

export const EXIT_OK = 0;
/** Drift, a rejection, or a request or reservation not found. */
export const EXIT_FAILED = 1;
/** A bad command line or a store that cannot be reached. */
export const EXIT_USAGE = 2;

type Command = (ledger: StockLedger, args: ParsedArgs, io: CommandIo) => Promise<number>;

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

const verify: Command = async (ledger, args, io) => {
  const report = await ledger.verify();
  io.out(args.json ? json(report) : formatVerify(report));
  return report.ok ? EXIT_OK : EXIT_FAILED;
};

const stock: Command = async (ledger, args, io) => {
  const levels = await ledger.stocks(args.positionals);
  io.out(args.json ? json(levels) : formatLevels(levels));
  return EXIT_OK;
};

const entries: Command = async (ledger, args, io) => {
  if (args.follow) return follow(ledger, args, io);
  const page = await ledger.entries(entriesQuery(args, args.after ?? 0));
  io.out(args.json ? json(page) : formatEntries(page.entries));
  return EXIT_OK;
};

function entriesQuery(args: ParsedArgs, after: number): { after: number; sku?: string; limit?: number } {
  const query: { after: number; sku?: string; limit?: number } = { after };
  if (args.sku !== undefined) query.sku = args.sku;
  if (args.limit !== undefined) query.limit = args.limit;
  return query;
}

/**
 * Prints every entry after `--after`, then polls for new ones until stopped. A full page is
 * followed at once (the feed has more); only a short page waits for the interval.
 */
async function follow(ledger: StockLedger, args: ParsedArgs, io: CommandIo): Promise<number> {
  let after = args.after ?? 0;
  while (!io.stop.aborted) {
    const query = entriesQuery(args, after);
    const page = await ledger.entries(query);
    for (const e of page.entries) io.out(args.json ? JSON.stringify(e) : formatEntryLine(e));
    after = page.next ?? after;
    if (page.entries.length < (query.limit ?? 100)) await pause(args.intervalMs, io.stop);
  }
  return EXIT_OK;
}

/** Sleeps, waking early (without an error) when stopped. */
async function pause(ms: number, stop: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal: stop }).catch(() => {});
}

const request: Command = async (ledger, args, io) => {
  const record = await ledger.request(args.positionals[0] ?? '');
  return found(record, args, io, formatRequest);
};

const reservation: Command = async (ledger, args, io) => {
  const found_ = await ledger.reservation(args.positionals[0] ?? '');
  return found(found_, args, io, formatReservation);
};

/** Prints what was found, or "not found" (JSON: `null` on stdout as well) with exit 1. */
function found<T>(value: T | null, args: ParsedArgs, io: CommandIo, format: (v: T) => string): number {
  if (value === null) {
    if (args.json) io.out('null');
    io.err.write(`not found: ${JSON.stringify(args.positionals[0] ?? '')}\n`);
    return EXIT_FAILED;
  }
  io.out(args.json ? json(value) : format(value));
  return EXIT_OK;
}

const holds: Command = async (ledger, args, io) => {
  const sku = args.positionals[0] ?? '';
  const page = await ledger.holds(args.limit === undefined ? { sku } : { sku, limit: args.limit });
  io.out(args.json ? json(page) : formatHolds(sku, page));
  return EXIT_OK;
};

const sweep: Command = async (ledger, args, io) => {
  const result = await ledger.sweepExpired(args.limit === undefined ? {} : { limit: args.limit });
  io.out(args.json ? json(result) : formatSweep(result));
  return EXIT_OK;
};

const COMMAND_TABLE: Record<CommandName, Command> = { verify, stock, entries, request, reservation, holds, sweep };

/**
 * Runs one command on a store. `verify` gets a progress line on a terminal's stderr (never in
 * a pipe, where it would only be noise in a log).
 *
 * @example
 * const code = await runCommand('stock', store, args, io);
 */
export async function runCommand(name: CommandName, store: StockStore, args: ParsedArgs, io: CommandIo): Promise<number> {
  const progress = name === 'verify' && io.err.isTTY === true ? new Progress(io.err) : undefined;
  const ledger = new StockLedger({ store: progress === undefined ? store : progress.watch(store) });
  try {
    return await COMMAND_TABLE[name](ledger, args, io);
  } finally {
    progress?.clear();
  }
}

/**
 * "verify: N chunks done, M SKUs checked" on one rewritten terminal line. It counts the store's
 * `verifyChunk` calls, because that walk is what takes long on a big ledger.
 */
class Progress {
  #chunks = 0;
  #skus = 0;
  readonly #stream: NodeJS.WritableStream;

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  /** The store, with each verify chunk counted as it completes. */
  watch(store: StockStore): StockStore {
    this.#show();
    return new Proxy(store, {
      get: (target, key) => {
        const value: unknown = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        // Bound to the real store: its private fields are not on the proxy.
        const bound = (value as (...a: unknown[]) => unknown).bind(target);
        return key === 'verifyChunk' ? this.#counted(bound) : bound;
      },
    });
  }

  #counted(chunk: (...a: unknown[]) => unknown): (...a: unknown[]) => Promise<unknown> {
    return async (...a) => {
      const page = (await chunk(...a)) as { items: unknown[] };
      this.#chunks += 1;
      this.#skus += page.items.length;
      this.#show();
      return page;
    };
  }

  #show(): void {
    this.#stream.write(`\r\x1b[Kverify: ${this.#chunks} chunk${this.#chunks === 1 ? '' : 's'} done, ${this.#skus} SKUs checked`);
  }

  /** Erases the line, so the report starts on a clean one. */
  clear(): void {
    this.#stream.write('\r\x1b[K');
  }
}
