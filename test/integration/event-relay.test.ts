/**
 * The event relay's own rules on the Firestore emulator's outbox: a publish that fails after the
 * commit never fails the change (the events stay, and the operator is told which); the sweeper's
 * flush sends what is left and says how many, and with nothing left sends and says nothing.
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreEventOutbox, writeOutbox } from '../../functions/src/adapters/firestore-outbox';
import type { PipelineEvent } from '../../functions/src/domain/events';
import { createLogger } from '../../functions/src/logging';
import { EventRelay } from '../../functions/src/pipeline/event-relay';

let db: Firestore;
let outbox: FirestoreEventOutbox;

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-event-relay' });
  outbox = new FirestoreEventOutbox(db);
  // This file's project only: what an earlier run of it left (the emulator outlives a run) goes first.
  await db.recursiveDelete(db.collection('outbox'));
});

afterAll(async () => {
  await db?.terminate();
});

const event = (): PipelineEvent => {
  const exportId = randomBytes(8).toString('hex');
  return { id: `export/${exportId}/SUCCEEDED`, type: 'portability.export.finished', source: `exports/${exportId}`, time: new Date().toISOString(), attributes: { type: 'portability.export.finished', userIdHash: 'h', exportId }, data: { exportId } as unknown as PipelineEvent['data'] };
};

function relayWith(publish: (events: readonly PipelineEvent[]) => Promise<void>) {
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'info', destination: { write: (l: string) => (logs.push(JSON.parse(l) as Record<string, unknown>), true) } });
  const published: PipelineEvent[][] = [];
  let made = 0;
  const relay = new EventRelay({
    publisher: async () => {
      made++;
      return { publish: async (events) => (await publish(events), void published.push([...events])) };
    },
    outbox,
    logger,
  });
  return { relay, logs, published, made: () => made };
}

const inOutbox = async (ids: string[]): Promise<string[]> => (await outbox.pending(Date.now() + 60_000, 500)).map((e) => e.id).filter((id) => ids.includes(id));

describe('the event relay', () => {
  it('never fails the change when the publish fails: the events stay, and the warning names them', async () => {
    const events = [event(), event()];
    await db.runTransaction(async (tx) => writeOutbox(db, tx, events, Date.now()));
    const { relay, logs } = relayWith(async () => Promise.reject(new Error('Pub/Sub unavailable')));
    await expect(relay.relay(events)).resolves.toBeUndefined();
    expect(await inOutbox(events.map((e) => e.id))).toEqual(events.map((e) => e.id).sort());
    expect(logs).toEqual([expect.objectContaining({ severity: 'WARNING', message: 'events not sent yet; the sweeper sends them from the outbox', events: events.map((e) => e.id) })]);
    expect(JSON.stringify(logs)).toContain('Pub/Sub unavailable');
  });

  it('relays nothing for a change that wrote no event: no publisher made', async () => {
    const { relay, logs, made } = relayWith(async () => undefined);
    await relay.relay([]);
    expect(made()).toBe(0);
    expect(logs).toEqual([]);
  });

  it('the sweeper\'s flush sends what is left and says how many; with nothing left it sends and says nothing', async () => {
    const events = [event(), event(), event()];
    const at = Date.UTC(2000, 0, 1);
    await db.runTransaction(async (tx) => writeOutbox(db, tx, events, at));
    const { relay, logs, published, made } = relayWith(async () => undefined);
    // Written before 2000-01-01 00:00:01: only these (other tests' events are newer).
    expect(await relay.flush(at + 1000)).toBe(3);
    expect(published.flat().map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    expect(await inOutbox(events.map((e) => e.id))).toEqual([]);
    expect(logs).toEqual([expect.objectContaining({ severity: 'INFO', message: 'sent events left in the outbox', events: 3 })]);
    expect(await relay.flush(at + 1000)).toBe(0);
    expect(made()).toBe(1);
    expect(logs).toHaveLength(1);
  });
});
