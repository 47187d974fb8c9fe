/**
 * Command-line parsing for `stock-ledger`: which command, its positionals and its flags.
 * Everything here is pure (no store, no I/O) so a bad command line fails before any connection.
 */
import { parseArgs } from 'node:util';

/** A command line the CLI cannot run: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The commands of this CLI, in the order `--help` lists them. */
export const COMMANDS = ['verify', 'stock', 'levels', 'entries', 'events', 'request', 'reservation', 'holds', 'sweep', 'compact'] as const;
export type CommandName = (typeof COMMANDS)[number];

/** What a command line asks for, checked. */
export interface ParsedArgs {
  /** Undefined only with top-level `--help`. */
  command: CommandName | undefined;
  help: boolean;
  json: boolean;
  /** `--store`, else `STOCK_LEDGER_STORE`; undefined when neither is set. */
  store: string | undefined;
  positionals: string[];
  after: number | undefined;
  sku: string | undefined;
  limit: number | undefined;
  follow: boolean;
  intervalMs: number;
  /** `levels --below N`: only SKUs with available <= N. */
  below: number | undefined;
  /** `levels --from <sku>`: start after this SKU (the `next` a page printed). */
  from: string | undefined;
  /** `events --after <cursor>`: an event cursor (or an entry seq). */
  cursor: string | undefined;
  /** `events --low-stock-at N`: threshold for SKUs whose policy has none. */
  lowStockAt: number | undefined;
  /** `compact --window <duration>`, in ms. */
  windowMs: number | undefined;
}

type OptionSpec = { type: 'string' | 'boolean'; short?: string };

const COMMON: Record<string, OptionSpec> = {
  store: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** The flags each command takes besides the common ones. */
const OWN: Record<CommandName, Record<string, OptionSpec>> = {
  verify: {},
  stock: {},
  levels: { below: { type: 'string' }, limit: { type: 'string' }, from: { type: 'string' } },
  events: { after: { type: 'string' }, 'low-stock-at': { type: 'string' }, follow: { type: 'boolean' }, 'interval-ms': { type: 'string' } },
  compact: { window: { type: 'string' } },
  entries: {
    after: { type: 'string' }, sku: { type: 'string' }, limit: { type: 'string' },
    follow: { type: 'boolean' }, 'interval-ms': { type: 'string' },
  },
  request: {},
  reservation: {},
  holds: { limit: { type: 'string' } },
  sweep: { limit: { type: 'string' } },
};

/** Positionals each command needs: [min, max] (max Infinity for a list). */
const ARITY: Record<CommandName, [number, number, string]> = {
  verify: [0, 0, ''],
  stock: [1, Infinity, '<sku...>'],
  levels: [0, 0, ''],
  events: [0, 0, ''],
  compact: [0, 0, ''],
  entries: [0, 0, ''],
  request: [1, 1, '<id>'],
  reservation: [1, 1, '<id>'],
  holds: [1, 1, '<sku>'],
  sweep: [0, 0, ''],
};

export const DEFAULT_INTERVAL_MS = 1000;
/** Polling faster than this only loads the store; slower than an hour is a mistake. */
const INTERVAL_MS_MIN = 10;
const INTERVAL_MS_MAX = 3_600_000;

/**
 * Parses argv (without `node` and the script) and the environment into {@link ParsedArgs}.
 * Throws {@link UsageError} for an unknown command or flag, a missing or extra argument, or a
 * flag value that is not a number where one is needed.
 *
 * @example
 * parseCommandLine(['stock', 'A', '--store', 'sqlite:stock.db'], {}).positionals; // ['A']
 */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const command = findCommand(argv);
  const options = command === undefined ? COMMON : { ...COMMON, ...OWN[command] };
  const { values, positionals } = strictParse(argv, options);
  const help = values['help'] === true;
  if (command === undefined && positionals[0] !== undefined) throw new UsageError(`unknown command "${positionals[0]}"`);
  if (command === undefined && !help) throw new UsageError('no command given');
  const rest = positionals.slice(1);
  if (command !== undefined && !help) checkArity(command, rest);
  const storeFlag = stringValue(values['store']);
  const fromEnv = env['STOCK_LEDGER_STORE'];
  return {
    command,
    help,
    json: values['json'] === true,
    store: storeFlag ?? (fromEnv === undefined || fromEnv === '' ? undefined : fromEnv),
    positionals: rest,
    after: command === 'events' ? undefined : integerFlag(values['after'], 'after', 0),
    sku: stringValue(values['sku']),
    limit: integerFlag(values['limit'], 'limit', 1),
    follow: values['follow'] === true,
    intervalMs: intervalFlag(values['interval-ms'], values['follow'] === true),
    below: signedFlag(values['below'], 'below'),
    from: stringValue(values['from']),
    cursor: command === 'events' ? cursorFlag(values['after']) : undefined,
    lowStockAt: integerFlag(values['low-stock-at'], 'low-stock-at', 0),
    windowMs: durationFlag(values['window']),
  };
}

