/** ExportDeletion's decisions with a store in memory: the race between a DELETE and the export's own end. */
import { describe, expect, it } from 'vitest';
import { conflict } from '../../functions/src/domain/errors';
import type { ExportRecord } from '../../functions/src/domain/model';
import { createLogger } from '../../functions/src/logging';
import { ExportDeletion, type ExportDeletionDeps } from '../../functions/src/pipeline/export-housekeeping';

const EXPORT_ID = '0123456789abcdef0123';

function deletion(cancel: ExportDeletionDeps['cancel']): { del: ExportDeletion; removed: string[] } {
  const removed: string[] = [];
  const record = { id: EXPORT_ID, userId: 'u1', state: 'RUNNING', resources: ['chrome.history'], createdAt: 0, updatedAt: 0 } as ExportRecord;
  const store = {
    getExport: async () => record,
    listJobs: async () => [],
    deleteExportRecords: async (id: string) => void removed.push(`records:${id}`),
  } as unknown as ExportDeletionDeps['store'];
  const archives = async () => ({ deletePrefix: async (p: string) => (removed.push(`objects:${p}`), 0) });
  return { del: new ExportDeletion({ store, archives, cancel, logger: createLogger({ level: 'silent' }) }), removed };
}

describe('DELETE of an export that ends meanwhile', () => {
  it('deletes it: the cancel finding it finished (EXPORT_FINISHED) is not an error', async () => {
    const { del, removed } = deletion(async () => {
      throw conflict('EXPORT_FINISHED', 'The export already ended as SUCCEEDED');
    });
    await del.delete('u1', EXPORT_ID);
    expect(removed).toEqual([`objects:u1/${EXPORT_ID}/`, `records:${EXPORT_ID}`]);
  });

  it('any other failure of the cancel stops the deletion', async () => {
    const { del, removed } = deletion(async () => {
      throw new Error('Google did not answer');
    });
    await expect(del.delete('u1', EXPORT_ID)).rejects.toThrow('Google did not answer');
    expect(removed).toEqual([]);
  });
});
