/**
 * The transactional outbox of events (`outbox/{id}`): an event is written in the same transaction
 * as the change it reports, published after the commit, and removed once the topic took it. What
 * a crashed or failed publish left behind is published by the sweeper. Document ids are derived
 * from the event's stable id, so writing the same event twice keeps one.
 */
import type { Firestore, Transaction } from '@google-cloud/firestore';
import type { PipelineEvent } from '../domain/events';
import type { EventOutbox } from '../domain/ports/event-publisher';
import { runQuery, type QuerySpec } from './firestore-client';

interface OutboxDoc {
  event: PipelineEvent;
  /** epoch ms */
  createdAt: number;
}

const docId = (eventId: string): string => eventId.replaceAll('/', ':');

export const outboxQueries = {
  pending: (before: number, limit: number): QuerySpec => ({ collection: 'outbox', where: [['createdAt', '<=', before]], orderBy: [['createdAt', 'asc']], limit }),
};

/** Inside the transaction that makes the change: the events it reports. */
export function writeOutbox(db: Firestore, tx: Transaction, events: readonly PipelineEvent[], now: number): void {
  for (const event of events) tx.set(db.doc(`outbox/${docId(event.id)}`), { event, createdAt: now } satisfies OutboxDoc);
}

export class FirestoreEventOutbox implements EventOutbox {
  constructor(private readonly db: Firestore) {}

  async pending(before: number, limit: number): Promise<PipelineEvent[]> {
    return (await runQuery<OutboxDoc>(this.db, outboxQueries.pending(before, limit))).map((d) => d.data.event);
  }

  async remove(eventIds: readonly string[]): Promise<void> {
    if (eventIds.length === 0) return;
    const batch = this.db.batch();
    for (const id of eventIds) batch.delete(this.db.doc(`outbox/${docId(id)}`));
    await batch.commit();
  }
}
