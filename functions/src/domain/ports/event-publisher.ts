/** The seam to where apps are told what happened (a Pub/Sub topic). */
import type { PipelineEvent } from '../events';

export interface EventPublisher {
  /** Resolves once every event is accepted by the topic; rejects if any is not (the outbox keeps it). */
  publish(events: readonly PipelineEvent[]): Promise<void>;
}

/** Events written with the changes they report, until the topic took them. */
export interface EventOutbox {
  /** Events written at or before `before` (epoch ms), oldest first. */
  pending(before: number, limit: number): Promise<PipelineEvent[]>;
  remove(eventIds: readonly string[]): Promise<void>;
}
