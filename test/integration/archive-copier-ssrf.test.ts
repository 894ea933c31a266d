/**
 * SSRF: the copier refuses hosts that resolve to private, loopback, link-local or unique-local
 * addresses in production, on top of the host allow-list, https-only and no redirects. Resolution
 * is handed in, so the test controls what an allowed host "resolves" to; bytes then really flow
 * from a local source into the Cloud Storage stand-in when the address is public.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertPublicHost, isPublicAddress, type HostLookup } from '../../functions/src/adapters/address-guard';
import { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import { ArchiveRejectedError } from '../../functions/src/domain/errors';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { removeFixtures, startArchiveHttpServer, writeArchiveFixture, type ArchiveFixture, type ArchiveHttpServer } from '../support/archive-http-server';

const BUCKET = 'archive-ssrf-test';
const HOST = 'storage.example.test';

let gcs: GcsServer;
let source: ArchiveHttpServer;
let storage: Storage;
let dir: string;
let fixture: ArchiveFixture;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'archive-ssrf-'));
  [gcs, source] = await Promise.all([startGcsServer(), startArchiveHttpServer()]);
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-archive-ssrf' });
  await storage.bucket(BUCKET).create();
  fixture = await writeArchiveFixture(dir, 'a.zip', 200_000);
  source.serve('/a.zip', { fixture });
});

afterAll(async () => {
  await Promise.all([gcs?.stop(), source?.stop()]);
  if (dir) await removeFixtures(dir);
});

/** A production copier (https only, address check on) whose "network" is the local source. */
function productionCopier(resolvesTo: string[]): { copier: CloudStorageArchiveCopier; fetched: string[] } {
  const fetched: string[] = [];
  const lookup: HostLookup = async () => resolvesTo.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  const fetchImpl: typeof fetch = (input, init) => {
    const u = new URL(String(input));
    fetched.push(u.hostname);
    // Stands in for TLS to the allowed host: the bytes come from the local source.
    return fetch(`${source.origin}${u.pathname}${u.search}`, init);
  };
  const copier = new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [HOST], allowHttp: false, lookup, fetchImpl });
  return { copier, fetched };
}

describe('isPublicAddress', () => {
  it.each([
    '127.0.0.1',
    '127.5.6.7',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    '::ffff:127.0.0.1',
    '::ffff:169.254.169.254',
    '::ffff:7f00:1',
    '64:ff9b::a00:1',
    '2002:c0a8:0101::1',
    'ff02::1',
    'not-an-ip',
  ])('refuses %s', (ip) => expect(isPublicAddress(ip)).toBe(false));

  it.each(['142.250.74.16', '8.8.8.8', '172.32.0.1', '2607:f8b0:4004:c1b::80', '::ffff:8.8.8.8'])('accepts %s', (ip) => expect(isPublicAddress(ip)).toBe(true));
});

describe('assertPublicHost', () => {
  const refuse = (reason: string) => new ArchiveRejectedError(reason);
  it('refuses when any one of the addresses is private', async () => {
    await expect(assertPublicHost('h', async () => [{ address: '8.8.8.8', family: 4 }, { address: '10.0.0.1', family: 4 }], refuse)).rejects.toThrow(/non-public address \(10\.0\.0\.1\)/);
  });
  it('refuses a name that does not resolve, and checks IP literals as they are', async () => {
    await expect(assertPublicHost('h', async () => [], refuse)).rejects.toThrow(/did not resolve/);
    await expect(assertPublicHost('h', async () => Promise.reject(new Error('ENOTFOUND')), refuse)).rejects.toThrow(/did not resolve/);
    await expect(assertPublicHost('[::1]', async () => [{ address: '8.8.8.8', family: 4 }], refuse)).rejects.toThrow(/non-public/);
  });
});

describe('the copier in production', () => {
  it('copies from an allowed host whose addresses are all public', async () => {
    const { copier, fetched } = productionCopier(['142.250.74.16', '2607:f8b0:4004:c1b::80']);
    const stored = await copier.copy(`https://${HOST}/a.zip?X-Goog-Signature=abc`, 'public/a.zip');
    expect(stored.crc32c).toBe(fixture.crc32c);
    expect(fetched).toEqual([HOST]);
  });

  it.each([['127.0.0.1'], ['10.0.0.7'], ['169.254.169.254'], ['fd00::1'], ['142.250.74.16', '192.168.0.10']])(
    'refuses an allowed host resolving to %s before any request, and writes nothing',
    async (...addresses) => {
      const { copier, fetched } = productionCopier(addresses);
      const name = `private/${addresses.join('_')}.zip`;
      const err = await copier.copy(`https://${HOST}/a.zip?X-Goog-Signature=secret-sig`, name).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ArchiveRejectedError);
      expect((err as Error).message).toMatch(/non-public address/);
      expect((err as Error).message).not.toContain('secret-sig');
      expect(fetched).toEqual([]);
      expect((await storage.bucket(BUCKET).file(name).exists())[0]).toBe(false);
    },
  );

  it('still refuses http, other hosts and IP literals of the metadata server', async () => {
    const { copier, fetched } = productionCopier(['142.250.74.16']);
    await expect(copier.copy(`http://${HOST}/a.zip`, 'x/1.zip')).rejects.toThrow(/scheme/);
    await expect(copier.copy('https://169.254.169.254/computeMetadata/v1/', 'x/2.zip')).rejects.toThrow(/allowed hosts/);
    expect(fetched).toEqual([]);
  });
});

describe('the download itself (node:http), not just the check before it', () => {
  /**
   * DNS rebinding: the host resolves to a public address when the copier checks it, then to
   * loopback when the download connects. The connect-time lookup is checked too, so nothing is
   * fetched: the local source, where loopback leads, sees no request.
   */
  it('refuses an address that changed to a private one between the check and the connection', async () => {
    const answers = [['93.184.216.34'], ['127.0.0.1']];
    const asked: string[] = [];
    const lookup: HostLookup = async (hostname) => {
      asked.push(hostname);
      const next = answers.length > 1 ? answers.shift() : answers[0];
      return (next ?? []).map((address) => ({ address, family: 4 }));
    };
    const port = new URL(source.origin).port;
    // http so the test needs no certificate; the address check is on as in production.
    const copier = new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [`${HOST}:${port}`], allowHttp: true, refusePrivateAddresses: true, lookup });
    const before = source.requests.length;
    const err = await copier.copy(`http://${HOST}:${port}/a.zip?X-Goog-Signature=abc`, 'rebind/a.zip').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveRejectedError);
    expect((err as Error).message).toMatch(/non-public address \(127\.0\.0\.1\)/);
    expect((err as Error).message).not.toContain('abc');
    expect(asked).toEqual([HOST, HOST]); // once for the check, once when connecting
    expect(source.requests.length).toBe(before);
    expect((await storage.bucket(BUCKET).file('rebind/a.zip').exists())[0]).toBe(false);
  });
});
