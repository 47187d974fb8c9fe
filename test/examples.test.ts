/**
 * The README's runnable examples run to the end and print what the README says they show.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

async function example(file: string): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 60_000 });
  return stdout;
}

describe('examples', () => {
  it('commerce-rules: preorders, purchase limits, several warehouses and a cart that changes; verify is ok', async () => {
    const out = await example('examples/commerce-rules.ts');
    expect(out).toContain('60 buyers at once: 50 sold, 10 refused (INSUFFICIENT_STOCK)');
    expect(out).toContain('CONSOLE: onHand -30, reserved 0, available 0 (backorderMax 30, lowStockAt 5, buyerMax null)');
    expect(out).toContain('60 requests from 20 customers: 40 sold, 20 refused (BUYER_LIMIT)');
    expect(out).toContain('SNEAKER-42: onHand 10, reserved 0, available 10 (backorderMax 0, lowStockAt null, buyerMax 2)');
    expect(out).toContain('customer-0 has 2 of 2');
    expect(out).toContain('after a refund, customer-0 has 1 of 2');
    expect(out).toContain('merchandising tries to close preorders (backorderMax 0): BELOW_RESERVED');
    expect(out).toContain('now preorders can close (backorderMax: null resets it): ok');
    expect(out).toContain('an order of 5, split in priority order: TEE-M@berlin 2 + TEE-M@paris 3');
    expect(out).toContain('an order of 3 from one location: TEE-M@lyon 3');
    expect(out).toContain('20 orders over three locations: 8 sold');
    expect(out).toContain('TEE-M@lyon: onHand 0, reserved 0, available 0 (default policy)');
    expect(out).toContain('the cart is amended: amend MUG +1, amend TOTE -1');
    expect(out).toContain('another buyer wants a mug: INSUFFICIENT_STOCK');
    expect(out).toContain('the cart is paid: ok');
    expect(out).toContain('verify(): ok');
  });

  it('tracing: one span per operation with its outcome, and a counter by kind and outcome, from the in-memory OTel exporters', async () => {
    const out = await example('examples/tracing.ts');
    expect(out).toContain('span stock-ledger deduct: order-1 -> applied (status ok)');
    expect(out).toContain('span stock-ledger deduct: order-1 -> replayed (status ok)');
    expect(out).toContain('span stock-ledger deduct: order-2 -> INSUFFICIENT_STOCK (status ok)');
    expect(out).toContain('span stock-ledger deduct: order-1 -> IDEMPOTENCY_CONFLICT (status ERROR)');
    expect(out).toContain('metric stock_ledger.operations{kind=deduct, outcome=replayed} = 1');
    expect(out).toContain('metric stock_ledger.operations{kind=restock, outcome=applied} = 1');
  });
});
