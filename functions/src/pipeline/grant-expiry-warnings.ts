/**
 * Tells a person with time-based access (30 or 180 days) that it ends soon:
 * GRANT_EXPIRY_WARNING_DAYS before the grant's end, a `portability.authorization.expiring` event
 * with Google's renewal link, once per grant (the store's transaction takes the grant's `warnAt`
 * away with the event's write, so sweeps running at the same time give one warning). Run by the
 * sweeper.
 */
import { authorizationExpiringEvent, type PipelineEvent } from '../domain/events';
import type { GrantExpiryStore } from '../domain/ports/export-store';
import type { Logger } from '../logging';
import type { EventRelay } from './event-relay';
import { DAY_MS } from '../domain/durations';

const BATCH = 200;

/** When a grant ending at `expiresAt` is to be warned about (set on time-based grants when they are stored). */
export const warnAtOf = (expiresAt: number, warningDays: number): number => expiresAt - warningDays * DAY_MS;

export interface GrantExpiryWarningsDeps {
  store: GrantExpiryStore;
  /** Google's renewal page for this app (authorization-status.ts renewalUrlOf). */
  renewalUrl?: string;
  relay?: EventRelay;
  logger: Logger;
  now?: () => number;
}

export class GrantExpiryWarnings {
  constructor(private readonly deps: GrantExpiryWarningsDeps) {}

  /** Warns every grant due; returns how many warnings were written. */
  async run(): Promise<number> {
    const now = (this.deps.now ?? Date.now)();
    const due = await this.deps.store.grantsToWarn(now, BATCH);
    const written: PipelineEvent[] = [];
    for (const g of due) {
      const e = await this.deps.store.warnGrantExpiry(g.userId, now, (grant) => authorizationExpiringEvent(grant, now, this.deps.renewalUrl));
      if (e) written.push(e);
    }
    if (written.length > 0) this.deps.logger.info({ warnings: written.length }, 'time-based access ends soon: warnings written');
    if (this.deps.relay) await this.deps.relay.relay(written);
    return written.length;
  }
}
