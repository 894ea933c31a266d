/**
 * Publishes pipeline events to a Pub/Sub topic in the CloudEvents Pub/Sub binding's binary mode:
 * the event's data is the message body (JSON), its context attributes are `ce-*` message
 * attributes, and `type`, `userIdHash`, `exportId` and `state` are attributes too, for
 * subscription filters.
 */
import type { PubSub, Topic } from '@google-cloud/pubsub';
import type { PipelineEvent } from '../domain/events';
import type { EventPublisher } from '../domain/ports/event-publisher';

export function pubsubAttributes(e: PipelineEvent): Record<string, string> {
  return {
    'ce-specversion': '1.0',
    'ce-id': e.id,
    'ce-type': e.type,
    'ce-source': e.source,
    'ce-time': e.time,
    ...(e.subject ? { 'ce-subject': e.subject } : {}),
    'content-type': 'application/json',
    ...Object.fromEntries(Object.entries(e.attributes).filter((kv): kv is [string, string] => kv[1] !== undefined)),
  };
}

export class PubSubEventPublisher implements EventPublisher {
  private readonly topic: Topic;

  constructor(pubsub: PubSub, topicName: string) {
    this.topic = pubsub.topic(topicName);
  }

  async publish(events: readonly PipelineEvent[]): Promise<void> {
    await Promise.all(events.map((e) => this.topic.publishMessage({ data: Buffer.from(JSON.stringify(e.data)), attributes: pubsubAttributes(e) })));
  }
}
