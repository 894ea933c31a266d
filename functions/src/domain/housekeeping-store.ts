/**
 * What the abuse limits and the deletion of a user's data need from persistence, beyond
 * ExportStore. Kept apart so that ExportStore's other implementers need not change.
 */
export interface HousekeepingStore {
  /**
   * The user's exports created at or after `since`, newest first, at most `limit` of them
   * (their `createdAt` only): enough to tell whether a daily limit is reached and when it frees.
   */
  exportCreationTimesSince(userId: string, since: number, limit: number): Promise<number[]>;
  /** How many of the user's exports are RUNNING. */
  countRunningExports(userId: string): Promise<number>;
  /** The export an Idempotency-Key already created for this user, if any (a replay is not a new export). */
  findIdempotentExport(userId: string, key: string): Promise<string | undefined>;
  /** Deletes an export's jobs, its idempotency records and the export itself. Idempotent. */
  deleteExportRecords(exportId: string): Promise<void>;
}

export function isHousekeepingStore(store: object): store is HousekeepingStore {
  const s = store as Partial<HousekeepingStore>;
  return (
    typeof s.exportCreationTimesSince === 'function' &&
    typeof s.countRunningExports === 'function' &&
    typeof s.findIdempotentExport === 'function' &&
    typeof s.deleteExportRecords === 'function'
  );
}
