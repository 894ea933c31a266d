/**
 * When to check an archive job again. Google asks for checks every 5 to 60 minutes. We wait in
 * proportion to how long the job has already run (a fifth of it), bounded by those limits: short
 * jobs are noticed within minutes, a three-day job costs a few dozen calls, and the delay between
 * the archive becoming ready and our noticing it stays within about 20% of the job's duration.
 */
export interface PollingPolicy {
  initialSeconds: number;
  maxSeconds: number;
  /** Fraction of the time already waited that the next delay may be. */
  proportion?: number;
  /** How long a copy may hold a job before it counts as lost (then the sweeper re-enqueues it). */
  copyLeaseSeconds?: number;
}

export const DEFAULT_COPY_LEASE_SECONDS = 2100;

export const DEFAULT_PROPORTION = 0.2;

export function nextCheckDelaySeconds(policy: PollingPolicy, state: { checks: number; waitedSeconds: number }): number {
  const proportional = Math.max(0, state.waitedSeconds) * (policy.proportion ?? DEFAULT_PROPORTION);
  return Math.round(Math.min(policy.maxSeconds, Math.max(policy.initialSeconds, proportional)));
}
