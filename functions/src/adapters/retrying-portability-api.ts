/**
 * Bounded retries with backoff and full jitter around the Data Portability API, for the blips a
 * step should ride out in place (429, 503, a dropped connection) before it hands the failure to
 * Cloud Tasks' own, slower retry. A wait longer than `maxWaitMs` is not taken here: the error
 * goes up, and the task handler answers 503 with that Retry-After.
 *
 * `retry` is not idempotent (each call starts a new Google job), so it is repeated only on an
 * answer that says the request was not processed (429/503), never after a lost response.
 */
import { classifyApiError } from '../domain/api-error-classification';
import { PortabilityApiError } from '../domain/errors';
import type { PortabilityApi } from '../domain/ports/portability-api';
import { GOOGLE_CALL_RETRIES, type CallRetries } from '../domain/retry-policies';

export interface RetryPolicy extends CallRetries {
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

function notProcessed(err: unknown): boolean {
  return err instanceof PortabilityApiError && (err.httpStatus === 429 || err.httpStatus === 503);
}

export class RetryingPortabilityApi implements PortabilityApi {
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(
    private readonly inner: PortabilityApi,
    private readonly policy: RetryPolicy = GOOGLE_CALL_RETRIES,
  ) {
    this.sleep = policy.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = policy.random ?? Math.random;
  }

  private async attempt<T>(call: () => Promise<T>, idempotent: boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        const cls = classifyApiError(err);
        const retryable = cls.kind === 'transient' && (idempotent || notProcessed(err));
        if (!retryable || attempt >= this.policy.attempts) throw err;
        const hinted = cls.kind === 'transient' && cls.retryAfterSeconds !== undefined ? cls.retryAfterSeconds * 1000 : undefined;
        // Full jitter: a random wait up to the exponential bound spreads many workers' retries apart.
        const wait = hinted ?? Math.floor(this.random() * this.policy.baseMs * 2 ** (attempt - 1));
        if (wait > this.policy.maxWaitMs) throw err;
        await this.sleep(wait);
      }
    }
  }

  initiate(...args: Parameters<PortabilityApi['initiate']>) {
    // Idempotent in effect: a repeated initiate answers ALREADY_EXISTS with the running job's id.
    return this.attempt(() => this.inner.initiate(...args), true);
  }
  getState(...args: Parameters<PortabilityApi['getState']>) {
    return this.attempt(() => this.inner.getState(...args), true);
  }
  retry(...args: Parameters<PortabilityApi['retry']>) {
    return this.attempt(() => this.inner.retry(...args), false);
  }
  cancel(...args: Parameters<PortabilityApi['cancel']>) {
    return this.attempt(() => this.inner.cancel(...args), true);
  }
  resetAuthorization(...args: Parameters<PortabilityApi['resetAuthorization']>) {
    return this.attempt(() => this.inner.resetAuthorization(...args), true);
  }
  checkAccessType(...args: Parameters<PortabilityApi['checkAccessType']>) {
    return this.attempt(() => this.inner.checkAccessType(...args), true);
  }
}
