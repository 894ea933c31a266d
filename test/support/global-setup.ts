/**
 * Vitest global setup: one Firestore emulator for the whole run. Each test file uses its own
 * `demo-…` project id, so files never see each other's data and no test can reach a real project.
 */
import type { TestProject } from 'vitest/node';
import { startFirestoreEmulator, type FirestoreEmulator } from '../../local-stack/firestore-emulator';

let emulator: FirestoreEmulator | undefined;

export async function setup(project: TestProject): Promise<void> {
  emulator = await startFirestoreEmulator();
  project.provide('firestoreEmulatorHost', emulator.host);
}

export async function teardown(): Promise<void> {
  await emulator?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    firestoreEmulatorHost: string;
  }
}
