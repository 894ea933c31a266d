/**
 * The copier's decisions that need no bucket and no server: what a source's status means, what its
 * headers declare, whether bytes or a stored object are the source's archive, and what a failed
 * upload becomes. The integration tests drive the same functions end to end.
 */
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FileMetadata, Storage } from '@google-cloud/storage';
import { DownloadGuard } from '../../functions/src/adapters/download-guard';
import { sessionStatus, uploadFailure } from '../../functions/src/adapters/resumable-upload';
import { declaredFacts, describe as describeUrl, networkReason, parseGoogHash, SignedUrlSource, sourceStatusError, type SourceResponse } from '../../functions/src/adapters/signed-url-source';
import { httpStatusOf, matchesSource, mismatchMessage, sameArchive, sameSource } from '../../functions/src/adapters/stored-archive';
import { ArchiveRejectedError, ArchiveUrlExpiredError, CopyInterruptedError } from '../../functions/src/domain/errors';
import type { ArchiveFacts } from '../../functions/src/domain/ports/archive-copier';

const WHERE = 'https://storage.example/a.zip';

function answer(status: number, headers: Record<string, string>): SourceResponse {
  return { status, header: (n) => headers[n], body: Readable.from([]), discard: () => undefined };
}

describe('sourceStatusError: one mapping of a source status to an error', () => {
  it.each([300, 302, 307, 399])('%i is a redirect, refused for good', (s) => {
    const e = sourceStatusError(s, 'Archive download', WHERE);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect(e.message).toBe(`Archive URL answered a redirect (${s}); redirects are not followed (${WHERE})`);
  });

  it.each([400, 401, 403])('%i is an expired or refused signature', (s) => {
    const e = sourceStatusError(s, 'Archive part download', WHERE);
    expect(e).toBeInstanceOf(ArchiveUrlExpiredError);
    expect(e.message).toBe(`The signed archive URL was refused with ${s} (expired?) (${WHERE})`);
  });

  it.each([429, 500, 503])('%i is worth another try (not a rejection)', (s) => {
    const e = sourceStatusError(s, 'Archive part download', WHERE);
    expect(e).not.toBeInstanceOf(ArchiveRejectedError);
    expect(e).not.toBeInstanceOf(ArchiveUrlExpiredError);
    expect(e.message).toBe(`Archive part download answered ${s}; try again later (${WHERE})`);
  });

  it.each([200, 206, 402, 404, 410, 428, 499])('%i is refused for good, with the caller’s wording when it has one', (s) => {
    const plain = sourceStatusError(s, 'Archive download', WHERE);
    expect(plain).toBeInstanceOf(ArchiveRejectedError);
    expect(plain).not.toBeInstanceOf(ArchiveUrlExpiredError);
    expect(plain.message).toBe(`Archive download answered ${s} (${WHERE})`);
    expect(sourceStatusError(s, 'Archive download', WHERE, 'Archive source did not serve bytes 0-9').message).toBe(`Archive source did not serve bytes 0-9 (${WHERE})`);
  });

  it('describes a URL without its query string (the signature)', () => {
    expect(describeUrl(new URL('https://h.example:8443/p/a.zip?X-Goog-Signature=secret'))).toBe('https://h.example:8443/p/a.zip');
  });
});

