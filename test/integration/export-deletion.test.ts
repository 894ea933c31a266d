/**
 * DELETE of an export on the real Firestore store: another user's or a malformed id answers 404,
 * a running export is cancelled first, a copy in progress refuses with 409 and removes nothing, and
 * a deletion removes the archives' prefix, the jobs, the idempotency record and the export.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { RequestError } from '../../functions/src/domain/errors';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import { createLogger } from '../../functions/src/logging';
import { ExportDeletion } from '../../functions/src/pipeline/export-housekeeping';
import { refusalOf } from '../support/rejections';

const T0 = Date.UTC(2100, 0, 1);
let store: FirestoreExportStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-export-deletion' }));
});

const id = (): string => randomBytes(10).toString('hex');

/** An export of one job in `state`, created under an Idempotency-Key. */
async function exportIn(userId: string, state: Job['state']): Promise<{ exportId: string; jobId: string }> {
  const exportId = id();
  const job: Job = { ...newJob({ id: id(), exportId, userId, resource: 'chrome.history' }, T0), state };
  const exportState = state === 'SUCCEEDED' ? 'SUCCEEDED' : 'RUNNING';
  await store.createExport({ id: exportId, userId, state: exportState, resources: ['chrome.history'], createdAt: T0, updatedAt: T0 }, [job], { userId, key: `key-${exportId}` });
  return { exportId, jobId: job.id };
}

function deletion(cancel: (userId: string, exportId: string) => Promise<unknown> = async () => {
  throw new Error('cancel must not be called');
}) {
  const prefixes: string[] = [];
  const cancels: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const archives = async () => ({ deletePrefix: async (prefix: string) => (prefixes.push(prefix), 3) });
  const logger = createLogger({ level: 'info', destination: { write: (l: string) => (logs.push(JSON.parse(l) as Record<string, unknown>), true) } });
  const del = new ExportDeletion({
    store,
    archives,
    cancel: async (userId, exportId) => {
      cancels.push(exportId);
      return cancel(userId, exportId);
    },
    logger,
  });
  return { del, prefixes, cancels, logs };
}

describe('deleting an export', () => {
  it('removes a finished export\'s archives, jobs, idempotency record and the export, without cancelling anything', async () => {
    const { exportId, jobId } = await exportIn('del-user', 'SUCCEEDED');
    const d = deletion();
    await d.del.delete('del-user', exportId);
    expect(d.prefixes).toEqual([`del-user/${exportId}/`]);
    expect(d.cancels).toEqual([]);
    expect(await store.getExport(exportId)).toBeUndefined();
    expect(await store.getJob(jobId)).toBeUndefined();
    // The key is free again: the same key creates a new export.
    const again = await store.createExport({ id: id(), userId: 'del-user', state: 'RUNNING', resources: ['chrome.history'], createdAt: T0, updatedAt: T0 }, [], { userId: 'del-user', key: `key-${exportId}` });
    expect(again.created).toBe(true);
    expect(d.logs).toMatchObject([{ message: 'export deleted', userId: 'del-user', exportId, objects: 3 }]);
  });

  it('cancels a running export first, then deletes it once its jobs have ended', async () => {
    const { exportId, jobId } = await exportIn('del-user', 'INITIATING');
    const d = deletion(async () => store.updateJob(jobId, (j) => ({ ...j, state: 'CANCELLED', seq: j.seq + 1, finishedAt: T0 })));
    await d.del.delete('del-user', exportId);
    expect(d.cancels).toEqual([exportId]);
    expect(await store.getExport(exportId)).toBeUndefined();
  });

  it('refuses with 409 while a copy is writing, removing nothing', async () => {
    const { exportId, jobId } = await exportIn('del-user', 'COPYING');
    const d = deletion(async () => undefined);
    expect(await refusalOf(d.del.delete('del-user', exportId))).toMatchObject({
      status: 409,
      code: 'EXPORT_BUSY',
      message: 'A copy into the bucket is in progress; delete the export again when it has finished',
    });
    expect(d.prefixes).toEqual([]);
    expect((await store.getJob(jobId))?.state).toBe('COPYING');
    expect(await store.getExport(exportId)).toBeDefined();
  });

  it('answers another user\'s export, a missing one and an id that is no export id (even a path) with 404', async () => {
    const { exportId } = await exportIn('del-owner', 'SUCCEEDED');
    const d = deletion();
    for (const [user, target] of [
      ['del-other', exportId],
      ['del-owner', id()],
      ['del-owner', `${exportId}/jobs`],
      ['del-owner', 'x/y'],
    ] as const) {
      expect(await refusalOf(d.del.delete(user, target))).toMatchObject({ status: 404, message: 'Export not found' });
    }
    expect(d.prefixes).toEqual([]);
    expect(await store.getExport(exportId)).toBeDefined();
  });

  it('stops when the cancel is refused for any reason but the export having finished', async () => {
    const { exportId } = await exportIn('del-user', 'INITIATING');
    const d = deletion(async () => {
      throw new RequestError(409, 'EXPORT_CONFLICT', 'refused');
    });
    await expect(d.del.delete('del-user', exportId)).rejects.toMatchObject({ code: 'EXPORT_CONFLICT' });
    expect(d.prefixes).toEqual([]);
    expect(await store.getExport(exportId)).toBeDefined();
  });
});
