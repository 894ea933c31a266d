/**
 * The copier's decisions that need no bucket and no server: what a source's status means, what its
 * headers declare, whether bytes or a stored object are the source's archive, and what a failed
 * upload becomes. The integration tests drive the same functions end to end.
 */
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FileMetadata } from '@google-cloud/storage';
import { DownloadGuard } from '../../functions/src/adapters/download-guard';
import { uploadFailure } from '../../functions/src/adapters/resumable-upload';
import { declaredFacts, describe as describeUrl, parseGoogHash, sourceStatusError, type SourceResponse } from '../../functions/src/adapters/signed-url-source';
import { matchesSource, sameArchive, sameSource } from '../../functions/src/adapters/stored-archive';
import { ArchiveRejectedError, ArchiveUrlExpiredError, CopyInterruptedError, type ArchiveFacts } from '../../functions/src/domain/ports';

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
    expect(declaredFacts(answer(206, { 'content-length': '5', 'content-range': 'bytes 0-4/*' })).size).toBeUndefined();
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
  });

  it('bytes received: every declaration that was computed must agree', () => {
    expect(matchesSource(10, {}, src({ size: 10 }))).toBe(true);
    expect(matchesSource(9, {}, src({ size: 10 }))).toBe(false);
    expect(matchesSource(9, {}, src({}))).toBe(true);
    expect(matchesSource(10, { crc32c: 'c' }, src({ crc32c: 'c' }))).toBe(true);
    expect(matchesSource(10, { crc32c: 'x' }, src({ crc32c: 'c' }))).toBe(false);
    expect(matchesSource(10, {}, src({ crc32c: 'c' }))).toBe(true);
    expect(matchesSource(10, { md5: 'x' }, src({ md5: 'm' }))).toBe(false);
    expect(matchesSource(10, { md5: 'm' }, src({ md5: 'm' }))).toBe(true);
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