describe('what a source declares', () => {
  it('parses x-goog-hash, also joined from two headers, ignoring what it does not know', () => {
    expect(parseGoogHash('crc32c=AAAAAA==, md5=bWQ1')).toEqual({ crc32c: 'AAAAAA==', md5: 'bWQ1' });
    expect(parseGoogHash(' CRC32C = x ,junk,sha1=y')).toEqual({ crc32c: 'x' });
    expect(parseGoogHash(undefined)).toEqual({});
    expect(parseGoogHash('')).toEqual({});
    // A part without '=' is no key: not even one that starts like one.
    expect(parseGoogHash('md5X,crc32cY')).toEqual({});
  });

  it('takes the size from Content-Length on a 200 and from Content-Range on a 206', () => {
    expect(declaredFacts(answer(200, { 'content-length': '123', 'x-goog-hash': 'crc32c=c', 'content-type': 'application/x-zip' }))).toEqual({
      size: 123,
      crc32c: 'c',
      contentType: 'application/x-zip',
    });
    expect(declaredFacts(answer(206, { 'content-length': '1', 'content-range': 'bytes 0-0/4567' }))).toEqual({ size: 4567, contentType: 'application/zip' });
  });

  it('declares no size when the header is missing or not a number', () => {
    expect(declaredFacts(answer(200, {})).size).toBeUndefined();
    expect(declaredFacts(answer(200, { 'content-length': '12abc' })).size).toBeUndefined();
    expect(declaredFacts(answer(200, { 'content-length': 'x12' })).size).toBeUndefined();
    expect(declaredFacts(answer(206, { 'content-length': '5', 'content-range': 'bytes 0-4/*' })).size).toBeUndefined();
    expect(declaredFacts(answer(206, { 'content-length': '5', 'content-range': 'bytes 0-4/12x' })).size).toBeUndefined();
    expect(declaredFacts(answer(206, { 'content-length': '5' })).size).toBeUndefined();
  });
});

describe('is it the source’s archive?', () => {
  const meta = (m: Partial<FileMetadata>): FileMetadata => m as FileMetadata;
  const src = (f: Partial<ArchiveFacts>): ArchiveFacts => ({ contentType: 'application/zip', ...f });

  it('a stored object: the size first, then the CRC32C, else the MD5; undecidable on no declaration', () => {
    expect(sameArchive(meta({ size: '10', crc32c: 'c' }), src({ size: 11, crc32c: 'c' }))).toBe(false);
    expect(sameArchive(meta({ size: '10', crc32c: 'c' }), src({ size: 10, crc32c: 'c' }))).toBe(true);
    expect(sameArchive(meta({ size: '10', crc32c: 'c', md5Hash: 'm' }), src({ size: 10, crc32c: 'd', md5: 'm' }))).toBe(false);
    expect(sameArchive(meta({ size: '10', md5Hash: 'm' }), src({ md5: 'm' }))).toBe(true);
    expect(sameArchive(meta({ size: '10', md5Hash: 'm' }), src({ md5: 'n' }))).toBe(false);
    expect(sameArchive(meta({ size: '10' }), src({ size: 10 }))).toBeUndefined();
    expect(sameArchive(meta({ size: '10' }), src({}))).toBeUndefined();
  });

  it('a resumed download: only a checksum both sides know proves it; a size can disprove it', () => {
    const cp = { uploadUri: 'u', size: 10, crc32c: 'c' };
    expect(sameSource(undefined, src({ size: 10, crc32c: 'c' }))).toBe(false);
    expect(sameSource(cp, src({ size: 10, crc32c: 'c' }))).toBe(true);
    expect(sameSource(cp, src({ size: 11, crc32c: 'c' }))).toBe(false);
    expect(sameSource(cp, src({ size: 10, crc32c: 'd' }))).toBe(false);
    expect(sameSource(cp, src({ crc32c: 'c' }))).toBe(true);
    expect(sameSource({ uploadUri: 'u', md5: 'm' }, src({ md5: 'm' }))).toBe(true);
    expect(sameSource({ uploadUri: 'u', md5: 'm' }, src({ md5: 'n' }))).toBe(false);
    expect(sameSource({ uploadUri: 'u', size: 10 }, src({ size: 10 }))).toBe(false);
    expect(sameSource({ uploadUri: 'u', crc32c: 'c' }, src({ md5: 'm' }))).toBe(false);
    expect(sameSource({ uploadUri: 'u', crc32c: 'c' }, src({ size: 10, crc32c: 'c' }))).toBe(true);
    // A CRC32C one side lacks proves nothing: the MD5 both know decides.
    expect(sameSource({ uploadUri: 'u', md5: 'm' }, src({ crc32c: 'c', md5: 'm' }))).toBe(true);
    expect(sameSource({ uploadUri: 'u', crc32c: 'c', md5: 'm' }, src({ md5: 'm' }))).toBe(true);
  });

  it('bytes received: every declaration that was computed must agree', () => {
    expect(matchesSource(10, {}, src({ size: 10 }))).toBe(true);
    expect(matchesSource(9, {}, src({ size: 10 }))).toBe(false);
    expect(matchesSource(9, {}, src({}))).toBe(true);
    expect(matchesSource(10, { crc32c: 'c' }, src({ crc32c: 'c' }))).toBe(true);
    expect(matchesSource(10, { crc32c: 'x' }, src({ crc32c: 'c' }))).toBe(false);
    expect(matchesSource(10, {}, src({ crc32c: 'c' }))).toBe(true);
    expect(matchesSource(10, {}, src({ md5: 'm' }))).toBe(true);
    expect(matchesSource(10, { md5: 'x' }, src({ md5: 'm' }))).toBe(false);
    expect(matchesSource(10, { md5: 'm' }, src({ md5: 'm' }))).toBe(true);
    expect(matchesSource(10, { crc32c: 'c', md5: 'm' }, src({}))).toBe(true);
  });

  it('names what was received and what was declared, "?" or "not computed" for what is missing', () => {
    expect(mismatchMessage(7, { crc32c: 'x' }, src({ size: 10, md5: 'm' }), WHERE)).toBe(
      `Archive checksum mismatch: received 7 bytes, crc32c x, md5 not computed; the source declared size 10, crc32c ?, md5 m (${WHERE})`,
    );
    expect(mismatchMessage(7, { md5: 'n' }, src({ crc32c: 'c' }), WHERE)).toBe(
      `Archive checksum mismatch: received 7 bytes, crc32c not computed, md5 n; the source declared size ?, crc32c c, md5 ? (${WHERE})`,
    );
  });

  it('reads the HTTP status of both kinds of storage client error, and of nothing else', () => {
    expect(httpStatusOf({ code: 404 })).toBe(404);
    expect(httpStatusOf({ status: 412 })).toBe(412);
    expect(httpStatusOf({ response: { status: 503 } })).toBe(503);
    expect(httpStatusOf({ code: 'ECONNRESET', status: '500' })).toBeUndefined();
    expect(httpStatusOf(undefined)).toBeUndefined();
    expect(httpStatusOf(null)).toBeUndefined();
    expect(httpStatusOf(404)).toBeUndefined();
  });
});