/** The command named first among the positionals (flag values skipped), if it is a known one. */
function findCommand(argv: readonly string[]): CommandName | undefined {
  const all: Record<string, OptionSpec> = { ...COMMON };
  for (const own of Object.values(OWN)) Object.assign(all, own);
  // Loose on purpose: this pass only finds the command; the strict pass below judges the flags.
  const { positionals } = parseArgs({ args: [...argv], options: all, strict: false, allowPositionals: true });
  const first = positionals[0];
  return (COMMANDS as readonly string[]).includes(first ?? '') ? (first as CommandName) : undefined;
}

function strictParse(argv: readonly string[], options: Record<string, OptionSpec>): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (error) {
    // parseArgs' own messages name the flag ("Unknown option '--x'"), which is what a person needs.
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function checkArity(command: CommandName, rest: string[]): void {
  const [min, max, shape] = ARITY[command];
  if (rest.length < min) throw new UsageError(`${command} needs ${shape}`);
  if (rest.length > max) throw new UsageError(`${command} takes ${max === 0 ? 'no arguments' : shape}, got extra "${rest[max] ?? ''}"`);
}

function stringValue(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function integerFlag(value: unknown, name: string, min: number): number | undefined {
  const text = stringValue(value);
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text) || Number(text) < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${text}"`);
  return Number(text);
}

function signedFlag(value: unknown, name: string): number | undefined {
  const text = stringValue(value);
  if (text === undefined) return undefined;
  if (!/^-?\d{1,15}$/.test(text)) throw new UsageError(`--${name} must be an integer, got "${text}"`);
  return Number(text);
}

function cursorFlag(value: unknown): string | undefined {
  const text = stringValue(value);
  if (text !== undefined && !/^\d{1,15}(\.\d)?$/.test(text)) throw new UsageError(`--after must be an event cursor (as printed) or an entry seq, got "${text}"`);
  return text;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: digits with a unit (ms, s, m, h, d), or bare digits as ms: `7d`, `36h`, `90000`. */
function durationFlag(value: unknown): number | undefined {
  const text = stringValue(value);
  if (text === undefined) return undefined;
  const match = /^(\d{1,13})(ms|s|m|h|d)?$/.exec(text);
  if (match === null) throw new UsageError(`--window must be a duration such as 7d, 36h, 90m or 3600000 (ms), got "${text}"`);
  return Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] ?? 1);
}

function intervalFlag(value: unknown, follow: boolean): number {
  const ms = integerFlag(value, 'interval-ms', INTERVAL_MS_MIN);
  if (ms === undefined) return DEFAULT_INTERVAL_MS;
  if (!follow) throw new UsageError('--interval-ms goes with --follow');
  if (ms > INTERVAL_MS_MAX) throw new UsageError(`--interval-ms must be at most ${INTERVAL_MS_MAX}`);
  return ms;
}

