/**
 * The download runs ahead of a chunked upload while a chunk goes out. The storage client gathers a
 * whole chunk before it sends it and takes no byte meanwhile; without the read-ahead, a copy would
 * take the download's time plus the upload's. A proxy in front of the Cloud Storage stand-in holds
 * Cloud Storage's answer to the first chunk until the source has given half a read-ahead more (it
 * gives up after 5 s): the bytes read while it holds prove the overlap, and their bound proves the
 * memory it costs stays half a chunk.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Crc32c } from '../../functions/src/adapters/crc32c';
import { DownloadGuard } from '../../functions/src/adapters/download-guard';
import { readAheadBytes, uploadArchive } from '../../functions/src/adapters/resumable-upload';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';

const BUCKET = 'copy-read-ahead-test';
const CHUNK = 2 * 1024 * 1024;
const PIECE = 64 * 1024;
const data = randomBytes(4 * CHUNK);

let gcs: GcsServer;
let proxy: http.Server;
let storage: Storage;
let pulled = 0;
/** How many bytes the source gave while Cloud Storage's answer to the first chunk was held. */
let pulledWhileHeld: number | undefined;

let gateOpen = false;
let resumeSource: (() => void) | undefined;

/**
 * The archive's bytes in 64 KiB pieces, counting what the copy has pulled. It gives the first chunk
 * and one piece more (the client looks for a next byte before it sends a chunk), then waits for
 * `openGate`: so when Cloud Storage answers the first chunk, no byte of the next is in any buffer.
 */
function source(): Readable {
  pulled = 0;
  gateOpen = false;
  const give = (s: Readable): void => {
    if (pulled >= data.length) return void s.push(null);
    const piece = data.subarray(pulled, pulled + PIECE);
    pulled += piece.length;
    s.push(piece);
  };
  return new Readable({
    read() {
      if (pulled >= CHUNK + PIECE && !gateOpen) resumeSource = () => give(this);
      else give(this);
    },
  });
}

function openGate(): void {
  gateOpen = true;
  const resume = resumeSource;
  resumeSource = undefined;
  resume?.();
}

async function until(condition: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!condition() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

/** Forwards to the stand-in; sessions point back here; the first chunk's answer waits for the source. */
async function startProxy(target: string): Promise<string> {
  let origin = '';
  proxy = http.createServer((req, res) => {
    const upstream = http.request(`${target}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (up) => {
      void (async () => {
        const headers = { ...up.headers };
        if (typeof headers.location === 'string') headers.location = headers.location.replace(target, origin);
        const firstChunk = req.method === 'PUT' && /^bytes 0-/.test(String(req.headers['content-range'] ?? '')) && up.statusCode === 308;
        if (firstChunk) {
          // The chunk is sent and answered: what the source gives from now on, it gives while the
          // copy waits for that answer.
          const atAnswer = pulled;
          openGate();
          await until(() => pulled - atAnswer >= readAheadBytes(CHUNK) / 2, 5000);
          await new Promise((r) => setTimeout(r, 50));
          pulledWhileHeld = pulled - atAnswer;
        }
        res.writeHead(up.statusCode ?? 502, headers);
        up.pipe(res);
      })();
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return origin;
}

beforeAll(async () => {
  gcs = await startGcsServer();
  storage = new Storage({ apiEndpoint: await startProxy(gcs.endpoint), projectId: 'demo-read-ahead' });
  await storage.bucket(BUCKET).create();
});

afterAll(async () => {
  proxy?.closeAllConnections();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await gcs?.stop();
});

describe('a chunked copy reads ahead while a chunk goes out', () => {
  it('downloads half a chunk of the next while Cloud Storage has not answered the last, and no more than that', async () => {
    const crc32c = new Crc32c().update(data).digestBase64();
    const guard = new DownloadGuard(30_000, 'stalled');
    const file = storage.bucket(BUCKET).file('archive.zip');
    try {
      const stored = await uploadArchive({
        body: source(),
        guard,
        file,
        source: { size: data.length, crc32c, contentType: 'application/zip' },
        where: 'the test source',
        limits: { maxBytes: Number.POSITIVE_INFINITY, progressEveryBytes: 1 << 20, progressEveryMs: 1000 },
        resumable: { chunkSize: CHUNK },
      });
      expect(stored).toMatchObject({ size: data.length, crc32c });
    } finally {
      guard.clear();
    }
    // While the first chunk's answer was held, the source gave at least half the read-ahead
    // (without it, a few pieces that fill the stream buffers: the 5 s run out first)...
    expect(pulledWhileHeld).toBeGreaterThanOrEqual(readAheadBytes(CHUNK) / 2);
    // ...and no more than the read-ahead and a few pieces in stream buffers.
    expect(pulledWhileHeld).toBeLessThanOrEqual(readAheadBytes(CHUNK) + 8 * PIECE);
    const [meta] = await file.getMetadata();
    expect(Number(meta.size)).toBe(data.length);
    expect(meta.crc32c).toBe(crc32c);
  });
});
