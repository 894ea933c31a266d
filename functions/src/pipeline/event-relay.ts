/**
 * Tells apps what happened, at least once: the events a change wrote to the outbox in its own
 * transaction are published to the topic and handed to the webhook queue (one task per event and
 * endpoint) right after the commit, and removed only once both succeeded; a publish or an enqueue
 * that fails (or an instance that dies first) leaves them in the outbox, and the sweeper sends
 * them again later. Sending twice is harmless: subscribers and webhook receivers drop repeated
 * ids, and a repeated enqueue has the same task name.
 */
import type { PipelineEvent } from '../domain/events';
import type { EventOutbox, EventPublisher } from '../domain/ports/event-publisher';
import type { WebhookQueue } from '../domain/ports/webhooks';
import type { Logger } from '../logging';

const BATCH = 200;

export interface EventRelayDeps {
  /** Made on first use: most requests end no job. Unset: no topic. */
  publisher?: () => Promise<EventPublisher>;
  /** The configured webhook endpoints and their queue. Unset: no webhooks. */
  webhooks?: { endpointIds: readonly string[]; queue: () => Promise<WebhookQueue> };
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
      this.deps.logger.warn({ err, events: events.map((e) => e.id) }, 'events not sent yet; the sweeper sends them from the outbox');
    }
  }

  /** The sweeper's part: sends what was written at or before `before` and is still there. Returns how many. */
  async flush(before: number): Promise<number> {
    const pending = await this.deps.outbox.pending(before, BATCH);
    if (pending.length === 0) return 0;
    await this.send(pending);
    this.deps.logger.info({ events: pending.length }, 'sent events left in the outbox');
    return pending.length;
  }

  private async send(events: readonly PipelineEvent[]): Promise<void> {
    const { publisher, webhooks } = this.deps;
    await Promise.all([publisher ? publisher().then((p) => p.publish(events)) : undefined, webhooks ? this.enqueue(events, webhooks) : undefined]);
    await this.deps.outbox.remove(events.map((e) => e.id));
  }

  private async enqueue(events: readonly PipelineEvent[], webhooks: NonNullable<EventRelayDeps['webhooks']>): Promise<void> {
    if (webhooks.endpointIds.length === 0) return;
    const queue = await webhooks.queue();
    await Promise.all(events.flatMap((event) => webhooks.endpointIds.map((endpointId) => queue.enqueueDelivery({ endpointId, event }))));
  }
}
