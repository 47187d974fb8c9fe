import { InvariantViolationError } from '../../src/index.js';
import { byCodeUnits } from '../../src/store-kit.js';
import type { Applied, Entry, JsonObject, Line, OperationKind } from '../../src/index.js';
import type { Command, StoreOutcome, StoredRequest, StoredReservation } from '../../src/store-kit.js';
import type { LuaScriptName } from './redis-scripts.js';

/** A command as a script call: which script, and its ARGV (see each .lua file's header). */
export interface ScriptCall {
  script: LuaScriptName;
  args: string[];
}

function linesArgs(lines: readonly Line[] | null): string[] {
  if (lines === null) return ['-1'];
  const out = [String(lines.length)];
  for (const l of lines) out.push(l.sku, String(l.qty));
  return out;
}

function metaArg(meta: JsonObject | null): string {
  return meta === null ? '' : JSON.stringify(meta);
}

/**
 * The script call of a command. Numbers travel as decimal strings; every quantity, time and
 * seq is a safe integer, so `String` writes it exactly.
 */
export function scriptCall(command: Command): ScriptCall {
  switch (command.kind) {
    case 'commit':
      return { script: 'commit', args: [command.reservationId, String(command.at), ...linesArgs(command.lines)] };
    case 'release':
      return { script: 'release', args: [command.reservationId, String(command.at)] };
    case 'sweep':
      return { script: 'sweep', args: [String(command.limit), String(command.at)] };
    default:
      break;
  }
  const head = [command.requestId, command.fingerprint, String(command.at), metaArg(command.meta)];
  switch (command.kind) {
    case 'restock':
      return { script: 'restock', args: [...head, command.sku, String(command.qty)] };
    case 'deduct':
      return { script: 'deduct', args: [...head, ...linesArgs(command.lines)] };
    case 'adjust':
      return { script: 'adjust', args: [...head, command.sku, String(command.onHand), command.expectedVersion === null ? '' : String(command.expectedVersion)] };
    case 'reverse':
      return { script: 'reverse', args: [...head, command.of, ...linesArgs(command.lines)] };
    case 'reserve':
      return { script: 'reserve', args: [...head, String(command.expiresAt), ...linesArgs(command.lines)] };
    case 'revoke':
      return { script: 'revoke', args: head };
  }
}

/** A string reply (a Buffer one decoded as UTF-8); anything else is a broken reply. */
export function text(reply: unknown, what: string): string {
  if (typeof reply === 'string') return reply;
  if (reply instanceof Uint8Array) return Buffer.from(reply).toString('utf8');
  throw new InvariantViolationError(`Redis: ${what} replied ${typeof reply}, expected a string`);
}

function parse<T>(json: string, what: string): T {
  try {
    return JSON.parse(json) as T;
  } catch (error) {
    throw new InvariantViolationError(`Redis: ${what} replied malformed JSON`, { cause: error });
  }
}

/** The outcome a script replied for `command` (see lib.lua: A, R, X or C and a body). */
export function outcomeOf(command: Command, reply: unknown): StoreOutcome {
  const raw = text(reply, command.kind);
  const body = raw.slice(1);
  switch (raw[0]) {
    case 'A': {
      const outcome = parse<StoreOutcome & { levels: Applied['levels'] }>(body, command.kind);
      // Lua lists a sweep's SKUs as met; results list levels in JavaScript's string order.
      if (command.kind === 'sweep') outcome.levels.sort((a, b) => byCodeUnits(a.sku, b.sku));
      return outcome;
    }
    case 'R':
      return { ...parse<Applied>(body, command.kind), replayed: true };
    case 'X':
      return parse<StoreOutcome>(body, command.kind);
    case 'C': {
      const requestId = command.kind === 'commit' || command.kind === 'release' ? command.reservationId : command.kind === 'sweep' ? '' : command.requestId;
      return { ok: false, code: 'IDEMPOTENCY_CONFLICT', requestId, storedKind: body as OperationKind };
    }
    default:
      throw new InvariantViolationError(`Redis: ${command.kind} replied ${JSON.stringify(raw.slice(0, 40))}`);
  }
}

/** A stored request record: kind, at and fingerprint on their own lines, then the outcome. */
export function requestOf(requestId: string, reply: unknown): StoredRequest | null {
  const raw = text(reply, 'request');
  if (raw === '') return null;
  const a = raw.indexOf('\n');
  const b = raw.indexOf('\n', a + 1);
  const c = raw.indexOf('\n', b + 1);
  if (a < 0 || b < 0 || c < 0) throw new InvariantViolationError(`Redis: request ${JSON.stringify(requestId)} has a malformed record`);
  return {
    requestId, kind: raw.slice(0, a) as OperationKind, at: Number(raw.slice(a + 1, b)), fingerprint: raw.slice(b + 1, c),
    outcome: parse<Applied>(raw.slice(c + 1), 'request'),
  };
}

interface ReservationRecord {
  id: string; state: StoredReservation['state']; lines: Line[]; expiresAt: number; createdAt: number; committed?: Line[];
  meta?: string; holds: string[]; outcome?: string;
}

/** A stored reservation record (its meta and outcome are kept as JSON text). */
export function reservationOf(reply: unknown): StoredReservation | null {
  const raw = text(reply, 'reservation');
  if (raw === '') return null;
  const r = parse<ReservationRecord>(raw, 'reservation');
  const stored: StoredReservation = {
    id: r.id, state: r.state, lines: r.lines, expiresAt: r.expiresAt, createdAt: r.createdAt, committed: r.committed ?? null,
    holds: r.holds, outcome: r.outcome === undefined ? null : parse<Applied>(r.outcome, 'reservation'),
  };
  if (r.meta !== undefined) stored.meta = parse<JsonObject>(r.meta, 'reservation');
  return stored;
}

/** Entries as the read script replies them. */
export function entriesOf(reply: unknown): Entry[] {
  if (!Array.isArray(reply)) throw new InvariantViolationError('Redis: entries replied no array');
  return reply.map((item: unknown) => parse<Entry>(text(item, 'entries'), 'entries'));
}

/** Comma-separated integers, as the scripts write counters. */
export function integers(reply: unknown, count: number, what: string): number[] {
  const parts = text(reply, what).split(',').map(Number);
  if (parts.length !== count || parts.some((n) => !Number.isSafeInteger(n))) {
    throw new InvariantViolationError(`Redis: ${what} replied ${JSON.stringify(reply)}`);
  }
  return parts;
}
