import { StockLedger } from '../src/index.js';
import type { StockStore } from '../src/index.js';
import { check, fail, show } from './assert.js';
import { checkInvariants } from './invariants.js';
import { runOp, type Outcome } from './ops.js';
import { seededRandom } from './random.js';

const STOCK = 100;
const BUYERS = 2000;
const SKU = 'flash {sale}:1';

/**
 * A flash sale with lost replies: one SKU with 100 units, 2,000 buyers each wanting one, each
 * request sent 1 to 3 times at once. Exactly 100 are applied, no buyer twice, nothing oversold.
 */
export async function retryStorm(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const ledger = new StockLedger({ store: await createStore() });
  try {
    await ledger.restockOrThrow({ requestId: 'storm-stock', sku: SKU, qty: STOCK });
    const random = seededRandom(20_000);
    const sends: number[] = [];
    for (let buyer = 0; buyer < BUYERS; buyer += 1) {
      const copies = 1 + Math.floor(random() * 3);
      for (let i = 0; i < copies; i += 1) sends.push(buyer);
    }
    for (let i = sends.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [sends[i], sends[j]] = [sends[j] as number, sends[i] as number];
    }
    const results = await Promise.all(sends.map(async (buyer) => ({
      buyer,
      outcome: await runOp(ledger, { kind: 'deduct', input: { requestId: `buyer-${buyer}`, sku: SKU, qty: 1, meta: { buyer } } }),
    })));

    const byBuyer = new Map<number, Outcome[]>();
    for (const { buyer, outcome } of results) byBuyer.set(buyer, [...(byBuyer.get(buyer) ?? []), outcome]);
    let firstApplications = 0;
    let buyersServed = 0;
    for (const [buyer, outcomes] of byBuyer) {
      for (const o of outcomes) {
        if (o === null || 'thrown' in o) fail(`buyer ${buyer}: a send threw ${show(o)}`);
        check('ok' in o && (o.ok || o.code === 'INSUFFICIENT_STOCK'), () => `buyer ${buyer}: unexpected outcome ${show(o)}`);
      }
      const ok = outcomes.filter((o) => o !== null && 'ok' in o && o.ok && 'replayed' in o);
      const first = ok.filter((o) => 'replayed' in o && !o.replayed);
      firstApplications += first.length;
      if (ok.length > 0) buyersServed += 1;
      check(ok.length === 0 || ok.length === outcomes.length, () => `buyer ${buyer}: some sends applied, some rejected: ${show(outcomes)}`);
      check(ok.length === 0 || first.length === 1, () => `buyer ${buyer}: ${first.length} sends applied (replayed: false), expected exactly 1`);
      const [one] = ok;
      for (const o of ok) {
        check('entries' in o && 'entries' in (one as object) && show(o.entries) === show((one as { entries: unknown }).entries),
          () => `buyer ${buyer}: sends got different entries: ${show(ok)}`);
      }
    }
    check(firstApplications === STOCK, () => `${firstApplications} deducts applied, expected exactly ${STOCK}`);
    check(buyersServed === STOCK, () => `${buyersServed} buyers served, expected exactly ${STOCK}`);

    const { entries, verify } = await checkInvariants(ledger);
    check(verify.ok, () => `verify() not ok: ${show(verify)}`);
    const buyerEntries = entries.filter((e) => e.requestId.startsWith('buyer-'));
    check(buyerEntries.length === STOCK, () => `${buyerEntries.length} buyer entries, expected ${STOCK}`);
    check(new Set(buyerEntries.map((e) => e.requestId)).size === STOCK, () => 'a buyer id appears twice in the entries');
    const level = await ledger.stock(SKU);
    check(level.available === 0 && level.onHand === 0 && level.version === STOCK + 1, () => `final level ${show(level)}, expected 0 available, version ${STOCK + 1}`);
  } finally {
    await ledger.close();
  }
}
