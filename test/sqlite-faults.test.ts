/**
 * SQLite under faults: several processes deducting from one file while one of them is killed
 * with SIGKILL (several rounds), close and reopen, a crash without close, and the
 * `synchronous` level of a new connection on an existing WAL file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { StockLedger, isStockLedgerError, type Applied, type Entry, type Level, type OperationResult } from 'stock-ledger';
import { SCHEMA_VERSION, SqliteStore, schemaVersion, type SqliteDurability } from 'stock-ledger/sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyOp, type ApplyOp } from './fixtures/apply-op.js';
import type { ApplyConfig } from './fixtures/sqlite-apply.js';
import type { WorkerConfig } from './fixtures/sqlite-worker.js';
import { readAllEntries } from 'stock-ledger/testing';
import { expectEntriesOnce } from './support/entry-checks.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

let dir = '';
let files = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stock-ledger-sqlite-faults-'));
});
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});
const freshPath = (): string => join(dir, `ledger-${(files += 1)}.db`);

// ---------------------------------------------------------------------------------------------
// Child processes

type Message =
  | { t: 'try'; id: string }
  | { t: 'ack'; id: string; ok: true; turn: number; replayed: boolean; entries: Entry[]; levels: Level[]; worker?: string }
  | { t: 'ack'; id: string; ok: false; turn: number; code: string; worker?: string }
  | { t: 'unavailable'; id: string }
  | { t: 'done'; ops: number }
  | { t: 'outcome'; id: string; result: OperationResult }
  | { t: 'ready' };

interface Proc {
  child: ChildProcess;
  messages: Message[];
  stderr: string[];
  /** Resolves when the process printed `{ t: 'ready' }`; rejects if it closed before. */
  ready: Promise<void>;
  /** Resolves once the process exited and its stdout was read to the end. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs a TypeScript fixture with tsx from the repo root (so tsconfig `paths` resolve the package names). */
function spawnFixture(name: string, config: object, onMessage?: (m: Message, proc: Proc) => void): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture(name), JSON.stringify(config)], {
    cwd: root,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let markReady = (): void => {};
  let notReady = (_: Error): void => {};
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    notReady = reject;
  });
  ready.catch(() => {}); // observed by whoever awaits it
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      notReady(new Error(`${name} closed before it was ready (code ${code}, signal ${signal}): ${proc.stderr.join('')}`));
      resolve({ code, signal });
    });
  });
  const proc: Proc = { child, messages: [], stderr: [], ready, closed };
  child.stdin?.on('error', () => {}); // a killed child's stdin may be gone
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    // A process killed mid-write may leave a partial last line: only whole JSON lines count.
    let message: Message;
    try {
      message = JSON.parse(line) as Message;
    } catch {
      return;
    }
    proc.messages.push(message);
    if (message.t === 'ready') markReady();
    onMessage?.(message, proc);
  });
  child.stderr?.on('data', (chunk: Buffer) => proc.stderr.push(chunk.toString('utf8')));
  return proc;
}

