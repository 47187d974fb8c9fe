/**
 * Child processes for the PostgreSQL multi-process tests (test/fixtures/postgres-worker.ts),
 * and the whole-ledger check they end with.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Entry, StockLedger } from 'stock-ledger';
import { readAllEntries } from 'stock-ledger/testing';
import { expect } from 'vitest';
import type { PostgresWorkerConfig } from '../fixtures/postgres-worker.js';
import { expectEntriesOnce } from './entry-checks.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const worker = fileURLToPath(new URL('../fixtures/postgres-worker.ts', import.meta.url));

export type WorkerMessage =
  | { t: 'ready' }
  | { t: 'try'; id: string }
  | { t: 'ack'; id: string; ok: true; replayed: boolean; entries: Entry[] }
  | { t: 'ack'; id: string; ok: false; code: string }
  | { t: 'unavailable'; id: string }
  | { t: 'done'; ops: number };

export interface WorkerProcess {
  child: ChildProcess;
  messages: WorkerMessage[];
  stderr: string[];
  ready: Promise<void>;
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts one worker; `onMessage` sees each whole JSON line it prints. */
export function spawnWorker(config: PostgresWorkerConfig, onMessage?: (m: WorkerMessage) => void): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', worker, JSON.stringify(config)], {
    cwd: root, env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let markReady = (): void => {};
  let notReady = (_: Error): void => {};
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    notReady = reject;
  });
  ready.catch(() => {});
  const proc: WorkerProcess = { child, messages: [], stderr: [], ready, closed: Promise.resolve({ code: null, signal: null }) };
  proc.closed = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      notReady(new Error(`worker closed before it was ready (${code}, ${signal}): ${proc.stderr.join('')}`));
      resolve({ code, signal });
    });
  });
  child.stdin?.on('error', () => {});
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    let message: WorkerMessage;
    try {
      message = JSON.parse(line) as WorkerMessage;
    } catch {
      return; // a killed process may leave half a line
    }
    proc.messages.push(message);
    if (message.t === 'ready') markReady();
    onMessage?.(message);
  });
  child.stderr?.on('data', (chunk: Buffer) => proc.stderr.push(chunk.toString('utf8')));
  return proc;
}

/** Once every worker is ready, lets them all go at once (bounded wait). */
export async function startTogether(procs: readonly WorkerProcess[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`workers not ready within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([Promise.all(procs.map((p) => p.ready)), timeout]);
  } finally {
    clearTimeout(timer);
  }
  for (const p of procs) p.child.stdin?.end('go\n');
}

/** Waits for a worker to close, killing it (and failing) past `ms`. */
export async function closedWithin(proc: WorkerProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      reject(new Error(`worker did not finish within ${ms} ms; stderr: ${proc.stderr.join('')}`));
    }, ms);
  });
  try {
    return await Promise.race([proc.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Every invariant of the whole ledger, read back: seqs contiguous and nothing applied twice;
 * each SKU's entries chain (so the feed has them in version order), never below zero, and fold
 * to the level; every request with entries has its record holding exactly those; verify() ok.
 */
export async function checkWholeLedger(ledger: StockLedger, skus: readonly string[]): Promise<Entry[]> {
  const entries = await readAllEntries(ledger);
  expectEntriesOnce(entries);
  for (const sku of skus) {
    let onHand = 0;
    let version = 0;
    for (const e of entries.filter((x) => x.sku === sku)) {
      onHand += e.onHandDelta;
      version += 1;
      expect(e.onHandAfter, `chain of ${sku} at seq ${e.seq}`).toBe(onHand);
      expect(e.onHandAfter, `no oversell of ${sku}`).toBeGreaterThanOrEqual(0);
    }
    expect(await ledger.stock(sku)).toEqual({ sku, onHand, reserved: 0, available: onHand, version });
  }
  const byRequest = new Map<string, Entry[]>();
  for (const e of entries) byRequest.set(e.requestId, [...(byRequest.get(e.requestId) ?? []), e]);
  for (const [id, own] of byRequest) expect((await ledger.request(id))?.entries, `request ${id}`).toEqual(own);
  expect(await ledger.verify()).toEqual({ ok: true, skusChecked: skus.length, drift: [] });
  return entries;
}
