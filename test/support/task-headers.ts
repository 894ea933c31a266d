/** Reads what the Cloud Tasks stand-in (like Cloud Tasks) sets on a delivery: the tests check the headers the handlers see. */

export interface TaskHeaders {
  queueName?: string;
  taskName?: string;
  /** Earlier attempts of this task (0 on the first delivery). */
  retryCount: number;
  /** Earlier attempts that got a non-5xx response from the handler. */
  executionCount: number;
}

type HeaderSource = { get(name: string): string | null } | Record<string, string | string[] | undefined>;

/** Reads the X-CloudTasks-* headers from Node's `req.headers` (or a fetch `Headers`), case-insensitively. */
export function parseTaskHeaders(headers: HeaderSource): TaskHeaders {
  const read = (name: string): string | undefined => {
    if (typeof (headers as { get?: unknown }).get === 'function') {
      return (headers as { get(n: string): string | null }).get(name) ?? undefined;
    }
    const lower = name.toLowerCase();
    for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
      if (k.toLowerCase() === lower) return Array.isArray(v) ? v[0] : v;
    }
    return undefined;
  };
  const count = (name: string): number => {
    const n = Number(read(name));
    return Number.isInteger(n) && n >= 0 ? n : 0;
  };
  return {
    queueName: read('x-cloudtasks-queuename') || undefined,
    taskName: read('x-cloudtasks-taskname') || undefined,
    retryCount: count('x-cloudtasks-taskretrycount'),
    executionCount: count('x-cloudtasks-taskexecutioncount'),
  };
}
