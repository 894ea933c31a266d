/**
 * The chaos run, small: 30 exports through the local stack under every kind of injected fault,
 * some cancelled, deleted, reset or duplicated by their users in flight, a quarter of the events' first publishes refused, then the audit (test/chaos/chaos-run.ts). The full run is `npm run chaos`.
 */
import { describe, expect, inject, it } from 'vitest';
import { formatChaosReport, runChaos, type FaultKind } from '../chaos/chaos-run';
import { USER_ACTION_KINDS } from '../support/chaos-user-actions';

describe('the pipeline under injected faults', () => {
  it('ends every export in the right state with every archive copied once, verified, nothing left over', async () => {
    const report = await runChaos({ exports: 30, seed: 7, firestoreEmulatorHost: inject('firestoreEmulatorHost'), pubsubEmulatorHost: inject('pubsubEmulatorHost'), projectId: 'demo-chaos-e2e', timeoutMs: 100_000 });
    // The table in the failure message says what went wrong.
    expect(report.problems, formatChaosReport(report)).toEqual([]);
    // Every kind of fault really happened in this run (a run without faults would prove nothing).
    const kinds: FaultKind[] = [
      'task-dropped',
      'task-duplicated',
      'task-duplicated-late',
      'copy-killed',
      'url-expired-mid-stream',
      'api-429',
      'api-500',
      'archive-failed-recoverable',
      'archive-failed-unrecoverable',
      'multi-url-job',
      'publish-failed',
    ];
    expect(report.events.wanted).toBeGreaterThan(30);
    for (const k of kinds) expect(report.faultsInjected[k], k).toBeGreaterThan(0);
    expect(report.expected.unrecoverableExports).toBeGreaterThan(0);
    expect(report.untouched.succeeded).toBe(report.expected.recoverableExports);
    expect(report.untouched.archiveFailedJobs).toBe(report.expected.unrecoverableJobs);
    // Users acted on exports in flight, every kind of action at least once (the audit checked what each allows).
    for (const k of USER_ACTION_KINDS) expect(report.actions.injected[k], k).toBeGreaterThan(0);
    expect(report.jobErrors.TIME_BASED_COOLDOWN ?? 0).toBe(0);
    expect(report.sweeps.requeued).toBeGreaterThan(0);
    expect(report.tasksLeft).toBe(0);
  }, 150_000); // about 35 s on a quiet machine; a busy one took over a minute

  it('catches lost tasks: without the sweeper, dropped deliveries leave exports running and the audit fails', async () => {
    const none = { userActions: 0, duplicateSchedules: 0, duplicateTask: 0, killCopy: 0, expireUrl: 0, failJobRecoverable: 0, failJobUnrecoverable: 0, apiBurstsPerExport: 0 };
    const report = await runChaos({
      exports: 4,
      seed: 11,
      firestoreEmulatorHost: inject('firestoreEmulatorHost'),
      pubsubEmulatorHost: inject('pubsubEmulatorHost'),
      projectId: 'demo-chaos-e2e-nosweep',
      rates: { ...none, dropTask: 1 },
      sweepIntervalMs: 0,
      timeoutMs: 6_000,
    });
    expect(report.ok).toBe(false);
    expect(report.faultsInjected['task-dropped']).toBeGreaterThan(0);
    expect(report.problems.map((p) => p.check)).toContain('terminal states');
    expect(report.stuck).toHaveLength(4);
  });
});
