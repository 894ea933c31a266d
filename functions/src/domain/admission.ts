/**
 * Who may start what, decided in the same transaction that creates it. Each user has one ledger
 * document: the exports they started in the last 24 hours, the exports that may still be running,
 * which export holds each resource group, and the schedules that may still be active. The store
 * reads the ledger and the current state of what it names, these pure functions decide, and the
 * store writes the new ledger with the export or schedule — so the same requests sent one by one
 * or all at once end the same way.
 */
import { conflict, RequestError } from './errors';
import { DAY_MS } from './durations';

export interface UserLedger {
  /** Creation times (epoch ms) of the user's own exports within the last 24 hours, oldest first. */
  recent: number[];
  /** The user's own exports that were RUNNING when last seen. */
  running: string[];
  /** Per resource group: the export and job that were exporting it when last seen. */
  groups: Record<string, { exportId: string; jobId: string }>;
  /** Schedules that were ACTIVE when last seen. */
  schedules: string[];
}

export const emptyLedger = (): UserLedger => ({ recent: [], running: [], groups: {}, schedules: [] });

export interface ExportLimits {
  exportsPerDay: number;
  concurrentExports: number;
}

/**
 * How an export is admitted. The user's own exports (`limits` set) count against the daily and
 * concurrent limits; a schedule's runs do not (their pace is the schedule's, at least a day apart),
 * but every export holds its groups while their jobs run.
 */
export interface ExportAdmission {
  limits?: ExportLimits;
}

export interface ExportRequest {
  exportId: string;
  jobs: Array<{ resource: string; jobId: string }>;
  now: number;
}

/** What the store read, inside the transaction, of what the ledger names. */
export interface LedgerFacts {
  /** Of `ledger.running`: the exports still RUNNING. */
  runningExports: ReadonlySet<string>;
  /** Of the jobs in `ledger.groups`: those not yet terminal. */
  liveJobs: ReadonlySet<string>;
}

/** Refuses (RequestError) or returns the ledger to write with the new export. */
export function admitExport(ledger: UserLedger, facts: LedgerFacts, request: ExportRequest, admission: ExportAdmission): UserLedger {
  const { now } = request;
  const groups = Object.fromEntries(Object.entries(ledger.groups).filter(([, holder]) => facts.liveJobs.has(holder.jobId)));
  const busy = request.jobs.filter((j) => groups[j.resource] !== undefined);
  if (busy.length > 0) {
    const holders = [...new Set(busy.map((j) => groups[j.resource]?.exportId))].join(', ');
    throw conflict(
      'RESOURCE_GROUP_BUSY',
      `Already being exported by export ${holders}: ${busy.map((j) => j.resource).join(', ')}. Wait until it ends or cancel it`,
    );
  }
  const running = ledger.running.filter((id) => facts.runningExports.has(id));
  const recent = ledger.recent.filter((t) => t > now - DAY_MS);
  const limits = admission.limits;
  if (limits) {
    if (recent.length >= limits.exportsPerDay) {
      // The newest `exportsPerDay` fill the window: a slot frees when the oldest of them leaves it.
      const oldest = recent[recent.length - limits.exportsPerDay] ?? now;
      const retryAfter = Math.max(1, Math.ceil((oldest + DAY_MS - now) / 1000));
      throw new RequestError(429, 'DAILY_EXPORT_LIMIT', `At most ${limits.exportsPerDay} exports may be started in 24 hours`, undefined, retryAfter);
    }
    if (running.length >= limits.concurrentExports) {
      // When a running export ends cannot be known; polling once a minute is a fair suggestion.
      throw new RequestError(429, 'CONCURRENT_EXPORT_LIMIT', `At most ${limits.concurrentExports} exports may run at once`, undefined, 60);
    }
  }
  for (const j of request.jobs) groups[j.resource] = { exportId: request.exportId, jobId: j.jobId };
  return {
    ...ledger,
    recent: limits ? [...recent, now] : recent,
    running: limits ? [...running, request.exportId] : running,
    groups,
  };
}

export interface ScheduleRequest {
  scheduleId: string;
  resources: string[];
  maxActive: number;
}

/**
 * One active schedule per resource group (two would collide on Google's one export per group per
 * 24 hours) and at most `maxActive` active schedules per user. `active` maps each schedule of
 * `ledger.schedules` still ACTIVE to its groups.
 */
export function admitSchedule(ledger: UserLedger, active: ReadonlyMap<string, string[]>, request: ScheduleRequest): UserLedger {
  const schedules = ledger.schedules.filter((id) => active.has(id));
  const taken = request.resources.filter((r) => schedules.some((id) => active.get(id)?.includes(r)));
  if (taken.length > 0) throw conflict('SCHEDULE_EXISTS', `Already on an active schedule: ${taken.join(', ')}. Delete that schedule first`);
  if (schedules.length >= request.maxActive) throw conflict('TOO_MANY_SCHEDULES', `At most ${request.maxActive} active schedules per user`);
  return { ...ledger, schedules: [...schedules, request.scheduleId] };
}
