/**
 * Copying in parts through the whole local stack: with COPY_PARALLEL_MIN_BYTES below the simulated
 * archive's size, the copy function receives one 'copy-part' task per range from the Cloud Tasks
 * stand-in, then composes. One part task is lost and another delivered twice: the sweeper brings
 * the lost one back and the archive in the bucket is still byte for byte Google's.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, crc32cOfObject, objectNames, waitForExport, type ExportBody } from '../support/api-client';

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: 'demo-e2e-parallel-copy',
    jobDurationMs: 300,
    archiveBytes: 600_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    sweepGraceSeconds: 1,
    schedulerIntervalMs: 500,
    logLevel: 'silent',
    env: { COPY_PARALLEL_MIN_BYTES: '100000', COPY_PARALLEL_PARTS: '3', COPY_LEASE_SECONDS: '2' },
  });
});

afterAll(async () => {
  await stack?.stop();
});

describe('an export whose archive is above COPY_PARALLEL_MIN_BYTES', () => {
  it('is copied as part tasks, survives a lost and a duplicated part task, and matches the source', async () => {
    let partTasks = 0;
    stack.tasks.setDispatchFault((t) => {
      if (!t.name.includes('-copy-part-') || t.attempt > 1) return undefined;
      partTasks++;
      if (partTasks === 1) return 'drop';
      if (partTasks === 2) return 'duplicate';
      return undefined;
    });
    const { token } = await authorizedUser(stack, 'carol', ['myactivity.search']);
    const res = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    expect(res.status).toBe(202);
    const done = await waitForExport(stack, token, res.body.exportId, undefined, 30_000).catch((e: unknown) => {
      // What Cloud Tasks delivered, to see where it stopped.
      console.log(JSON.stringify(stack.tasks.deliveries.map((d) => [d.taskName.replace(/.*tasks\//, ''), d.status, d.outcome, d.error]), null, 0));
      throw e;
    });
    stack.tasks.setDispatchFault(undefined);
    expect(done.state).toBe('SUCCEEDED');

    const archives = done.jobs[0]?.archives ?? [];
    expect(archives).toHaveLength(1);
    const archive = archives[0] as { bucket: string; name: string; size: number; crc32c: string };
    expect(archive.size).toBeGreaterThan(100_000);
    const sources = stack.portability.jobs().flatMap((j) => j.archives ?? []);
    expect(sources.some((s) => s.crc32c === archive.crc32c && s.size === archive.size)).toBe(true);
    expect(await crc32cOfObject(stack, archive.bucket, archive.name)).toBe(archive.crc32c);
    // Only the archive is left: the parts were composed and deleted.
    expect(await objectNames(stack, `carol/${done.exportId}/`)).toEqual([archive.name]);

    const parts = stack.tasks.deliveries.filter((d) => d.taskName.includes('-copy-part-'));
    const answered = parts.filter((d) => d.status === 200).map((d) => d.taskName.replace(/.*\/tasks\/[0-9a-f]+-/, ''));
    // Three ranges of the first plan were sent (one lost), and the lost range came back under a sweeper redelivery name.
    expect(partTasks).toBeGreaterThanOrEqual(3);
    expect(answered.some((n) => /^copy-part-\d+-\d-r\d+$/.test(n))).toBe(true);
  });
});
