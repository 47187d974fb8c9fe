/**
 * The figures of one `npm run bench` run, and the targets of the issues checked against them
 * as ratios from that same run.
 */
import { NAMES, type Group } from './contenders.js';
import type { Measurement } from './load.js';

export interface ResultRow {
  workload: string;
  contender: string;
  group: Group;
  baseline: string | undefined;
  /** Units the hot SKU started with; null for a workload where stock never runs short. */
  hotUnits: number | null;
  measurement: Measurement;
}

export class Results {
  readonly rows: ResultRow[] = [];

  add(row: ResultRow): void {
    this.rows.push(row);
  }

  find(workload: string, contender: string, inFlight: number): ResultRow | undefined {
    return this.rows.find((r) => r.workload === workload && r.contender === contender && r.measurement.inFlight === inFlight);
  }

  /** ops/s of this row over its baseline's at the same workload and in-flight count. */
  vsBaseline(row: ResultRow): number | null {
    if (row.baseline === undefined) return null;
    const base = this.find(row.workload, row.baseline, row.measurement.inFlight);
    return base === undefined ? null : row.measurement.opsPerSecond / base.measurement.opsPerSecond;
  }
}

export interface TargetCheck {
  target: string;
  workload: string;
  /** The measured ratio, or null when a side was not measured. */
  value: number | null;
  met: boolean | null;
}

/** The in-flight count every target is stated at. */
export const TARGET_IN_FLIGHT = 64;
const TAIL_RATIO_MAX = 3;

/** The PostgreSQL targets are stated for these workloads only. */
const PG_WORKLOADS = { spread: ['10k SKUs'], hotStocked: ['hot SKU, stocked'] } as const;
/** The workloads the other targets are stated for; carts and checkout report ratios only. */
const TARGET_WORKLOADS = ['10k SKUs', 'hot SKU'] as const;

const RATIO_TARGETS: ReadonlyArray<{ contender: string; against: string; min: number; workloads?: readonly string[] }> = [
  { contender: NAMES.sqliteStore, against: NAMES.rawSqlite, min: 25, workloads: TARGET_WORKLOADS },
  { contender: NAMES.sqliteStore, against: NAMES.rawSqliteBatch, min: 0.7, workloads: TARGET_WORKLOADS },
  { contender: NAMES.redisStore, against: NAMES.rawRedis, min: 2, workloads: TARGET_WORKLOADS },
  { contender: NAMES.redisStoreUnbatched, against: NAMES.rawRedis, min: 0.8, workloads: TARGET_WORKLOADS },
  { contender: NAMES.postgresStore, against: NAMES.rawPostgres, min: 2, workloads: PG_WORKLOADS.spread },
  { contender: NAMES.postgresStore, against: NAMES.rawPostgres, min: 5, workloads: PG_WORKLOADS.hotStocked },
];

const STORES = [NAMES.memoryStore, NAMES.sqliteStore, NAMES.redisStore, NAMES.redisStoreUnbatched, NAMES.postgresStore] as const;

function ratioChecks(results: Results, workload: string): TargetCheck[] {
  return RATIO_TARGETS.filter((t) => t.workloads === undefined || t.workloads.includes(workload)).map(({ contender, against, min }) => {
    const store = results.find(workload, contender, TARGET_IN_FLIGHT);
    const base = results.find(workload, against, TARGET_IN_FLIGHT);
    const value = store && base ? store.measurement.opsPerSecond / base.measurement.opsPerSecond : null;
    return { target: `${contender} >= ${min}x ${against}`, workload, value, met: value === null ? null : value >= min };
  });
}

function tailChecks(results: Results, workload: string): TargetCheck[] {
  const stores = PG_WORKLOADS.hotStocked.some((w) => w === workload) ? [NAMES.postgresStore] : TARGET_WORKLOADS.some((w) => w === workload) ? STORES : [];
  return stores.map((contender) => {
    const row = results.find(workload, contender, TARGET_IN_FLIGHT);
    const value = row ? row.measurement.p99Ms / row.measurement.p50Ms : null;
    return { target: `${contender}: p99 <= ${TAIL_RATIO_MAX}x p50`, workload, value, met: value === null ? null : value <= TAIL_RATIO_MAX };
  });
}

/** Every target, on every workload of the run, at {@link TARGET_IN_FLIGHT} in flight. */
export function checkTargets(results: Results, workloads: readonly string[]): TargetCheck[] {
  return workloads.flatMap((workload) => [...ratioChecks(results, workload), ...tailChecks(results, workload)]);
}
