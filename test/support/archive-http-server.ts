/**
 * A stand-in for a signed Cloud Storage download URL: serves archive files from disk with
 * `Content-Length`, `x-goog-hash` and `Range`, and can misbehave on request (expire, redirect,
 * stall, lie about its checksum) so the copy engine's failure paths can be tested.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { CRC32C } from '@google-cloud/storage';

export interface ArchiveFixture {
  file: string;
  size: number;
  /** base64, computed with the storage client's own CRC32C (independent of the code under test) */
  crc32c: string;
  md5: string;
}

/**
 * Writes `size` bytes of random-looking data. `skipCrc32c` leaves the (slow, byte-by-byte) reference
 * CRC32C out for very large fixtures; their tests then rely on MD5 and size.
 */
export async function writeArchiveFixture(dir: string, name: string, size: number, opts: { skipCrc32c?: boolean } = {}): Promise<ArchiveFixture> {
  const file = path.join(dir, name);
  const crc = new CRC32C();
  const md5 = createHash('md5');
  // One 1 MiB random block, stamped with its index per MiB: random enough, cheap for hundreds of
  // MB, and reused (each write is awaited) so making a fixture does not inflate the process's RSS.
  const block = randomBytes(1 << 20);
  const out = createWriteStream(file);
  let written = 0;
  let i = 0;
  while (written < size) {
    const chunk = block.subarray(0, Math.min(block.length, size - written));
    chunk.writeUInt32BE(i++ >>> 0, 0);
    if (!opts.skipCrc32c) crc.update(chunk);
    md5.update(chunk);
    written += chunk.length;
    await new Promise<void>((resolve, reject) => out.write(chunk, (e) => (e ? reject(e) : resolve())));
  }
  await new Promise<void>((resolve, reject) => out.end(() => resolve()).once('error', reject));
  return { file, size, crc32c: opts.skipCrc32c ? '' : crc.toString(), md5: md5.digest('base64') };
}

export interface ArchiveRoute {
  fixture?: ArchiveFixture;
  /** Answer this status with an XML error body instead of the archive. */
  status?: number;
  /** With a 3xx status: where to send the client. */
  location?: string;
  /** Send this `x-goog-hash` instead of the true one ('' sends none). */
  googHash?: string;
  /** Leave out Content-Length (chunked transfer). */
  omitLength?: boolean;
  /** Send this many bytes, then go silent (the socket stays open). */
  stallAfterBytes?: number;
  /** Flip one byte at this offset in what is sent. */
  corruptAt?: number;
  /** Answer a ranged GET with the whole archive (200), as a server without range support does. */
  ignoreRange?: boolean;
}

export interface ArchiveHttpServer {
  origin: string;
  /** `127.0.0.1:PORT`, for the copier's allowed hosts */
  host: string;
  serve(pathname: string, route: ArchiveRoute): void;
  /** Paths (no query) of requests received, in order. */
  requests: string[];
  stop(): Promise<void>;
}

/** Bytes per read of a fixture, and how many such buffers take turns (see `sendRange`). */
const PIECE = 1024 * 1024;
const PIECES = 4;

/**
 * Sends bytes `start`..`end` of `file`, applying the route's faults, from a few buffers that take
 * turns: a buffer is read into again only once its last write has reached the socket. Allocating
 * a buffer per read (as a read stream does) makes the collector run every few MiB in a process
 * with a large heap, such as the benchmark's: 2–4 s of CPU per GiB served, on the cores the copy
 * under test shares. A Google server's costs are not the copy's.
 */
async function sendRange(res: http.ServerResponse, file: string, start: number, end: number, route: ArchiveRoute): Promise<void> {
  const closed = new Promise<void>((resolve) => res.once('close', resolve));
  const piece = Math.max(0, Math.min(PIECE, end - start + 1));
  const pool = Array.from({ length: PIECES }, () => Buffer.allocUnsafe(piece));
  const written: Array<Promise<void> | undefined> = [];
  const fh = await fsp.open(file, 'r');
  try {
    let offset = start;
    let sent = 0;
    for (let i = 0; offset <= end; i = (i + 1) % PIECES) {
      await Promise.race([written[i], closed]);
      if (res.destroyed) return;
      const { bytesRead } = await fh.read(pool[i], 0, Math.min(piece, end - offset + 1), offset);
      if (bytesRead === 0) break;
      let out = pool[i].subarray(0, bytesRead);
      if (route.corruptAt !== undefined && route.corruptAt >= offset && route.corruptAt < offset + bytesRead) {
        out = Buffer.from(out);
        out[route.corruptAt - offset] ^= 0xff;
      }
      offset += bytesRead;
      if (route.stallAfterBytes !== undefined && sent + out.length >= route.stallAfterBytes) {
        res.write(out.subarray(0, route.stallAfterBytes - sent));
        return; // silence: the response is never ended
      }
      sent += out.length;
      written[i] = new Promise<void>((resolve) => res.write(out, () => resolve()));
    }
    res.end();
  } finally {
    await fh.close();
  }
}

export async function startArchiveHttpServer(): Promise<ArchiveHttpServer> {
  const routes = new Map<string, ArchiveRoute>();
  const requests: string[] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push(url.pathname);
    const route = routes.get(url.pathname);
    if (!route || (route.status && route.status !== 200) || !route.fixture) {
      const status = route?.status ?? 404;
      const body = `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${status === 403 ? 'ExpiredToken' : 'NoSuchKey'}</Code></Error>`;
      res.writeHead(status, { 'Content-Type': 'application/xml', ...(route?.location ? { Location: route.location } : {}) });
      res.end(body);
      return;
    }
    const fx = route.fixture;
    let start = 0;
    let end = fx.size - 1;
    let status = 200;
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/zip', 'Accept-Ranges': 'bytes' };
    const trueHash = fx.crc32c ? `crc32c=${fx.crc32c},md5=${fx.md5}` : `md5=${fx.md5}`;
    const hash = route.googHash ?? trueHash;
    if (hash) headers['x-goog-hash'] = hash;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && !route.ignoreRange) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${fx.size}`;
    }
    if (!route.omitLength) headers['Content-Length'] = end - start + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    void sendRange(res, fx.file, start, end, route).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    serve: (pathname, route) => routes.set(pathname, route),
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Removes a fixture directory (fixtures can be hundreds of MB). */
export async function removeFixtures(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}
