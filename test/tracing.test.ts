/**
 * Every operation is published on `node:diagnostics_channel` (OPERATION_CHANNEL) with what it
 * was and how it ended, on real stores; nothing is published, and nothing is built, when nobody
 * listens.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { OPERATION_CHANNEL, StockLedger, StoreUnavailableError, type OperationTrace } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { SqliteStore } from 'stock-ledger/sqlite';
import type { Command, StoreOutcome } from 'stock-ledger/store';
import { afterEach, describe, expect, it } from 'vitest';

const channel = tracingChannel<unknown, OperationTrace>(OPERATION_CHANNEL);

/** Subscribes for one test: what started, and each trace as it ended (a copy, taken at asyncEnd). */
function listen(): { started: OperationTrace[]; ended: OperationTrace[]; stop: () => void } {
  const started: OperationTrace[] = [];
  const ended: OperationTrace[] = [];
  const handlers = {
    start: (t: OperationTrace) => started.push({ ...t }),
    asyncEnd: (t: OperationTrace) => ended.push({ ...t }),
  };
  channel.subscribe(handlers as never);
  return { started, ended, stop: () => channel.unsubscribe(handlers as never) };
}

let stops: Array<() => void> = [];
afterEach(() => {
  for (const stop of stops) stop();
  stops = [];
});

const pick = (t: OperationTrace): unknown => ({ kind: t.kind, requestId: t.requestId, ok: t.ok, code: t.code, replayed: t.replayed, attempts: t.attempts });

describe('tracing on node:diagnostics_channel', () => {
  it('publishes each operation: what it names at start, its outcome, replay and attempts at the end', async () => {
    const l = listen();
    stops.push(l.stop);
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restock({ requestId: 'po', sku: 'A', qty: 2 });
    await ledger.restock({ requestId: 'po-b', sku: 'B', qty: 1 });
    await ledger.deduct({ requestId: 'o1', lines: [{ anyOf: ['A@x', 'A'], qty: 2 }] });
    await ledger.deduct({ requestId: 'o1', lines: [{ anyOf: ['A@x', 'A'], qty: 2 }] });
    await ledger.deduct({ requestId: 'o2', sku: 'A', qty: 1 });
    await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 1 }).catch(() => undefined);
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'B', qty: 1 }], ttlMs: 1000 });
    await ledger.commit({ reservationId: 'cart' });
    expect(l.started.map((t) => [t.kind, t.requestId, t.reservationId, t.skus, t.store, t.joined])).toEqual([
      ['restock', 'po', null, ['A'], 'MemoryStore', false],
      ['restock', 'po-b', null, ['B'], 'MemoryStore', false],
      ['deduct', 'o1', null, ['A@x', 'A'], 'MemoryStore', false],
      ['deduct', 'o1', null, ['A@x', 'A'], 'MemoryStore', false],
      ['deduct', 'o2', null, ['A'], 'MemoryStore', false],
      ['deduct', 'o1', null, ['A'], 'MemoryStore', false],
      ['reserve', 'cart', null, ['B'], 'MemoryStore', false],
      ['commit', null, 'cart', [], 'MemoryStore', false],
    ]);
    expect(l.ended.map(pick)).toEqual([
      { kind: 'restock', requestId: 'po', ok: true, code: null, replayed: false, attempts: 1 },
      { kind: 'restock', requestId: 'po-b', ok: true, code: null, replayed: false, attempts: 1 },
      { kind: 'deduct', requestId: 'o1', ok: true, code: null, replayed: false, attempts: 1 },
      { kind: 'deduct', requestId: 'o1', ok: true, code: null, replayed: true, attempts: 1 },
      { kind: 'deduct', requestId: 'o2', ok: false, code: 'INSUFFICIENT_STOCK', replayed: false, attempts: 1 },
      { kind: 'deduct', requestId: 'o1', ok: false, code: 'IDEMPOTENCY_CONFLICT', replayed: null, attempts: 1 },
      { kind: 'reserve', requestId: 'cart', ok: true, code: null, replayed: false, attempts: 1 },
      { kind: 'commit', requestId: null, ok: true, code: null, replayed: false, attempts: 1 },
    ]);
    expect(l.ended[5]?.error).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' });
    await ledger.close();
  });

  it('counts the attempts of a retried operation', async () => {
    class Flaky extends MemoryStore {
      #failures = 2;
      override execute(command: Command): Promise<StoreOutcome> {
        if (this.#failures > 0) {
          this.#failures -= 1;
          return Promise.reject(new StoreUnavailableError('lost reply'));
        }
        return super.execute(command);
      }
    }
    const l = listen();
    stops.push(l.stop);
    const ledger = new StockLedger({ store: new Flaky(), retry: { baseMs: 1, capMs: 1 } });
    await ledger.restock({ requestId: 'po', sku: 'A', qty: 1 });
    expect(l.ended.map(pick)).toEqual([{ kind: 'restock', requestId: 'po', ok: true, code: null, replayed: false, attempts: 3 }]);
    await ledger.close();
  });

  it('on SQLite: a call inside the app\'s transaction is marked joined, and the store is named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-tracing-'));
    const db = new Database(join(dir, 'app.db'));
    const ledger = new StockLedger({ store: new SqliteStore({ database: db }) });
    const l = listen();
    stops.push(l.stop);
    await ledger.restock({ requestId: 'po', sku: 'A', qty: 3 });
    db.exec('BEGIN');
    await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 1 }, { transaction: db });
    db.exec('COMMIT');
    expect(l.ended.map((t) => [t.kind, t.store, t.joined, t.ok])).toEqual([['restock', 'SqliteStore', false, true], ['deduct', 'SqliteStore', true, true]]);
    await ledger.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes nothing once the last subscriber has left', async () => {
    const l = listen();
    l.stop();
    expect(channel.hasSubscribers).toBe(false);
    const ledger = new StockLedger({ store: new MemoryStore() });
    expect(await ledger.restock({ requestId: 'po', sku: 'A', qty: 1 })).toMatchObject({ ok: true });
    expect([l.started, l.ended]).toEqual([[], []]);
    await ledger.close();
  });
});
