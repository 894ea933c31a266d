/**
 * Tells apps what happened, at least once: the events a change wrote to the outbox in its own
 * transaction are published right after the commit and then removed; a publish that fails (or an
 * instance that dies first) leaves them in the outbox, and the sweeper publishes them later.
 */
import type { PipelineEvent } from '../domain/events';
import type { EventOutbox, EventPublisher } from '../domain/ports/event-publisher';
import type { Logger } from '../logging';

const BATCH = 200;

export interface EventRelayDeps {
  /** Made on first use: most requests end no job. */
  publisher: () => Promise<EventPublisher>;
  outbox: EventOutbox;
  logger: Logger;
}

export class EventRelay {
  constructor(private readonly deps: EventRelayDeps) {}

  /** After the commit that wrote them. Never throws: the change itself is done. */
  async relay(events: readonly PipelineEvent[]): Promise<void> {
    if (events.length === 0) return;
    try {
      await this.send(events);
    } catch (err) {
      this.deps.logger.warn({ err, events: events.map((e) => e.id) }, 'events not published yet; the sweeper publishes them from the outbox');
    }
  }

  /** The sweeper's part: publishes what was written at or before `before` and is still there. Returns how many. */
  async flush(before: number): Promise<number> {
    const pending = await this.deps.outbox.pending(before, BATCH);
    if (pending.length === 0) return 0;
    await this.send(pending);
    this.deps.logger.info({ events: pending.length }, 'published events left in the outbox');
    return pending.length;
  }

  private async send(events: readonly PipelineEvent[]): Promise<void> {
    await (await this.deps.publisher()).publish(events);
    await this.deps.outbox.remove(events.map((e) => e.id));
  }
}
