/** An export's state follows from its jobs' states. */
import { isTerminal } from './job';
import type { ExportState, JobState } from './model';

export function deriveExportState(jobStates: readonly JobState[]): ExportState {
  if (jobStates.length === 0 || jobStates.some((s) => !isTerminal(s))) return 'RUNNING';
  const succeeded = jobStates.filter((s) => s === 'SUCCEEDED').length;
  if (succeeded === jobStates.length) return 'SUCCEEDED';
  if (succeeded > 0) return 'PARTIAL';
  return jobStates.every((s) => s === 'CANCELLED') ? 'CANCELLED' : 'FAILED';
}
