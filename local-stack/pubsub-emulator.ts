/**
 * Starts the real Pub/Sub emulator (the Google Cloud CLI's jar) as one java process on a free
 * port, and stops it. The official client finds it through `PUBSUB_EMULATOR_HOST` or an explicit
 * `apiEndpoint` with `emulatorMode`.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitFor } from './net-utils';

export interface PubSubEmulator {
  host: string;
  stop(): Promise<void>;
}

function emulatorJar(): string {
  const sdkRoot = execFileSync('gcloud', ['info', '--format=value(installation.sdk_root)'], { encoding: 'utf8' }).trim();
  const lib = path.join(sdkRoot, 'platform', 'pubsub-emulator', 'lib');
  const jar = existsSync(lib) ? readdirSync(lib).find((f) => /^cloud-pubsub-emulator-.*\.jar$/.test(f)) : undefined;
  if (!jar) throw new Error(`Pub/Sub emulator jar not found in ${lib}: run 'gcloud components install pubsub-emulator'`);
  return path.join(lib, jar);
}

export async function startPubSubEmulator(): Promise<PubSubEmulator> {
  const port = await freePort();
  const child: ChildProcess = spawn('java', ['-Xmx256m', '-XX:TieredStopAtLevel=1', '-jar', emulatorJar(), '--host=127.0.0.1', `--port=${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 10_000) stderr += d.toString();
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const host = `127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`Pub/Sub emulator exited early:\n${stderr}`);
        const res = await fetch(`http://${host}/`).catch(() => undefined);
        return res !== undefined && res.ok;
      },
      { timeoutMs: 60_000, what: 'the Pub/Sub emulator' },
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
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    },
  };
}
