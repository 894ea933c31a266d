/**
 * Runs one of the Google Cloud CLI's Java emulators (Firestore, Pub/Sub) as a child process on a
 * free port: waits until it says it listens there and its root URL answers, fails with its output
 * if it exits first, starts it again on another port if its port was taken, and stops it (a
 * polite request or signal first, SIGKILL after 5 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { onFreePort, waitFor } from './net-utils';

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
  /**
   * What the emulator prints (stdout or stderr) once it listens on `port`. Until it has, an answer
   * on the port may come from whoever else holds it.
   */
  started: (port: number) => RegExp;
  /** Picks the port to try (default: one free a moment ago). */
  pickPort?: () => Promise<number>;
  timeoutMs: number;
  /** How to ask it to stop (default SIGTERM). */
  shutdown?: (host: string, child: ChildProcess) => Promise<void>;
}): Promise<JavaEmulator> {
  // The port is free when picked, but the emulator binds it only later: another process can take
  // it in between. An emulator whose port was taken is started again on another.
  return onFreePort((port) => startOn(port, opts), { taken: (err) => err instanceof PortTakenError, pick: opts.pickPort });
}

class PortTakenError extends Error {}
const PORT_TAKEN = /java\.net\.BindException|Address already in use/;

async function startOn(port: number, opts: Parameters<typeof startJavaEmulator>[0]): Promise<JavaEmulator> {
  const child = spawn('java', opts.args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
  const startedLine = opts.started(port);
  // Its output, both streams: what it says on starting comes in its first few hundred bytes.
  let output = '';
  let started = false;
  const read = (d: Buffer): void => {
    if (output.length < 10_000) output += d.toString();
    started ||= startedLine.test(output);
  };
  child.stdout?.on('data', read);
  child.stderr?.on('data', read);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const host = `127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        // The Pub/Sub emulator does not exit when its port is taken: its main thread dies and
        // netty's live on, while the port answers for whoever took it.
        if (PORT_TAKEN.test(output)) throw new PortTakenError(`${opts.what} could not bind ${host}:\n${output}`);
        if (exited) throw new Error(`${opts.what} exited early:\n${output}`);
        // Bounded: whoever holds a taken port may accept and never answer.
        if (!started) return false;
        const res = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
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
