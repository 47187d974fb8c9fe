/**
 * Starts the flash-sale service.
 *
 *   npm run service -- --port 3000 --stock SNEAKER-42=300 --stock CAP=80
 *   npm run service -- --port 3000 --store redis://127.0.0.1:6379?prefix=sale
 *   npm run service -- --port 3000 --store postgres://postgres@127.0.0.1:5432/postgres
 *
 * Options: --port (default 3000), --host (default 127.0.0.1), --store (default
 * sqlite:flash-sale-service.db, in the current directory), --stock SKU=qty (repeatable: stocks
 * the SKU up to that many units once; the restock's request id names SKU and qty, so a restart
 * with the same flag adds nothing). SIGINT or SIGTERM stop it gracefully: no new connection,
 * requests in flight finish, event streams end, then the store closes.
 */
import { parseArgs } from 'node:util';
import { StockLedger } from 'stock-ledger';
import { buildService } from './service.js';
import { openStore } from './stores.js';

interface Options {
  port: number;
  host: string;
  store: string;
  stock: Array<{ sku: string; qty: number }>;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '3000' },
      host: { type: 'string', default: '127.0.0.1' },
      store: { type: 'string', default: 'sqlite:flash-sale-service.db' },
      stock: { type: 'string', multiple: true, default: [] },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`--port ${values.port}: expected 0 to 65535`);
  const stock = values.stock.map((pair) => {
    const match = /^(.+)=(\d+)$/.exec(pair);
    if (!match) throw new Error(`--stock ${pair}: expected SKU=qty`);
    return { sku: match[1] as string, qty: Number(match[2]) };
  });
  return { port, host: values.host, store: values.store, stock };
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const opened = await openStore(opts.store);
  const ledger = new StockLedger({ store: opened.store });
  for (const { sku, qty } of opts.stock) {
    await ledger.restockOrThrow({ requestId: `seed:${sku}:${qty}`, sku, qty });
  }
  const app = buildService({ ledger });
  const address = await app.listen({ port: opts.port, host: opts.host });
  console.log(`flash-sale service on ${address} (${opened.label}); live page at ${address}/`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: finishing requests in flight`);
    void app.close().then(() => ledger.close()).then(() => opened.disconnect()).then(() => process.exit(0), (error: unknown) => {
      console.error(error);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
