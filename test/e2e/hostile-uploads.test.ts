/**
 * Oversized bodies on every function, public and private (issue 11, item 1): refused with a JSON
 * 413 while the body is still arriving, before anything is parsed, and without holding the bytes.
 * No timing assertions: the proofs are an answer that arrives while the body's last byte is still
 * withheld (a server that read the whole body first could not have answered), and the process's
 * peak memory (maxRSS), which parsing 8 MB of `[` would raise by hundreds of megabytes.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api } from '../support/api-client';
import { slowUpload, type UploadAnswer } from '../support/slow-upload';

const PROJECT = 'demo-e2e-uploads';
const EIGHT_MB = 8 * 1024 * 1024;
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({ firestoreEmulatorHost: inject('firestoreEmulatorHost'), projectId: PROJECT, logLevel: 'silent' });
});

afterAll(async () => {
  await stack?.stop();
});

/** A liveness bound, not a speed goal: without it a server that waits for the withheld byte hangs the test. */
function answered(answer: Promise<UploadAnswer>, what: string): Promise<UploadAnswer> {
  let timer: NodeJS.Timeout | undefined;
  const never = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer while the body's last byte was withheld`)), 15_000);
  });
  return Promise.race([answer, never]).finally(() => clearTimeout(timer));
}

const maxRssMiB = (): number => process.resourceUsage().maxRSS / 1024;

describe('oversized bodies', () => {
  // First in the file: the process's peak memory so far is the stack's start-up, not another test.
  it('8 MB uploads in flight raise no memory peak, and GETs sent beside them are answered', async () => {
    const token = await stack.idToken('uma');
    const peakBefore = maxRssMiB();
    const uploads = Array.from({ length: 4 }, (_, i) => slowUpload(`${stack.apiUrl}/v1/exports`, { size: EIGHT_MB, chunked: i % 2 === 1, headers: { Authorization: `Bearer ${token}` } }));
    const gets = Array.from({ length: 6 }, () => api(stack, token, 'GET', '/v1/exports'));
    const [answers, sent, listed] = await Promise.all([Promise.all(uploads.map((u) => u.answer)), Promise.all(uploads.map((u) => u.sent)), Promise.all(gets)]);
    expect(sent).toEqual([EIGHT_MB, EIGHT_MB, EIGHT_MB, EIGHT_MB]);
    for (const a of answers) expect([a.status, a.body]).toMatchObject([413, { error: { code: 'BODY_TOO_LARGE' } }]);
    expect(listed.map((g) => g.status)).toEqual([200, 200, 200, 200, 200, 200]);
    // 32 MB went in. Before the guard, the framework buffered and parsed each body: the peak rose by
    // 420 MiB (measured); now only the client's own buffers show (about 40 MiB, measured).
    expect(maxRssMiB() - peakBefore).toBeLessThan(128);
  });

  it('refuses 8 MB with a JSON 413 before its last byte is sent, on every function, with Content-Length or chunked', async () => {
    const { checkUrl, copyUrl, sweepUrl, scheduleUrl } = stack.config.tasks;
    const targets: Array<[string, string]> = [
      ['api', `${stack.apiUrl}/v1/exports`],
      ['api, unknown route', `${stack.apiUrl}/v1/nothing-here`],
      ['checkArchiveJob', checkUrl],
      ['copyArchives', copyUrl],
      ['sweepJobs', sweepUrl],
      ['runSchedules', scheduleUrl],
    ];
    for (const [name, url] of targets) {
      for (const chunked of [false, true]) {
        const what = `${name} ${chunked ? 'chunked' : 'with Content-Length'}`;
        const upload = slowUpload(url, { size: EIGHT_MB, chunked, withholdLastByte: true });
        try {
          const a = await answered(upload.answer, what);
          expect(a.status, what).toBe(name === 'api, unknown route' ? 404 : 413);
          expect(a.type, what).toMatch(/application\/json/);
          expect(a.body, what).toMatchObject({ error: { code: name === 'api, unknown route' ? 'NOT_FOUND' : 'BODY_TOO_LARGE' } });
          expect(a.bytesSentBeforeAnswer, what).toBeLessThan(EIGHT_MB);
        } finally {
          upload.abort();
        }
      }
    }
  });

  it('counts the inflated bytes of a compressed body: 8 MB of [ in 8 KB of gzip is refused with a JSON 413', async () => {
    const bomb = gzipSync(Buffer.alloc(EIGHT_MB, '['));
    expect(bomb.length).toBeLessThan(16 * 1024);
    for (const url of [`${stack.apiUrl}/v1/exports`, stack.config.tasks.checkUrl]) {
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: bomb });
      expect(res.status, url).toBe(413);
      expect(((await res.json()) as { error: { code: string } }).error.code, url).toBe('BODY_TOO_LARGE');
    }
  });

  it('still reads a body of exactly 16 KB (the limit is inclusive), and refuses one byte more', async () => {
    const token = await stack.idToken('uma');
    const body = (n: number): string => JSON.stringify({ resources: ['myactivity.search'], pad: '' }).replace('""', `"${'x'.repeat(n)}"`);
    const base = body(0).length;
    const exact = await api(stack, token, 'POST', '/v1/exports', body(16 * 1024 - base));
    // Read and parsed: the schema, not the size, refuses it (an unknown field).
    expect([exact.status, exact.body]).toMatchObject([400, { error: { code: 'INVALID_ARGUMENT' } }]);
    const over = await api(stack, token, 'POST', '/v1/exports', body(16 * 1024 - base + 1));
    expect([over.status, over.body]).toMatchObject([413, { error: { code: 'BODY_TOO_LARGE' } }]);
  });
});
