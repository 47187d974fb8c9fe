/**
 * The flash-sale service's live page in a real browser: headless Chromium (Debian's `chromium`
 * package, driven by playwright-core) opens the page, a short load runs against the service over
 * loopback, and the numbers on the page must change and end at the ledger's own values (stock per
 * SKU, units sold, orders applied and replayed), with a stock event shown for each SKU that sold
 * out. A screenshot of the page is saved and checked
 * not to be blank (its pixels vary, and the chart drew bars).
 *
 * Needs /usr/bin/chromium (or STOCK_LEDGER_CHROMIUM): `.ci/run` installs it. Without it the suite
 * says why it skips; with CI=true it fails instead.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser } from 'playwright-core';
import { StockLedger } from 'stock-ledger';
import { SqliteStore } from 'stock-ledger/sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad } from '../examples/flash-sale-service/load.js';
import { buildService } from '../examples/flash-sale-service/service.js';

const CHROMIUM = process.env['STOCK_LEDGER_CHROMIUM'] ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && process.env['CI'] === 'true') throw new Error(`CI=true but no Chromium at ${CHROMIUM}: .ci/run installs Debian's chromium package`);
if (!available) console.warn(`service.browser.test.ts skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set STOCK_LEDGER_CHROMIUM)`);

/** The page's globals the checks read, typed here (this project compiles without the DOM library). */
interface PageGlobals {
  document: {
    getElementById(id: string): { textContent: string | null } | null;
    querySelectorAll(selector: string): { length: number };
  };
}
interface Canvas {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}

/** Where the screenshot goes: test/scratch (ignored by git); the README's copy is docs/flash-sale-live.png. */
const SHOT = new URL('./scratch/flash-sale-live.png', import.meta.url);
const STOCK = { 'SNEAKER-42': 120, 'HOODIE-L': 60, CAP: 40 } as const;

/** The bytes of a PNG's pixel rows (its IDAT chunks, inflated): a blank page is one repeated value. */
function pngPixelBytes(png: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    if (type === 'IDAT') parts.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  return inflateSync(Buffer.concat(parts));
}

describe.skipIf(!available)('the live page in headless Chromium', () => {
  let dir: string;
  let ledger: StockLedger;
  let app: FastifyInstance;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stock-ledger-browser-'));
    ledger = new StockLedger({ store: new SqliteStore({ path: join(dir, 'stock.db') }) });
    await ledger.restockOrThrow({ requestId: 'po-1', lines: Object.entries(STOCK).map(([sku, qty]) => ({ sku, qty })) });
    app = buildService({ ledger, pollMs: 50 });
    base = await app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await ledger?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the sale as it happens and ends at the ledger\'s numbers; the screenshot is not blank', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    await page.goto(`${base}/`);
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).document.getElementById('status')?.textContent === 'live', undefined, { timeout: 15_000 });
    const cell = (sku: string, field: string) => page.locator(`tr[data-sku="${sku}"] td[data-field="${field}"]`).textContent();
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).document.querySelectorAll('#skus tr').length === 3, undefined, { timeout: 15_000 });
    expect(await cell('CAP', 'onHand')).toBe('40');
    expect(await page.locator('#sold').textContent()).toBe('0');

    const summary = await runLoad({ url: base, buyers: 400, concurrency: 16, seed: 3 });
    expect(summary.failures).toEqual([]);
    expect(summary.unitsSold).toBeGreaterThan(0);

    // The page catches up with the feed: every number ends at the ledger's value.
    await page.waitForFunction((sold) => (globalThis as unknown as PageGlobals).document.getElementById('sold')?.textContent === String(sold), summary.unitsSold, { timeout: 15_000 });
    for (const sku of Object.keys(STOCK)) {
      const level = await ledger.stock(sku);
      await expect.poll(() => cell(sku, 'onHand'), { timeout: 10_000 }).toBe(String(level.onHand));
      expect(await cell(sku, 'available')).toBe(String(level.available));
      expect(Number(await cell(sku, 'sold'))).toBe(STOCK[sku as keyof typeof STOCK] - level.onHand);
    }
    await expect.poll(() => page.locator('#applied').textContent(), { timeout: 10_000 }).toBe(String(app.counters.applied));
    // The SKUs that sold out were announced by their stock events.
    const soldOut = Object.keys(STOCK).filter((sku) => summary.stockAfter[sku] === 0);
    expect(soldOut.length).toBeGreaterThan(0);
    for (const sku of soldOut) {
      await expect.poll(() => page.locator('#stock-events li.depleted', { hasText: `depleted ${sku}:` }).count(), { timeout: 10_000 }).toBe(1);
    }
    expect(await page.locator('#replayed').textContent()).toBe(String(app.counters.replayed));
    expect(app.counters.applied).toBe(summary.applied);

    // The chart drew bars: some of its pixels are not transparent.
    const inked = await page.evaluate(() => {
      const canvas = (globalThis as unknown as PageGlobals).document.getElementById('chart') as unknown as Canvas;
      const data = canvas.getContext('2d')?.getImageData(0, 20, canvas.width, canvas.height - 20).data ?? new Uint8ClampedArray();
      let count = 0;
      for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) count += 1;
      return count;
    });
    expect(inked).toBeGreaterThan(100);
    const shot = await page.screenshot({ fullPage: true });
    mkdirSync(new URL('./scratch/', import.meta.url), { recursive: true });
    writeFileSync(SHOT, shot);
    const pixels = pngPixelBytes(shot);
    expect(new Set(pixels).size, 'a blank screenshot repeats one value').toBeGreaterThan(20);
    expect(shot.length).toBeGreaterThan(10_000);
  }, 90_000);
});
