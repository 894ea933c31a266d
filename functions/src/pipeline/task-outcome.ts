/** What a pipeline step answers the task handler, which maps it for Cloud Tasks: done or dropped (2xx), throttle (503 + Retry-After), retry (500). */
export type TaskOutcome =
  | { kind: 'done'; detail: string }
  | { kind: 'dropped'; detail: string }
  | { kind: 'throttle'; detail: string; retryAfterSeconds: number }
  | { kind: 'retry'; detail: string };
