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
  it('operations: stock events resumed from a cursor, low stock, compaction inside a window, verify ok, a follower told it fell behind', async () => {
    const out = await example('examples/operations.ts');
    expect(out).toContain('the first run of the events follower:\n  replenished CAP: available 0 -> 9 (threshold 1), by restock po-1\n  replenished MUG: available 0 -> 6 (threshold 1), by restock po-1\n'
      + '  replenished TOTE: available 0 -> 2 (threshold 1), by restock po-1\n  belowThreshold MUG: available 6 -> 3 (threshold 3), by deduct order-1\n'
      + '  belowThreshold TOTE: available 2 -> 0 (threshold 1), by deduct order-1\n  depleted TOTE: available 2 -> 0, by deduct order-1\n');
    expect(out).toContain('after a restart, from its stored cursor:\n  depleted MUG: available 3 -> 0, by deduct order-2\n  replenished TOTE: available 0 -> 5 (threshold 1), by restock po-2\n');
    expect(out).toContain('low stock (available <= 3): MUG 0\n');
    expect(out).toContain('compact(): removed 5 request records and 8 entries in 1 step(s); the feed starts after seq 8');
    expect(out).toContain('a retry inside the window still replays: true; now po-3 is kept');
    expect(out).toContain('order-1 (8 days old) is gone');
    expect(out).toContain('verify() after compaction: ok (3 SKUs, checkpoints plus kept entries)');
    expect(out).toContain('levels are unchanged: MUG 10 (v5), TOTE 5 (v3), CAP 9 (v1)');
    expect(out).toContain('the first follower, eight days later:\n  replenished MUG: available 0 -> 10 (threshold 3), by restock po-3\n');
    expect(out).toContain('the follower fell behind: FEED_COMPACTED (the feed starts after seq 8)');
    expect(out).toContain('the weekly follower, from the compacted part:\n  replenished MUG: available 0 -> 10 (threshold 3), by restock po-3\n');
  });

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
