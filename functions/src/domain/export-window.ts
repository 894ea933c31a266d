/**
 * The time window of an export (`startTime`/`endTime`, strict RFC 3339 already): Google archives
 * what happened in it, so it must lie in the past and not be empty. An open end means "until now".
 */
export function exportWindowProblem(w: { startTime?: string; endTime?: string }, now: number): { field: 'startTime' | 'endTime'; message: string } | undefined {
  const start = w.startTime === undefined ? undefined : Date.parse(w.startTime);
  const end = w.endTime === undefined ? undefined : Date.parse(w.endTime);
  if (end !== undefined && end > now) return { field: 'endTime', message: 'endTime must not be in the future' };
  if (start !== undefined && end !== undefined && start >= end) return { field: 'startTime', message: 'startTime must be before endTime' };
  if (start !== undefined && start >= now) return { field: 'startTime', message: 'startTime must be in the past' };
  return undefined;
}
