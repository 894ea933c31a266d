import type http from 'node:http';
import net from 'node:net';

/**
 * Listens on 127.0.0.1 on a port the kernel picks, and answers that port. Prefer it to
 * `freePort`: a port asked for by number can be taken in between (listen EADDRINUSE).
 */
export function listenOnFreePort(server: http.Server | net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/**
 * For a child process that must be told its port: starts it on a free port, and again on another
 * when `taken` says the port was taken between the pick and the child's bind, at most `attempts`
 * times in all.
 */
export async function onFreePort<T>(
  start: (port: number) => Promise<T>,
  opts: { taken: (err: unknown) => boolean; pick?: (() => Promise<number>) | undefined; attempts?: number },
): Promise<T> {
  const attempts = opts.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await (opts.pick ?? freePort)());
    } catch (err) {
      if (!opts.taken(err) || attempt >= attempts) throw err;
    }
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1 (for a child process that must be told one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns true or the timeout passes. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  opts: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}
