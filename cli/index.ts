#!/usr/bin/env node
/**
 * `stock-ledger`: the command line over a ledger (verify, stock, entries, request,
 * reservation, holds, sweep). A room above the core: it uses the library's public API only.
 */
import { isStockLedgerError } from '../src/index.js';
import { parseCommandLine, usage, UsageError, type ParsedArgs } from './args.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, runCommand, type CommandIo } from './commands.js';
import { ConnectionError, openStore, parseStoreUrl } from './store-url.js';

/**
 * Runs the CLI and returns its exit code (the caller sets `process.exitCode`, so pending
 * output is flushed rather than cut off by `process.exit`).
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseCommandLine(argv, env);
  } catch (error) {
    return fail(error);
  }
  if (args.help || args.command === undefined) {
    process.stdout.write(`${usage(args.command)}\n`);
    return EXIT_OK;
  }
  return runWithStore(args);
}

async function runWithStore(args: ParsedArgs): Promise<number> {
  const command = args.command;
  if (command === undefined) return EXIT_USAGE;
  if (args.store === undefined) return fail(new UsageError('no store: pass --store <url> or set STOCK_LEDGER_STORE'));
  let opened;
  try {
    opened = await openStore(parseStoreUrl(args.store));
  } catch (error) {
    return fail(error);
  }
  const stopper = stopOnSignals();
  try {
    return await runCommand(command, opened.store, args, io(stopper.signal));
  } catch (error) {
    return fail(error);
  } finally {
    stopper.dispose();
    await opened.close().catch((error: unknown) => process.stderr.write(`stock-ledger: closing the store failed: ${String(error)}\n`));
  }
}

function io(stop: AbortSignal): CommandIo {
  return { out: (text) => process.stdout.write(`${text}\n`), err: process.stderr, stop };
}

/** SIGINT/SIGTERM abort the signal instead of killing the process, so the store still closes. */
function stopOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

/** Prints an error and maps it to an exit code: bad input and unreachable stores are 2. */
function fail(error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof UsageError) {
    // A hint, not the whole usage: the error line must stay visible above the prompt.
    process.stderr.write(`stock-ledger: ${message}\nRun "stock-ledger --help" (or "stock-ledger <command> --help") for usage.\n`);
    return EXIT_USAGE;
  }
  process.stderr.write(`stock-ledger: ${message}\n`);
  if (error instanceof ConnectionError) return EXIT_USAGE;
  if (isStockLedgerError(error)) return error.code === 'INVALID_INPUT' || error.code === 'STORE_UNAVAILABLE' ? EXIT_USAGE : EXIT_FAILED;
  return EXIT_USAGE;
}

process.exitCode = await main(process.argv.slice(2));
