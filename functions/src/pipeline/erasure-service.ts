/**
 * The public API's side of erasure, for one verified caller: `DELETE /v1/me` marks the erasure
 * (or joins the one running) and enqueues its work; `GET /v1/me/erasure` reads its status. The
 * status is found by the caller's own hashed id: no request names another user's.
 */
import { toErasureView, type ErasureView } from '../domain/erasure';
import { notFound } from '../domain/errors';
import type { ErasureStore } from '../domain/ports/erasure-store';
import type { ErasureQueue } from '../domain/ports/task-queues';
import type { Logger } from '../logging';

export interface ErasureServiceDeps {
  erasures: ErasureStore;
  queue: () => Promise<ErasureQueue>;
  /** userDocId: the erasure's key. */
  userKey: (userId: string) => string;
  logger: Logger;
  now: () => number;
}

export class ErasureService {
  constructor(private readonly deps: ErasureServiceDeps) {}

  async request(userId: string): Promise<ErasureView> {
    const now = this.deps.now();
    const userKey = this.deps.userKey(userId);
    const { record, started } = await this.deps.erasures.begin(userId, now, now);
    try {
      // Also when joining: a lost first enqueue is repaired; a duplicate has the same name.
      await (await this.deps.queue()).enqueueErasure({ userKey, run: record.run, delaySeconds: 0 });
    } catch (err) {
      // The erasure is marked and due now: the sweeper enqueues it after its grace period.
      this.deps.logger.warn({ userKey, err }, 'could not enqueue the erasure; the sweeper will');
    }
    if (started) this.deps.logger.info({ userKey, run: record.run }, 'erasure requested');
    return toErasureView(record);
  }

  async status(userId: string): Promise<ErasureView> {
    const record = await this.deps.erasures.get(this.deps.userKey(userId));
    if (!record) throw notFound('Erasure');
    return toErasureView(record);
  }
}
