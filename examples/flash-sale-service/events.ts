/**
 * GET /events: the ledger's entries feed and its stock events (depleted, belowThreshold,
 * replenished) as one stream of server-sent events, resumable with Last-Event-ID.
 *
 * The two are followed side by side, each from its own position: an entry's position is its seq,
 * a stock event's is its cursor. Every event's id carries both positions as they stand once it
 * is sent, `<seq>/<cursor>`, so whatever the last event a client received, reconnecting with its
 * id resumes both with no gap and no repeat. An id of a plain seq (or `?after=<seq>`) starts
 * both after that entry.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isStockLedgerError, type FeedEntry, type StockLedger } from 'stock-ledger';

const FEED_PAGE = 500;

/** Where a stream stands: after entry `seq` and after stock event `cursor` (null: from the start). */
export interface Position {
  seq: number;
  cursor: string | null;
}

/**
 * A position from a Last-Event-ID (`<seq>/<cursor>` or `<seq>`) or `?after=`; from the start when
 * absent or unreadable.
 *
 * @example
 * positionOf('12/11.1'); // { seq: 12, cursor: '11.1' }
 */
export function positionOf(id: string | undefined): Position {
  const match = /^(\d+)(?:\/(\d+(?:\.\d+)?|-))?$/.exec(id ?? '');
  if (match === null) return { seq: 0, cursor: null };
  const seq = Number(match[1]);
  if (!Number.isSafeInteger(seq)) return { seq: 0, cursor: null };
  const cursor = match[2] === undefined ? (seq > 0 ? String(seq) : null) : match[2] === '-' ? null : match[2];
  return { seq, cursor };
}

export interface StreamOptions {
  ledger: StockLedger;
  from: Position;
  pollMs: number;
  signal: AbortSignal;
  /** Writes one SSE block (the stream's socket). */
  write(block: string): void;
  /** The service's counters as JSON, sent as a `stats` event when they change. */
  stats(): string;
}

/** Follows entries and stock events until `signal` aborts; resolves once both loops stopped. */
export async function streamEvents(options: StreamOptions): Promise<void> {
  const at: Position = { ...options.from };
  const send = (event: string, data: unknown): void => {
    options.write(`id: ${at.seq}/${at.cursor ?? '-'}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  await Promise.all([followEntries(options, at, send), followStock(options, at, send)]);
}

async function followEntries(options: StreamOptions, at: Position, send: (event: string, data: unknown) => void): Promise<void> {
  const { ledger, signal } = options;
  let shown = '';
  while (!signal.aborted) {
    let entries: FeedEntry[];
    try {
      entries = (await ledger.entries(at.seq === 0 ? { limit: FEED_PAGE } : { after: at.seq, limit: FEED_PAGE })).entries;
    } catch (error) {
      if (!isStockLedgerError(error) || error.code !== 'FEED_COMPACTED') throw error;
      // Behind the compacted part: say so, and go on from the oldest entry kept.
      options.write(`event: compacted\ndata: ${JSON.stringify({ after: at.seq })}\n\n`);
      at.seq = 0;
      continue;
    }
    for (const entry of entries) {
      at.seq = entry.seq;
      send('entry', entry);
    }
    const stats = options.stats();
    if (stats !== shown) {
      options.write(`event: stats\ndata: ${stats}\n\n`);
      shown = stats;
    }
    if (entries.length < FEED_PAGE) await sleep(options.pollMs, undefined, { signal }).catch(() => {});
  }
}

async function followStock(options: StreamOptions, at: Position, send: (event: string, data: unknown) => void): Promise<void> {
  const { ledger, signal, pollMs } = options;
  try {
    for await (const event of ledger.stockEvents({ ...(at.cursor === null ? {} : { after: at.cursor }), pollMs, signal })) {
      at.cursor = event.cursor;
      const { type, sku, availableBefore, available, threshold, entry } = event;
      send('stock', { type, sku, availableBefore, available, threshold, seq: entry.seq, requestId: entry.requestId });
    }
  } catch (error) {
    if (signal.aborted) return;
    if (!isStockLedgerError(error) || error.code !== 'FEED_COMPACTED') throw error;
    options.write(`event: compacted\ndata: ${JSON.stringify({ stockAfter: at.cursor })}\n\n`);
  }
}
