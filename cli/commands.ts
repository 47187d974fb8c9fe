/**
 * The commands: each reads the ledger, prints, and returns its exit code. They never exit the
 * process themselves, so `index.ts` always gets to close the store.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { StockLedger, type Level, type LevelsQuery, type StockEventsOptions, type StockStore } from '../src/index.js';
import { UsageError, type CommandName, type ParsedArgs } from './args.js';
import {
  formatCompact, formatEntries, formatEntryLine, formatEvent, formatHolds, formatLevels, formatRequest, formatReservation, formatSweep, formatVerify,
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
  const page = await ledger.entries(entriesQuery(args, args.after));
  io.out(args.json ? json(page) : formatEntries(page.entries));
  return EXIT_OK;
};

/** Without `--after`, the feed from its oldest kept entry (after compaction, 0 would be behind it). */
function entriesQuery(args: ParsedArgs, after: number | undefined): { after?: number; sku?: string; limit?: number } {
  const query: { after?: number; sku?: string; limit?: number } = {};
  if (after !== undefined) query.after = after;
  if (args.sku !== undefined) query.sku = args.sku;
  if (args.limit !== undefined) query.limit = args.limit;
  return query;
}

/**
 * Prints every entry after `--after`, then polls for new ones until stopped. A full page is
 * followed at once (the feed has more); only a short page waits for the interval.
 */
async function follow(ledger: StockLedger, args: ParsedArgs, io: CommandIo): Promise<number> {
  let after = args.after;
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

/** Every page of levels from `--from` on (or the first page only with `--json`'s shape: one array). */
const levels: Command = async (ledger, args, io) => {
  const all: Level[] = [];
  let after = args.from;
  for (let page = 0; page < LEVEL_PAGES_MAX; page += 1) {
    const query: LevelsQuery = {};
    if (after !== undefined) query.after = after;
    if (args.limit !== undefined) query.limit = args.limit;
    if (args.below !== undefined) query.availableAtMost = args.below;
    const found = await ledger.levels(query);
    all.push(...found.levels);
    if (found.next === null) break;
    after = found.next;
  }
  io.out(args.json ? json(all) : all.length === 0 ? 'no SKUs' : formatLevels(all));
  return EXIT_OK;
};

/** Bounds a walk of `levels`: 100,000 pages of up to 1,000 SKUs. */
const LEVEL_PAGES_MAX = 100_000;

/** Stock events from `--after` on; with `--follow`, waits for more until stopped. */
const events: Command = async (ledger, args, io) => {
  const options: StockEventsOptions = { follow: args.follow, pollMs: args.intervalMs, signal: io.stop };
  if (args.cursor !== undefined) options.after = args.cursor;
  if (args.lowStockAt !== undefined) options.lowStockAt = args.lowStockAt;
  for await (const event of ledger.stockEvents(options)) {
    io.out(args.json ? JSON.stringify(event) : formatEvent(event));
  }
  return EXIT_OK;
};

const compact: Command = async (ledger, args, io) => {
  if (args.windowMs === undefined) throw new UsageError('compact needs --window <duration> (such as 7d)');
  const report = await ledger.compact({ windowMs: args.windowMs });
  io.out(args.json ? json(report) : formatCompact(report));
  return EXIT_OK;
};

const COMMAND_TABLE: Record<CommandName, Command> = { verify, stock, levels, entries, events, request, reservation, holds, sweep, compact };

/**
 * Runs one command on a store. `verify` gets a progress line on a terminal's stderr (never in
 * a pipe, where it would only be noise in a log).
 *
 * @example
 * const code = await runCommand('stock', store, args, io);
 */
export async function runCommand(name: CommandName, store: StockStore, args: ParsedArgs, io: CommandIo): Promise<number> {
  const walk = WALKS[name];
  const progress = walk !== undefined && io.err.isTTY === true ? new Progress(io.err, walk) : undefined;
  const ledger = new StockLedger({ store: progress === undefined ? store : progress.watch(store) });
  try {
    return await COMMAND_TABLE[name](ledger, args, io);
  } finally {
    progress?.clear();
  }
}

/** The long walks that get a progress line: which store call is one step, and what it counts. */
interface Walk {
  method: 'verifyChunk' | 'compact';
  /** What one step adds to the count, from its result. */
  count: (result: unknown) => number;
  show: (steps: number, count: number) => string;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

const WALKS: Partial<Record<CommandName, Walk>> = {
  verify: {
    method: 'verifyChunk',
    count: (page) => (page as { items: unknown[] }).items.length,
    show: (steps, skus) => `verify: ${plural(steps, 'chunk')} done, ${skus} SKUs checked`,
  },
  compact: {
    method: 'compact',
    count: (step) => (step as { entries: number }).entries,
    show: (steps, entries) => `compact: ${plural(steps, 'step')} done, ${entries} entries removed`,
  },
};

/**
 * "verify: N chunks done, M SKUs checked" (or compact's steps) on one rewritten terminal line.
 * It counts the store's calls of the walk, because that is what takes long on a big ledger.
 */
class Progress {
  #chunks = 0;
  #skus = 0;
  readonly #stream: NodeJS.WritableStream;
  readonly #walk: Walk;

  constructor(stream: NodeJS.WritableStream, walk: Walk) {
    this.#stream = stream;
    this.#walk = walk;
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
        return key === this.#walk.method ? this.#counted(bound) : bound;
      },
    });
  }

  #counted(chunk: (...a: unknown[]) => unknown): (...a: unknown[]) => Promise<unknown> {
    return async (...a) => {
      const page = await chunk(...a);
      this.#chunks += 1;
      this.#skus += this.#walk.count(page);
      this.#show();
      return page;
    };
  }

  #show(): void {
    this.#stream.write(`\r\x1b[K${this.#walk.show(this.#chunks, this.#skus)}`);
  }

  /** Erases the line, so the report starts on a clean one. */
  clear(): void {
    this.#stream.write('\r\x1b[K');
  }
}
