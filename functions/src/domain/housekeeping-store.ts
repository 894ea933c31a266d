/**
 * What the deletion of a user's data needs from persistence, beyond ExportStore. Kept apart so
 * that ExportStore's other implementers need not change.
 */
export interface HousekeepingStore {
  /** Deletes an export's jobs, its idempotency records and the export itself. Idempotent. */
  deleteExportRecords(exportId: string): Promise<void>;
}

export function isHousekeepingStore(store: object): store is HousekeepingStore {
  const s = store as Partial<HousekeepingStore>;
  return typeof s.deleteExportRecords === 'function';
}
