/**
 * What users do while the chaos run's exports are in flight (test/chaos/chaos-run.ts): cancel an
 * export, delete it, reset their authorization, send a duplicate export or a duplicate schedule
 * in parallel with the first. The plan is fixed by the seed; the moment an action hits is "when a
 * job reached WAITING / COPYING" or a seeded delay, so which step it meets depends on scheduling,
 * and the audit's expectations follow what the answers say happened.
 */
import type { LocalStack } from '../../local-stack/local-stack';
import { api, type ApiAnswer, type ExportBody } from './api-client';

export type UserActionKind = 'cancel' | 'delete' | 'reset' | 'duplicate-export' | 'duplicate-schedule';
export const USER_ACTION_KINDS: UserActionKind[] = ['cancel', 'delete', 'reset', 'duplicate-export', 'duplicate-schedule'];

/** When the actions on one export are sent (all of them at once). */
export type ActionMoment = 'waiting' | 'copying' | 'delay';

export interface PlannedActions {
  /** cancel / delete / reset, sent together at `moment`. */
  kinds: Array<'cancel' | 'delete' | 'reset'>;
  moment: ActionMoment;
  delayMs: number;
  /** A second POST /v1/exports in parallel with the first (whole body or one of its groups). */
  duplicate?: 'same-body' | 'one-group';
  /** Google's jobs for this user take long, so a cancel or delete meets them IN_PROGRESS. */
  longJobs: boolean;
}

/**
 * The actions for one export, or none: decided by `chance(key)` (the seed's hash), so the same
 * seed picks the same victims whatever the order of events.
 */
export function planActions(chance: (key: string) => number, index: number, rate: number): PlannedActions | undefined {
  if (chance(`action/${index}`) >= rate) return undefined;
  const x = chance(`action-kind/${index}`);
  const single: Array<'cancel' | 'delete' | 'reset'> = ['cancel', 'delete', 'reset'];
  const kinds: PlannedActions['kinds'] = [];
  let duplicate: PlannedActions['duplicate'];
  if (x < 0.2) duplicate = chance(`action-dup/${index}`) < 0.5 ? 'same-body' : 'one-group';
  else kinds.push(single[Math.floor(((x - 0.2) / 0.8) * 3)] ?? 'cancel');
  // Several at once: a second action on the same export, sent in parallel with the first.
  if (chance(`action-second/${index}`) < 0.3) {
    const others = single.filter((k) => !kinds.includes(k));
    kinds.push(others[Math.floor(chance(`action-second-kind/${index}`) * others.length)] ?? 'reset');
  }
  const m = chance(`action-moment/${index}`);
  const moment: ActionMoment = m < 0.4 ? 'waiting' : m < 0.7 ? 'copying' : 'delay';
  const longJobs = moment !== 'copying' && (kinds.includes('cancel') || kinds.includes('delete')) && !kinds.includes('reset');
  // With long Google jobs a later moment still meets them running, and more likely past their initiate.
  const delayMs = Math.floor(chance(`action-delay/${index}`) * 1500) + (longJobs ? 2000 : 0);
  return { kinds, moment, delayMs, ...(duplicate ? { duplicate } : {}), longJobs };
}

/** How one action was answered (after retrying documented "try again" answers). */
export interface ActionAnswer {
  kind: UserActionKind;
  status: number;
  body: unknown;
  /** 503s with Retry-After answered on the way (documented: contention or Google unavailable). */
  unavailable: number;
}

export interface FiredActions {
  /** The export as GET showed it just before the actions were sent. */
  before?: ExportBody;
  answers: ActionAnswer[];
  /** The actions went out after the export had ended (the moment never came). */
  late: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends a request again while it answers 503 + Retry-After (and, for DELETE, 409 EXPORT_BUSY), within `budgetMs`. */
async function withRetries(kind: UserActionKind, send: () => Promise<ApiAnswer>, budgetMs = 30_000): Promise<ActionAnswer> {
  const deadline = Date.now() + budgetMs;
  let unavailable = 0;
  for (;;) {
    const res = await send();
    const busy = kind === 'delete' && res.status === 409 && JSON.stringify(res.body).includes('EXPORT_BUSY');
    const retryable = (res.status === 503 && res.headers.get('retry-after') !== null) || busy;
    if (res.status === 503) unavailable++;
    if (!retryable || Date.now() > deadline) return { kind, status: res.status, body: res.body, unavailable };
    await sleep(busy ? 200 : 300);
  }
}

/** Waits for the moment, then sends every planned action at once. */
export async function fireActions(stack: LocalStack, token: string, exportId: string, plan: PlannedActions, timeoutMs = 20_000): Promise<FiredActions> {
  const reached = (e: ExportBody): boolean => {
    if (e.state !== 'RUNNING') return true;
    if (plan.moment === 'waiting') return e.jobs.some((j) => j.state === 'WAITING');
    if (plan.moment === 'copying') return e.jobs.some((j) => j.state === 'COPYING');
    return true;
  };
  if (plan.moment === 'delay') await sleep(plan.delayMs);
  let before: ExportBody | undefined;
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(60)) {
    const res = await api<ExportBody>(stack, token, 'GET', `/v1/exports/${exportId}`);
    if (res.status !== 200) break;
    before = res.body;
    if (reached(res.body)) break;
  }
  const send: Record<'cancel' | 'delete' | 'reset', () => Promise<ApiAnswer>> = {
    cancel: () => api(stack, token, 'POST', `/v1/exports/${exportId}:cancel`),
    delete: () => api(stack, token, 'DELETE', `/v1/exports/${exportId}`),
    reset: () => api(stack, token, 'POST', '/v1/authorizations:reset'),
  };
  const answers = await Promise.all(plan.kinds.map((k) => withRetries(k, send[k])));
  return { ...(before ? { before } : {}), answers, late: before !== undefined && before.state !== 'RUNNING' };
}

/** Two identical POST /v1/schedules at once for a user with time-based access: exactly one 201, one 409 SCHEDULE_EXISTS. */
export async function duplicateSchedules(stack: LocalStack, token: string, resources: string[]): Promise<ActionAnswer[]> {
  return Promise.all([0, 1].map(() => withRetries('duplicate-schedule', () => api(stack, token, 'POST', '/v1/schedules', { resources }))));
}