describe('networkReason: a network error named by its code only', () => {
  it('prefers the cause’s code, then a string code, then an abort, then the error’s name', () => {
    expect(networkReason(Object.assign(new TypeError('fetch failed https://h/?sig=secret'), { cause: { code: 'ECONNREFUSED' } }))).toBe('ECONNREFUSED');
    expect(networkReason(Object.assign(new Error('x'), { cause: { code: 7 }, code: 'ETIMEDOUT' }))).toBe('ETIMEDOUT');
    expect(networkReason(Object.assign(new Error('x'), { code: 'ABORT_ERR', name: 'AbortError' }))).toBe('aborted');
    expect(networkReason(Object.assign(new Error('x'), { name: 'AbortError' }))).toBe('aborted');
    expect(networkReason(new RangeError('https://h/?sig=secret'))).toBe('RangeError');
    expect(networkReason(Object.assign(new Error('x'), { code: 'ABORT_ERR' }))).toBe('Error');
    expect(networkReason('https://h/?sig=secret')).toBe('unknown error');
    expect(networkReason(undefined)).toBe('unknown error');
  });
});

describe('SignedUrlSource.check: which URLs may be fetched at all', () => {
  const lookup = async (host: string) => (host === 'inside.example' ? [{ address: '10.0.0.8', family: 4 }] : [{ address: '142.250.1.1', family: 4 }]);
  const source = (o: Partial<ConstructorParameters<typeof SignedUrlSource>[0]> = {}) =>
    new SignedUrlSource({ allowedHosts: ['  Storage.Example  ', '', 'other.example:8443'], allowHttp: false, lookup, ...o });

  it('allows https to a listed host (trimmed, any case) or a listed host:port', async () => {
    expect((await source().check('https://STORAGE.example/a.zip?sig=s')).host).toBe('storage.example');
    expect((await source().check('https://other.example:8443/a.zip')).host).toBe('other.example:8443');
    // A listed hostname allows any port; a listed host:port only that port.
    expect((await source().check('https://storage.example:8080/a.zip')).host).toBe('storage.example:8080');
  });

  it('refuses anything else, naming the URL without its query', async () => {
    const refused = async (url: string, s = source()) => {
      const e = await s.check(url).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(ArchiveRejectedError);
      expect((e as Error).message).not.toContain('sig=');
      return (e as Error).message;
    };
    expect(await refused('not a url')).toBe('The archive URL is not a valid URL');
    expect(await refused('http://storage.example/a.zip?sig=s')).toBe('Archive URL scheme http: is not allowed (http://storage.example/a.zip)');
    expect(await refused('ftp://storage.example/a.zip?sig=s', source({ allowHttp: true }))).toMatch(/^Archive URL scheme ftp: is not allowed/);
    expect(await refused('https://u:p@storage.example/a.zip?sig=s')).toBe('Archive URL must not carry user info (https://storage.example)');
    expect(await refused('https://u@storage.example/a.zip?sig=s')).toMatch(/must not carry user info/);
    expect(await refused('https://:p@storage.example/a.zip?sig=s')).toMatch(/must not carry user info/);
    expect(await refused('https://evil.example/a.zip?sig=s')).toBe('Archive host evil.example is not in the allowed hosts (https://evil.example/a.zip)');
    expect(await refused('https://other.example/a.zip?sig=s')).toMatch(/^Archive host other.example is not in the allowed hosts/);
    expect(await refused('https:///a.zip?sig=s')).toMatch(/not in the allowed hosts|not a valid URL/);
  });

  it('allows http only when told, and checks addresses unless told not to (the local stack)', async () => {
    const inside = source({ allowedHosts: ['inside.example'] });
    expect(await inside.check('https://inside.example/a.zip').catch((e: unknown) => e)).toBeInstanceOf(ArchiveRejectedError);
    const local = source({ allowedHosts: ['inside.example'], allowHttp: true });
    expect((await local.check('http://inside.example/a.zip')).protocol).toBe('http:');
    const checked = source({ allowedHosts: ['inside.example'], allowHttp: true, refusePrivateAddresses: true });
    const e = await checked.check('http://inside.example/a.zip?sig=s').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect((e as Error).message).toMatch(/^Archive URL refused: .*\(http:\/\/inside\.example\/a\.zip\)$/);
  });
});

