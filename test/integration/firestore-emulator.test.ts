import { Firestore } from '@google-cloud/firestore';
import { describe, expect, inject, it } from 'vitest';

describe('the Firestore emulator started by the global setup', () => {
  it('stores and reads a document through the real client', async () => {
    process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
    const db = new Firestore({ projectId: 'demo-emulator-smoke' });
    await db.doc('smoke/one').set({ n: 1 });
    expect((await db.doc('smoke/one').get()).data()).toEqual({ n: 1 });
    await db.terminate();
  });
});