/** Start barrier: once every worker has its store open, lets them all go at once. */
async function startTogether(procs: readonly Proc[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`workers not ready within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([Promise.all(procs.map((p) => p.ready)), timeout]);
  } catch (error) {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
  for (const p of procs) p.child.stdin?.end('go\n');
}

/** Waits for a process to close, killing it (and failing) when it takes longer than `ms`. */
async function closedWithin(proc: Proc, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      reject(new Error(`child ${proc.child.pid ?? '?'} did not finish within ${ms} ms; stderr: ${proc.stderr.join('')}`));
    }, ms);
  });
  try {
    return await Promise.race([proc.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a whole ledger back


const integrity = (db: { pragma(source: string, options?: { simple?: boolean }): unknown }): unknown =>
  db.pragma('integrity_check', { simple: true });

/** Checks every invariant the ledger promises, by reading it all back through `ledger`. */
async function checkLedger(ledger: StockLedger, skus: readonly string[]): Promise<Entry[]> {
  const entries = await readAllEntries(ledger);
  // No gap left by a rolled-back (killed) transaction, nothing applied twice.
  expectEntriesOnce(entries);

  // Each SKU's entries chain: onHandAfter = previous + delta, never below zero; the fold is the level.
  for (const sku of skus) {
    let onHand = 0;
    let version = 0;
    let restocked = 0;
    let deducted = 0;
    for (const e of entries.filter((x) => x.sku === sku)) {
      onHand += e.onHandDelta;
      version += 1;
      expect(e.onHandAfter, `chain of ${sku} at seq ${e.seq}`).toBe(onHand);
      expect(e.onHandAfter).toBeGreaterThanOrEqual(0);
      if (e.kind === 'restock') restocked += e.onHandDelta;
      if (e.kind === 'deduct') deducted -= e.onHandDelta;
    }
    expect(deducted, `no oversell of ${sku}`).toBeLessThanOrEqual(restocked);
    expect(await ledger.stock(sku)).toEqual({ sku, onHand, reserved: 0, available: onHand, version });
  }

  // Every request with entries has its record, and the record holds exactly those entries (all or none).
  const byRequest = new Map<string, Entry[]>();
  for (const e of entries) byRequest.set(e.requestId, [...(byRequest.get(e.requestId) ?? []), e]);
  for (const [id, own] of byRequest) {
    const record = await ledger.request(id);
    expect(record, `request ${id}`).not.toBeNull();
    expect(record?.entries).toEqual(own);
  }

  const report = await ledger.verify();
  expect(report).toEqual({ ok: true, skusChecked: skus.length, drift: [] });
  return entries;
}

// ---------------------------------------------------------------------------------------------

interface KillRounds {
  rounds: number;
  opsPerWorker: number;
  /** Concurrent callers per process. */
  lanes: number;
  /** Attempts after which each of the two victims of a round is killed. */
  killAfterTries: (round: number) => [number, number];
  /** The group-commit option of worker `w` (undefined: the store's default, on). */
  groupCommitOf: (w: number) => WorkerConfig['groupCommit'];
}

/**
 * Rounds of four processes on one file: two finish their bounded work, two victims are killed
 * with SIGKILL mid-loop. After every round and at the end, checks the file and the ledger, and
 * that every acknowledged request is there, none applied twice, no oversell. Returns every
 * message the processes printed.
 */
async function killRounds(options: KillRounds): Promise<Message[]> {
  const path = freshPath();
  const skus = ['apple', 'pear', 'plum'];
  const { rounds, opsPerWorker } = options;
  const steadyPerRound = 2;
  const workersPerRound = steadyPerRound + 2;
  const parent = new StockLedger({ store: new SqliteStore({ path }) });
  const tried = new Set<string>();
  const messages: Message[] = [];
  let killed = 0;

  for (let round = 0; round < rounds; round += 1) {
    // Limited stock: far fewer units than the workers will ask for.
    for (const sku of skus) {
      const requestId = `${round}-parent-${sku}`;
      tried.add(requestId);
      expect((await parent.restock({ requestId, sku, qty: 12 })).ok).toBe(true);
    }
    // Two workers finish their bounded work; two victims run "forever" (bounded) and are
    // killed with SIGKILL after a number of attempts that differs per round, mid-loop: most
    // likely inside or right around a write transaction.
    const killAfterTries = options.killAfterTries(round);
    const procs: Proc[] = [];
    for (let w = 0; w < workersPerRound; w += 1) {
      const victim = w >= steadyPerRound;
      const config: WorkerConfig = {
        path,
        worker: `w${w}`,
        round,
        ops: victim ? 100_000 : opsPerWorker,
        seed: 1000 * round + w + 1,
        skus,
        sharedIds: 8,
        // A victim mostly restocks: nearly all its time is spent inside write transactions.
        restockShare: victim ? 0.6 : 0.12,
        durability: victim || w === 0 ? 'full' : 'normal',
        lanes: options.lanes,
      };
      const groupCommit = options.groupCommitOf(w);
      if (groupCommit !== undefined) config.groupCommit = groupCommit;
      const killAt = killAfterTries[w - steadyPerRound] ?? 0;
      // The parent reacts to a 'try' line faster than the child runs the operation, so a
      // kill right away always lands at its start; a jitter that differs per kill (0 to 3.5 ms,
      // a few FULL-synchronous writes) spreads the kills over the whole transaction: before,
      // inside, during the commit, after.
      const jitterMs = ((round * 2 + w - steadyPerRound) * 0.5) % 4;
      let tries = 0;
      procs.push(
        spawnFixture('sqlite-worker.ts', config, (m, proc) => {
          if (!victim || m.t !== 'try') return;
          tries += 1;
          if (tries !== killAt) return;
          const until = performance.now() + jitterMs;
          while (performance.now() < until); // bounded spin: a fault-injection delay, not synchronization
          proc.child.kill('SIGKILL');
        }),
      );
    }
    await startTogether(procs, 30_000);

    // verify() stays correct while the others write (paced polling, bounded).
    let stillRunning = true;
    const closedAll = Promise.all(procs.map((p) => closedWithin(p, 40_000))).finally(() => {
      stillRunning = false;
    });
    for (let poll = 0; poll < 200 && stillRunning; poll += 1) {
      const report = await parent.verify();
      expect(report.drift).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const exits = await closedAll;

    exits.forEach((exit, w) => {
      const proc = procs[w] as Proc;
      if (w >= steadyPerRound) {
        expect(exit.signal, `victim ${w} of round ${round}: ${proc.stderr.join('')}`).toBe('SIGKILL');
        killed += 1;
      } else {
        expect(exit, `worker ${w} of round ${round}: ${proc.stderr.join('')}`).toEqual({ code: 0, signal: null });
        expect(proc.messages.at(-1)).toEqual({ t: 'done', ops: opsPerWorker });
      }
      for (const m of proc.messages) if (m.t === 'try') tried.add(m.id);
      // Tagged with the worker, so that acks can be grouped per process.
      messages.push(...proc.messages.map((m) => ({ ...m, worker: `${round}-w${w}` })));
    });

    // A fresh connection after each kill: the file is intact.
    const probe = new SqliteStore({ path });
    expect(integrity(probe.database)).toBe('ok');
    await probe.close();
    await checkLedger(parent, skus);
  }
  expect(killed).toBe(rounds * (workersPerRound - steadyPerRound));

  // Read everything back through a brand-new connection.
  const reader = new StockLedger({ store: new SqliteStore({ path }) });
  const entries = await checkLedger(reader, skus);

  // Every request in the file was asked for by someone (no phantom writes).
  for (const e of entries) expect(tried.has(e.requestId), `phantom request ${e.requestId}`).toBe(true);

  const acks = messages.filter((m): m is Extract<Message, { t: 'ack' }> => m.t === 'ack');
  const applied = acks.filter((m): m is Extract<Message, { t: 'ack'; ok: true }> => m.ok);
  const rejected = acks.filter((m): m is Extract<Message, { t: 'ack'; ok: false }> => !m.ok);
  // The run was meaningful: stock ran out, many deducts applied, many were replays.
  expect(applied.filter((m) => !m.replayed).length).toBeGreaterThan(20);
  expect(applied.filter((m) => m.replayed).length).toBeGreaterThan(5);
  expect(rejected.length).toBeGreaterThan(20);

  // Every acknowledged applied request is present, with the very entries and levels it reported.
  const firstApplied = new Map<string, number>();
  for (const m of applied) {
    const record = await reader.request(m.id);
    expect(record, `acknowledged request ${m.id}`).not.toBeNull();
    expect(record?.entries).toEqual(m.entries);
    expect(record?.levels).toEqual(m.levels);
    if (!m.replayed) firstApplied.set(m.id, (firstApplied.get(m.id) ?? 0) + 1);
  }
  // However many processes sent an id, at most one of them applied it.
  for (const [id, count] of firstApplied) expect(count, `request ${id} applied by ${count} callers`).toBe(1);

  // Rejections record nothing: a rejected id is applied only if some other attempt of it applied.
  const tries = new Map<string, number>();
  for (const m of messages) if (m.t === 'try') tries.set(m.id, (tries.get(m.id) ?? 0) + 1);
  const rejections = new Map<string, number>();
  for (const m of rejected) {
    expect(m.code).toBe('INSUFFICIENT_STOCK');
    rejections.set(m.id, (rejections.get(m.id) ?? 0) + 1);
  }
  for (const [id, count] of rejections) {
    if ((await reader.request(id)) !== null) expect(tries.get(id) ?? 0, `rejected ${id} applied without another attempt`).toBeGreaterThan(count);
  }

  expect(integrity((reader.store as SqliteStore).database)).toBe('ok');
  await reader.close();
  await parent.close();
  return messages;
}

describe('SQLite: several processes on one file, one killed with SIGKILL mid-loop', () => {
  it('keeps the file intact, every acknowledged request, nothing twice, no oversell (4 rounds, 8 kills)', async () => {
    // One caller per process; one worker and one victim without group commit, so both paths
    // share the file.
    await killRounds({
      rounds: 4,
      opsPerWorker: 80,
      lanes: 1,
      killAfterTries: (round) => [3 + 5 * round, 11 + 7 * round],
      groupCommitOf: (w) => (w % 2 === 0 ? false : undefined),
    });
  }, 50_000);

  it('with group commit and 8 concurrent callers per process as well (3 rounds, 6 kills, kills inside batches)', async () => {
    const messages = await killRounds({
      rounds: 3,
      opsPerWorker: 160,
      lanes: 8,
      // Past the first batches, at a different point of a batch each time.
      killAfterTries: (round) => [13 + 9 * round, 37 + 11 * round],
      groupCommitOf: (w) => [undefined, { batchWaitMs: 1 }, { batchOperationsMax: 16, batchWaitMs: 2 }, undefined][w],
    });
    // The processes really committed in batches: many acks resolved in the same event-loop turn.
    const perTurn = new Map<string, number>();
    for (const m of messages) if (m.t === 'ack') perTurn.set(`${m.worker ?? ''}/${m.turn}`, (perTurn.get(`${m.worker ?? ''}/${m.turn}`) ?? 0) + 1);
    const sizes = [...perTurn.values()];
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(4);
    expect(sizes.filter((n) => n > 1).length).toBeGreaterThan(10);
  }, 50_000);
});

describe('SQLite: several processes opening a brand-new file at once', () => {
  it('create and migrate it exactly once, and all of them work on it', async () => {
    const path = freshPath();
    const skus = ['A', 'B'];
    const procs = Array.from({ length: 4 }, (_, w) => {
      const config: WorkerConfig = { path, worker: `n${w}`, round: 0, ops: 15, seed: 77 + w, skus, sharedIds: 4, restockShare: 0.12, durability: 'full' };
      return spawnFixture('sqlite-worker.ts', config);
    });
    await startTogether(procs, 30_000);
    const exits = await Promise.all(procs.map((p) => closedWithin(p, 30_000)));
    exits.forEach((exit, w) => expect(exit, procs[w]?.stderr.join('')).toEqual({ code: 0, signal: null }));
    const raw = new Database(path);
    expect(schemaVersion(raw)).toBe(SCHEMA_VERSION);
    expect(raw.prepare('SELECT key, value FROM stock_ledger_schema').all()).toEqual([{ key: 'version', value: SCHEMA_VERSION }]);
    expect(integrity(raw)).toBe('ok');
    raw.close();
    const ledger = new StockLedger({ store: new SqliteStore({ path }) });
    const entries = await checkLedger(ledger, skus);
    // The workers restocked a little and deducted what they could: some of it applied.
    expect(entries.some((e) => e.kind === 'deduct')).toBe(true);
    await ledger.close();
  });
});

// ---------------------------------------------------------------------------------------------

/** The same operations, as a stored outcome would see them. */
function script(): ApplyOp[] {
  return [
    { kind: 'restock', input: { requestId: 'po-1', sku: 'A', qty: 10, meta: { supplier: 'acme', lines: [1, 2] } } },
    { kind: 'restock', input: { requestId: 'po-2', sku: 'B', qty: 5 } },
    { kind: 'deduct', input: { requestId: 'order-1', lines: [{ sku: 'B', qty: 2 }, { sku: 'A', qty: 3 }, { sku: 'B', qty: 1 }], meta: { order: 1 } } },
    { kind: 'deduct', input: { requestId: 'order-2', sku: 'A', qty: 1 } },
    { kind: 'reverse', input: { requestId: 'refund-1', of: 'order-1', lines: [{ sku: 'B', qty: 1 }] } },
    { kind: 'adjust', input: { requestId: 'count-1', sku: 'A', onHand: 4, expectedVersion: 3 } },
    // Rejected: records nothing, so after reopening the same id is evaluated again.
    { kind: 'deduct', input: { requestId: 'order-3', sku: 'B', qty: 50 } },
  ];
}


/** A different payload under each applied id of {@link script}. */
function changed(op: ApplyOp): ApplyOp {
  switch (op.kind) {
    case 'restock':
      return { kind: 'restock', input: 'qty' in op.input ? { ...op.input, qty: op.input.qty + 1 } : { ...op.input, meta: { other: true } } };
    case 'deduct':
      return { kind: 'deduct', input: { requestId: op.input.requestId, sku: 'A', qty: 1, meta: { other: true } } };
    case 'adjust':
      return { kind: 'adjust', input: 'onHand' in op.input ? { ...op.input, onHand: op.input.onHand + 1 } : { ...op.input, meta: { other: true } } };
    case 'reverse':
      return { kind: 'reverse', input: { requestId: op.input.requestId, of: op.input.of } };
  }
}

/** After reopening: replays return the original outcomes, changed payloads conflict, nothing moves. */
async function checkReplays(path: string, firsts: Map<string, OperationResult>): Promise<void> {
  const ledger = new StockLedger({ store: new SqliteStore({ path }), retry: false });
  const before = await readAllEntries(ledger);
  const levelsBefore = await ledger.stocks(['A', 'B']);
  for (const op of script()) {
    const first = firsts.get(op.input.requestId);
    if (first === undefined || !first.ok) continue;
    const replay = await applyOp(ledger, op);
    expect(replay, `replay of ${op.input.requestId}`).toEqual({ ...first, replayed: true });
    const record = await ledger.request(op.input.requestId);
    expect(record).toMatchObject({ ok: true, replayed: true, requestId: op.input.requestId, kind: op.kind });
    expect({ entries: record?.entries, levels: record?.levels }).toEqual({ entries: first.entries, levels: first.levels });
    const conflict = await applyOp(ledger, changed(op)).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    expect('error' in conflict && isStockLedgerError(conflict.error) ? conflict.error.code : conflict).toBe('IDEMPOTENCY_CONFLICT');
  }
  expect(await readAllEntries(ledger)).toEqual(before);
  expect(await ledger.stocks(['A', 'B'])).toEqual(levelsBefore);

  // The rejected order-3 recorded nothing: it is evaluated again, and applies once stock is there.
  expect(await ledger.request('order-3')).toBeNull();
  await ledger.restock({ requestId: 'po-3', sku: 'B', qty: 60 });
  const again = await ledger.deduct({ requestId: 'order-3', sku: 'B', qty: 50 });
  expect(again).toMatchObject({ ok: true, replayed: false });
  expect(await ledger.deduct({ requestId: 'order-3', sku: 'B', qty: 50 })).toEqual({ ...again, replayed: true });
  expect((await ledger.verify()).ok).toBe(true);
  expect(integrity((ledger.store as SqliteStore).database)).toBe('ok');
  await ledger.close();
}

describe('SQLite: close and reopen', () => {
  it('a replay after reopening returns the original outcome and entries; another payload conflicts', async () => {
    const path = freshPath();
    const ledger = new StockLedger({ store: new SqliteStore({ path }) });
    const firsts = new Map<string, OperationResult>();
    for (const op of script()) firsts.set(op.input.requestId, await applyOp(ledger, op));
    expect([...firsts.values()].map((r) => r.ok)).toEqual([true, true, true, true, true, true, false]);
    expect((firsts.get('order-1') as Applied).entries.map((e) => [e.sku, e.onHandDelta])).toEqual([['A', -3], ['B', -3]]);
    await ledger.close();
    expect((ledger.store as SqliteStore).database.open).toBe(false);
    await checkReplays(path, firsts);
  });

  it('after a SIGKILL with the connection still open (no close, no checkpoint) as well', async () => {
    const path = freshPath();
    const config: ApplyConfig = { path, durability: 'normal', ops: script(), lingerMs: 30_000 };
    const proc = spawnFixture('sqlite-apply.ts', config, (m, p) => {
      if (m.t === 'ready') p.child.kill('SIGKILL');
    });
    const exit = await closedWithin(proc, 30_000);
    expect(exit.signal, proc.stderr.join('')).toBe('SIGKILL');
    // The writer died holding the file open: its commits live in the WAL, not yet in the main file.
    expect(existsSync(`${path}-wal`)).toBe(true);
    const firsts = new Map<string, OperationResult>();
    for (const m of proc.messages) if (m.t === 'outcome') firsts.set(m.id, m.result);
    expect(firsts.size).toBe(script().length);
    await checkReplays(path, firsts);
  });
});

// ---------------------------------------------------------------------------------------------

describe('SQLite: synchronous on a new connection to an existing WAL file', () => {
  const level = { full: 2, normal: 1 } as const;
  const openWith = (path: string, durability: SqliteDurability | undefined): SqliteStore =>
    new SqliteStore(durability === undefined ? { path } : { path, durability });
  const pragmas = (store: SqliteStore): unknown[] =>
    ['synchronous', 'journal_mode'].map((p) => store.database.pragma(p, { simple: true }));

  it.each([
    ['full', 'normal'],
    ['normal', 'full'],
    ['normal', undefined],
    ['full', 'full'],
  ] as const)('a file created with %s, reopened with %s', async (created, reopened) => {
    const path = freshPath();
    const first = openWith(path, created);
    expect(pragmas(first)).toEqual([level[created], 'wal']);
    await new StockLedger({ store: first }).restock({ requestId: 'r1', sku: 'A', qty: 1 });
    await first.close();

    // The file is in WAL mode already; the new connection still sets its own level.
    const second = openWith(path, reopened);
    expect(pragmas(second)).toEqual([level[reopened ?? 'full'], 'wal']);
    await second.close();
  });

  it('with another connection holding the WAL open, each connection runs at its own level', async () => {
    const path = freshPath();
    const holder = openWith(path, 'normal');
    await new StockLedger({ store: holder }).restock({ requestId: 'r1', sku: 'A', qty: 1 });
    expect(existsSync(`${path}-wal`)).toBe(true);
    const full = openWith(path, 'full');
    const normal = openWith(path, 'normal');
    expect([pragmas(holder), pragmas(full), pragmas(normal)]).toEqual([[1, 'wal'], [2, 'wal'], [1, 'wal']]);
    // WAL is a property of the file: a raw connection opened by someone else sees it too.
    const raw = new Database(path);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    await Promise.all([holder.close(), full.close(), normal.close()]);
  });
});
