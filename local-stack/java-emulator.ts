/**
 * Runs one of the Google Cloud CLI's Java emulators (Firestore, Pub/Sub) as a child process on a
 * free port: waits until its root URL answers, fails with its stderr if it exits first, and stops
 * it (a polite request or signal first, SIGKILL after 5 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, waitFor } from './net-utils';

export interface JavaEmulator {
  host: string;
  stop(): Promise<void>;
}

export async function startJavaEmulator(opts: {
  /** Names it in errors, e.g. 'Firestore emulator'. */
  what: string;
  /** The java arguments for this port. */
  args: (port: number) => string[];
  /** Whether the emulator's answer to GET / means it is ready. */
  ready?: (res: Response) => Promise<boolean>;
  timeoutMs: number;
  /** How to ask it to stop (default SIGTERM). */
  shutdown?: (host: string, child: ChildProcess) => Promise<void>;
}): Promise<JavaEmulator> {
  // The port is free when picked, but the emulator binds it only later: another process can take
  // it in between. An emulator that exits because its port was taken is started again on another.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt === 3) throw err;
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(opts: Parameters<typeof startJavaEmulator>[0]): Promise<JavaEmulator> {
  const port = await freePort();
  const child = spawn('java', opts.args(port), { stdio: ['ignore', 'ignore', 'pipe'] });
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
        if (exited) {
          const Failure = /Address already in use|BindException/i.test(stderr) ? PortTakenError : Error;
          throw new Failure(`${opts.what} exited early:\n${stderr}`);
        }
        const res = await fetch(`http://${host}/`).catch(() => undefined);
        return res !== undefined && res.ok && (opts.ready ? await opts.ready(res) : true);
      },
      { timeoutMs: opts.timeoutMs, what: `the ${opts.what}` },
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
      await (opts.shutdown ? opts.shutdown(host, child) : Promise.resolve(void child.kill('SIGTERM')));
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    },
  };
}