/** Usage text: the whole CLI, or one command. */
export function usage(command?: CommandName): string {
  return command === undefined ? TOP_USAGE : `${COMMAND_USAGE[command]}\n\n${STORE_HELP}`;
}

const STORE_HELP = `Store (--store <url> or env STOCK_LEDGER_STORE):
  sqlite:<path>                          an existing SQLite file (needs better-sqlite3)
  redis://host:port[/db]?prefix=<p>      a Redis ledger (needs ioredis)
  postgres://user@host:port/db[?schema=<s>]  a PostgreSQL ledger (needs pg)

Common flags: --store <url>, --json (machine-readable output), -h/--help.
Exit codes: 0 ok, 1 drift or not found, 2 usage or connection error.`;

const COMMAND_USAGE: Record<CommandName, string> = {
  verify: 'Usage: stock-ledger verify --store <url> [--json]\n  Checks every invariant of every SKU; exit 1 when anything drifted.',
  stock: 'Usage: stock-ledger stock <sku...> --store <url> [--json]\n  Levels of the SKUs: on hand, reserved, available, version.',
  levels: 'Usage: stock-ledger levels --store <url> [--below N] [--limit N] [--from SKU] [--json]\n'
    + '  Levels of every SKU, in pages of --limit (default 100) walked to the end; --below N keeps those with\n'
    + '  available <= N (the low-stock report). --from starts after a SKU.',
  events: 'Usage: stock-ledger events --store <url> [--after CURSOR] [--low-stock-at N] [--follow [--interval-ms N]] [--json]\n'
    + '  Stock events from the feed: depleted, belowThreshold (the SKU\'s lowStockAt, else --low-stock-at), replenished.\n'
    + '  Each line ends with its cursor: pass it as --after to go on without a duplicate or a gap.',
  compact: 'Usage: stock-ledger compact --store <url> --window <duration> [--json]\n'
    + '  Removes request records, closed ids, settled reservations and entries older than the window\n'
    + '  (7d, 36h, 90m, or ms), in bounded steps, after sweeping due holds. Retries older than the window\n'
    + '  are new requests: pick a window longer than any client\'s or queue\'s retry horizon.',
  entries: 'Usage: stock-ledger entries --store <url> [--after N] [--sku S] [--limit N] [--follow [--interval-ms N]] [--json]\n'
    + '  A page of the entry feed after seq N (default 0, limit 1-1000, default 100).\n'
    + '  --follow keeps polling every --interval-ms (default 1000) and prints new entries until Ctrl-C.',
  request: 'Usage: stock-ledger request <id> --store <url> [--json]\n  The stored outcome of an applied request; exit 1 when not found.',
  reservation: 'Usage: stock-ledger reservation <id> --store <url> [--json]\n  A reservation as of now; exit 1 when not found.',
  holds: 'Usage: stock-ledger holds <sku> --store <url> [--limit N] [--json]\n  Live holds of a SKU, soonest expiry first.',
  sweep: 'Usage: stock-ledger sweep --store <url> [--limit N] [--json]\n  Expires due holds (at most --limit in this call) and says whether more remain.',
};

const TOP_USAGE = `Usage: stock-ledger <command> [args] --store <url> [--json]

Commands:
  verify                 check every invariant of every SKU (exit 1 on drift)
  stock <sku...>         levels of SKUs
  levels                 levels of every SKU (--below N for low stock)
  entries                the entry feed (--after, --sku, --limit, --follow, --interval-ms)
  events                 stock events: depleted, belowThreshold, replenished (--after, --follow)
  request <id>           the stored outcome of a request
  reservation <id>       a reservation as of now
  holds <sku>            live holds of a SKU (--limit)
  sweep                  expire due holds (--limit)
  compact --window 7d    remove what is older than the idempotency window

Run "stock-ledger <command> --help" for one command.

${STORE_HELP}`;