describe('uploadFailure: what a failed upload becomes', () => {
  const base = {
    uploadError: { code: 503 } as unknown,
    own: undefined as Error | undefined,
    sourceEnded: false,
    count: 5,
    computed: {},
    source: { size: 10, crc32c: 'c', contentType: 'application/zip' } as ArchiveFacts,
    resumable: false,
    at: 'gs://b/o',
    where: WHERE,
  };

  it('our own stop wins, and keeps what was written (the session resumes)', () => {
    const own = new CopyInterruptedError('stopped');
    expect(uploadFailure({ ...base, own, sourceEnded: true, uploadError: { code: 400 } })).toEqual({ error: own, removePartial: false, mayHaveRaced: false });
  });

  it('every byte arrived and Cloud Storage refused them against the declarations: a permanent mismatch', () => {
    const f = uploadFailure({ ...base, sourceEnded: true, count: 10, uploadError: { code: 400 }, resumable: true });
    expect(f.error).toBeInstanceOf(ArchiveRejectedError);
    expect(f.error.message).toMatch(/^Archive checksum mismatch: Cloud Storage refused the 10 bytes received against the source's size 10, crc32c c, md5 \?/);
    expect(f).toMatchObject({ removePartial: false, mayHaveRaced: false });
  });

  it.each([{ size: 10 }, { crc32c: 'c' }, { md5: 'm' }])('a 400 after every byte is a mismatch whatever the source declared (%o)', (declared) => {
    const f = uploadFailure({ ...base, sourceEnded: true, uploadError: { code: 400 }, source: { contentType: 'application/zip', ...declared } });
    expect(f.error).toBeInstanceOf(ArchiveRejectedError);
    expect(f.error.message).toMatch(/^Archive checksum mismatch: Cloud Storage refused/);
  });

  it('names the declarations it was refused against, "?" for what the source did not declare', () => {
    const f = uploadFailure({ ...base, sourceEnded: true, count: 9, uploadError: { code: 400 }, source: { crc32c: 'c', contentType: 'application/zip' } });
    expect(f.error.message).toBe(`Archive checksum mismatch: Cloud Storage refused the 9 bytes received against the source's size ?, crc32c c, md5 ? (${WHERE})`);
    const g = uploadFailure({ ...base, sourceEnded: true, count: 9, uploadError: { code: 400 }, source: { size: 9, md5: 'm', contentType: 'application/zip' } });
    expect(g.error.message).toBe(`Archive checksum mismatch: Cloud Storage refused the 9 bytes received against the source's size 9, crc32c ?, md5 m (${WHERE})`);
  });

  it('a 400 is not a mismatch when the source declared nothing, the bytes had not all arrived, or we aborted', () => {
    const nothing = uploadFailure({ ...base, sourceEnded: true, uploadError: { code: 400 }, source: { contentType: 'application/zip' } });
    expect(nothing.error.message).toBe(`Archive copy to gs://b/o failed (HTTP 400) from ${WHERE}`);
    expect(uploadFailure({ ...base, uploadError: { code: 400 } }).error.message).toMatch(/failed \(HTTP 400\)/);
    const cap = new ArchiveRejectedError('too big');
    expect(uploadFailure({ ...base, own: cap, sourceEnded: true, uploadError: { code: 400 } })).toEqual({ error: cap, removePartial: true, mayHaveRaced: false });
  });

  it('a resumable upload that broke off keeps its session, named by status or network code', () => {
    const http = uploadFailure({ ...base, resumable: true });
    expect(http.error).toBeInstanceOf(CopyInterruptedError);
    expect(http.error.message).toBe(`Archive copy to gs://b/o broke off (HTTP 503) from ${WHERE}`);
    expect(http).toMatchObject({ removePartial: false, mayHaveRaced: false });
    expect(uploadFailure({ ...base, resumable: true, uploadError: Object.assign(new Error('socket hang up'), { cause: { code: 'ECONNRESET' } }) }).error.message).toMatch(/broke off \(ECONNRESET\)/);
    const stall = new Error('stalled');
    expect(uploadFailure({ ...base, resumable: true, own: stall })).toEqual({ error: stall, removePartial: false, mayHaveRaced: false });
  });

  it('a resumable upload refused for good, or beaten to the object, does not keep its session', () => {
    const cap = new ArchiveRejectedError('too big');
    expect(uploadFailure({ ...base, resumable: true, own: cap })).toEqual({ error: cap, removePartial: true, mayHaveRaced: false });
    expect(uploadFailure({ ...base, resumable: true, uploadError: { code: 412 } })).toMatchObject({ removePartial: true, mayHaveRaced: true });
  });

  it('our own reason to abort, then bytes that disagree with the source, remove what was written', () => {
    const stall = new Error('stalled');
    expect(uploadFailure({ ...base, own: stall })).toEqual({ error: stall, removePartial: true, mayHaveRaced: false });
    const short = uploadFailure({ ...base, sourceEnded: true, count: 7 });
    expect(short.error).toBeInstanceOf(ArchiveRejectedError);
    expect(short.error.message).toMatch(/^Archive checksum mismatch: received 7 bytes/);
    expect(short).toMatchObject({ removePartial: true, mayHaveRaced: false });
    // All bytes, as declared: the failure is the store's, worth another try.
    const store = uploadFailure({ ...base, sourceEnded: true, count: 10 });
    expect(store.error).not.toBeInstanceOf(ArchiveRejectedError);
    expect(store).toMatchObject({ removePartial: true, mayHaveRaced: false });
  });

  it('a 412 means someone else created the object: look for theirs first', () => {
    const f = uploadFailure({ ...base, uploadError: { response: { status: 412 } } });
    expect(f).toMatchObject({ removePartial: true, mayHaveRaced: true });
    expect(f.error.message).toBe(`Archive copy to gs://b/o failed (HTTP 412) from ${WHERE}`);
  });
});

describe('DownloadGuard', () => {
  afterEach(() => void vi.useRealTimers());

  it('keeps the first reason, aborts with it, and stalls only when no chunk re-arms it in time', () => {
    vi.useFakeTimers();
    const guard = new DownloadGuard(1000, 'stalled');
    guard.arm();
    vi.advanceTimersByTime(900);
    guard.arm();
    vi.advanceTimersByTime(900);
    expect(guard.ownFailure).toBeUndefined();
    vi.advanceTimersByTime(100);
    expect(guard.ownFailure?.message).toBe('stalled');
    expect(guard.signal.aborted).toBe(true);
    guard.fail(new Error('later'));
    expect(guard.ownFailure?.message).toBe('stalled');
    guard.clear();
  });

  it('clear stops the clock and aborts what is left, with no failure of its own', () => {
    vi.useFakeTimers();
    const guard = new DownloadGuard(1000, 'stalled');
    guard.arm();
    guard.clear();
    vi.advanceTimersByTime(5000);
    expect(guard.ownFailure).toBeUndefined();
    expect(guard.signal.aborted).toBe(true);
  });
});

describe('sessionStatus: how much of an interrupted session Cloud Storage kept', () => {
  const storage = { apiEndpoint: 'http://127.0.0.1:9' } as Storage;
  const cp = { uploadUri: 'http://127.0.0.1:9/upload?upload_id=s', size: 100 };
  /** Answers the status queries with these responses in turn, counting them. */
  const answering = (...answers: Array<() => Response>): { fetchImpl: typeof fetch; asked: () => number } => {
    let n = 0;
    const fetchImpl = (async () => answers[Math.min(n++, answers.length - 1)]()) as typeof fetch;
    return { fetchImpl, asked: () => n };
  };
  const busy = () => new Response('busy', { status: 503 });
  const open = () => new Response(null, { status: 308, headers: { range: 'bytes=0-49' } });

  it('asks again while Cloud Storage answers 5xx or 429, then reads the committed range', async () => {
    const net = answering(busy, () => new Response(null, { status: 429 }), open);
    await expect(sessionStatus(storage, net.fetchImpl, cp, [0, 0, 0])).resolves.toEqual({ kind: 'open', committed: 50 });
    expect(net.asked()).toBe(3);
  });

  it('gives up after its pauses run out, naming the status', async () => {
    const net = answering(busy);
    await expect(sessionStatus(storage, net.fetchImpl, cp, [0, 0])).rejects.toThrow('Cloud Storage answered 503 to an upload status query');
    expect(net.asked()).toBe(3);
  });

  it('does not ask again about a session that is gone or complete', async () => {
    const gone = answering(() => new Response(null, { status: 404 }));
    await expect(sessionStatus(storage, gone.fetchImpl, cp, [0, 0])).resolves.toEqual({ kind: 'gone' });
    expect(gone.asked()).toBe(1);
    const done = answering(() => new Response('{}', { status: 200 }));
    await expect(sessionStatus(storage, done.fetchImpl, cp, [0, 0])).resolves.toEqual({ kind: 'complete' });
    expect(done.asked()).toBe(1);
  });
});
