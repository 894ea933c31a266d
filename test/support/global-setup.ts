/**
 * Vitest global setup: one Firestore and one Pub/Sub emulator for the whole run. Each test file uses its own
 * `demo-…` project id, so files never see each other's data and no test can reach a real project.
 */
import type { TestProject } from 'vitest/node';
import { startFirestoreEmulator, type FirestoreEmulator } from '../../local-stack/firestore-emulator';
import { startPubSubEmulator, type PubSubEmulator } from '../../local-stack/pubsub-emulator';

let emulator: FirestoreEmulator | undefined;
let pubsub: PubSubEmulator | undefined;

export async function setup(project: TestProject): Promise<void> {
  [emulator, pubsub] = await Promise.all([startFirestoreEmulator(), startPubSubEmulator()]);
  project.provide('firestoreEmulatorHost', emulator.host);
  project.provide('pubsubEmulatorHost', pubsub.host);
}

export async function teardown(): Promise<void> {
  await Promise.all([emulator?.stop(), pubsub?.stop()]);
}

declare module 'vitest' {
  export interface ProvidedContext {
    firestoreEmulatorHost: string;
    pubsubEmulatorHost: string;
  }
}
