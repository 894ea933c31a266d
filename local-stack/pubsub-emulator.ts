/**
 * Starts the real Pub/Sub emulator (the Google Cloud CLI's jar) as one java process on a free
 * port, and stops it. The official client finds it through `PUBSUB_EMULATOR_HOST` or an explicit
 * `apiEndpoint` with `emulatorMode`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { startJavaEmulator, type JavaEmulator } from './java-emulator';

export type PubSubEmulator = JavaEmulator;

function emulatorJar(): string {
  const sdkRoot = execFileSync('gcloud', ['info', '--format=value(installation.sdk_root)'], { encoding: 'utf8' }).trim();
  const lib = path.join(sdkRoot, 'platform', 'pubsub-emulator', 'lib');
  const jar = existsSync(lib) ? readdirSync(lib).find((f) => /^cloud-pubsub-emulator-.*\.jar$/.test(f)) : undefined;
  if (!jar) throw new Error(`Pub/Sub emulator jar not found in ${lib}: run 'gcloud components install pubsub-emulator'`);
  return path.join(lib, jar);
}

/** What the emulator logs once it listens. */
export const PUBSUB_STARTED = (port: number): RegExp => new RegExp(`Server started, listening on ${port}\\b`);

/** The java arguments that run the emulator on `port`. */
export function pubSubEmulatorArgs(jar = emulatorJar()): (port: number) => string[] {
  return (port) => ['-Xmx256m', '-XX:TieredStopAtLevel=1', '-jar', jar, '--host=127.0.0.1', `--port=${port}`];
}

export async function startPubSubEmulator(): Promise<PubSubEmulator> {
  return startJavaEmulator({ what: 'Pub/Sub emulator', args: pubSubEmulatorArgs(), started: PUBSUB_STARTED, timeoutMs: 60_000 });
}
