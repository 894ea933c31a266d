/**
 * Starts the real Firestore emulator (the Google Cloud CLI's jar) as one java process on a free
 * port, with an AppCDS archive cached in .cache/ to cut its start-up time, and stops it cleanly.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitFor } from './net-utils';

export interface FirestoreEmulator {
  host: string;
  stop(): Promise<void>;
}

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

export async function startFirestoreEmulator(opts: { cacheDir?: string } = {}): Promise<FirestoreEmulator> {
  const port = await freePort();
  const cacheDir = opts.cacheDir ?? path.resolve(__dirname, '..', '.cache');
  mkdirSync(cacheDir, { recursive: true });
  const cds = path.join(cacheDir, 'firestore-emulator.jsa');
  const cdsFlag = existsSync(cds) ? `-XX:SharedArchiveFile=${cds}` : `-XX:ArchiveClassesAtExit=${cds}`;
  const args = [
    '-Duser.language=en',
    '-Xmx512m',
    '-XX:TieredStopAtLevel=1',
    '-Xshare:auto',
    cdsFlag,
    '-cp',
    emulatorJar(),
    'com.google.cloud.datastore.emulator.firestore.CloudFirestore',
    'start',
    `--host=127.0.0.1`,
    `--port=${port}`,
  ];
  const child: ChildProcess = spawn('java', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: false });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 10_000) stderr += d.toString();
  });
  const host = `127.0.0.1:${port}`;
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`Firestore emulator exited early:\n${stderr}`);
        const res = await fetch(`http://${host}/`).catch(() => undefined);
        return res !== undefined && res.ok && (await res.text()).trim() === 'Ok';
      },
      { timeoutMs: 30_000, what: 'the Firestore emulator' },
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    host,
    async stop() {
      if (exited) return;
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await fetch(`http://${host}/shutdown`, { method: 'POST' }).catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    },
  };
}
