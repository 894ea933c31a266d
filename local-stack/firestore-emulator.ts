/**
 * Starts the real Firestore emulator (the Google Cloud CLI's jar) as one java process on a free
 * port, with an AppCDS archive cached in .cache/ to cut its start-up time, and stops it cleanly.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { startJavaEmulator, type JavaEmulator } from './java-emulator';

export type FirestoreEmulator = JavaEmulator;

function emulatorJar(): string {
  const fromEnv = process.env.FIRESTORE_EMULATOR_JAR;
  if (fromEnv) return fromEnv;
  const sdkRoot = execFileSync('gcloud', ['info', '--format=value(installation.sdk_root)'], { encoding: 'utf8' }).trim();
  const jar = path.join(sdkRoot, 'platform', 'cloud-firestore-emulator', 'cloud-firestore-emulator.jar');
  if (!existsSync(jar)) {
    throw new Error(`Firestore emulator jar not found at ${jar}: run 'gcloud components install cloud-firestore-emulator'`);
  }
  return jar;
}

/** `heapMb`: the emulator keeps every document in its heap; 512 MB holds what tests and the demo write, not 100,000 jobs. */
export async function startFirestoreEmulator(opts: { cacheDir?: string; heapMb?: number } = {}): Promise<FirestoreEmulator> {
  const cacheDir = opts.cacheDir ?? path.resolve(__dirname, '..', '.cache');
  mkdirSync(cacheDir, { recursive: true });
  const cds = path.join(cacheDir, 'firestore-emulator.jsa');
  const cdsFlag = existsSync(cds) ? `-XX:SharedArchiveFile=${cds}` : `-XX:ArchiveClassesAtExit=${cds}`;
  const jar = emulatorJar();
  return startJavaEmulator({
    what: 'Firestore emulator',
    args: (port) => [
      '-Duser.language=en',
      `-Xmx${opts.heapMb ?? 512}m`,
      '-XX:TieredStopAtLevel=1',
      '-Xshare:auto',
      cdsFlag,
      '-cp',
      jar,
      'com.google.cloud.datastore.emulator.firestore.CloudFirestore',
      'start',
      `--host=127.0.0.1`,
      `--port=${port}`,
    ],
    started: (port) => new RegExp(`API endpoint: http://127\\.0\\.0\\.1:${port}\\b[\\s\\S]*Dev App Server is now running`),
    ready: async (res) => (await res.text()).trim() === 'Ok',
    timeoutMs: 30_000,
    shutdown: async (host) => void (await fetch(`http://${host}/shutdown`, { method: 'POST' }).catch(() => undefined)),
  });
}
