/**
 * A local stand-in for Cloud KMS symmetric encryption (google.cloud.kms.v1.KeyManagementService,
 * Encrypt and Decrypt over plaintext gRPC), so the real `KeyManagementServiceClient` and our KMS
 * cipher run in tests. Keys live in memory: each CryptoKey has numbered versions and one primary.
 *
 * Like Cloud KMS: Encrypt takes a CryptoKey name and uses its primary version, answering the
 * version's full name; the ciphertext says which version made it, so Decrypt (given only the
 * CryptoKey name) finds the version itself and old ciphertext stays readable after a rotation.
 * A disabled or destroyed version answers FAILED_PRECONDITION; the CRC32C integrity fields are
 * checked and answered. Methods left out answer UNIMPLEMENTED.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { GrpcClient, grpc } from 'google-gax';
import { Crc32c } from '../functions/src/adapters/crc32c';
import { serveGrpc } from './grpc-stand-in';

const PROTOS_JSON = path.join(path.dirname(require.resolve('@google-cloud/kms')), '..', 'protos', 'protos.json');
const KEY_RE = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/;
/** Our ciphertext starts with this magic and the version number, then AES-256-GCM iv | body | tag. */
const MAGIC = Buffer.from('LKMS');

export interface KmsCall {
  method: 'Encrypt' | 'Decrypt';
  name: string;
  code: grpc.status;
}

export interface KmsServer {
  /** host:port (plaintext gRPC). */
  host: string;
  port: number;
  /** Creates a CryptoKey with version 1 as primary (idempotent); returns its name. */
  createKey(name: string): string;
  /** Adds a version and makes it primary; returns the new version's full name. */
  rotate(keyName: string): string;
  /** Disables one version: it neither encrypts nor decrypts. */
  disableVersion(versionName: string): void;
  calls: KmsCall[];
  stop(): Promise<void>;
}

interface KeyRecord {
  versions: Array<{ key: Buffer; enabled: boolean }>;
  primary: number;
}

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const crc = (b: Buffer): number => Number.parseInt(Buffer.from(new Crc32c().update(b).digestBase64(), 'base64').toString('hex'), 16);
/** protobufjs gives Int64Value as {value: Long | string | number}. */
const int64 = (v: { value?: unknown } | null | undefined): number | undefined => (v && v.value !== undefined && v.value !== null ? Number(String(v.value)) : undefined);
const bytes = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : v instanceof Uint8Array ? Buffer.from(v) : Buffer.alloc(0));

export async function startKmsServer(opts: { host?: string } = {}): Promise<KmsServer> {
  const keys = new Map<string, KeyRecord>();
  const calls: KmsCall[] = [];

  const keyOf = (name: string): KeyRecord => {
    if (!KEY_RE.test(name)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid CryptoKey name: ${name}`);
    const k = keys.get(name);
    if (!k) throw new RpcError(grpc.status.NOT_FOUND, `CryptoKey not found: ${name}`);
    return k;
  };

  const handlers: Record<string, (req: Record<string, unknown>) => unknown> = {
    Encrypt(req) {
      const name = String(req.name ?? '');
      const k = keyOf(name);
      const plaintext = bytes(req.plaintext);
      const aad = bytes(req.additionalAuthenticatedData);
      if (plaintext.length === 0) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'plaintext is required');
      const expectCrc = int64(req.plaintextCrc32c as { value?: unknown });
      if (expectCrc !== undefined && expectCrc !== crc(plaintext)) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'plaintext_crc32c did not match');
      const version = k.versions[k.primary - 1];
      if (!version?.enabled) throw new RpcError(grpc.status.FAILED_PRECONDITION, 'The primary version is not enabled');
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', version.key, iv);
      c.setAAD(aad);
      const body = Buffer.concat([c.update(plaintext), c.final()]);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(k.primary);
      const ciphertext = Buffer.concat([MAGIC, head, iv, body, c.getAuthTag()]);
      return {
        name: `${name}/cryptoKeyVersions/${k.primary}`,
        ciphertext,
        ciphertextCrc32c: { value: crc(ciphertext) },
        verifiedPlaintextCrc32c: expectCrc !== undefined,
        verifiedAdditionalAuthenticatedDataCrc32c: false,
        protectionLevel: 'SOFTWARE',
      };
    },
    Decrypt(req) {
      const name = String(req.name ?? '');
      const k = keyOf(name);
      const ciphertext = bytes(req.ciphertext);
      const aad = bytes(req.additionalAuthenticatedData);
      const expectCrc = int64(req.ciphertextCrc32c as { value?: unknown });
      if (expectCrc !== undefined && expectCrc !== crc(ciphertext)) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'ciphertext_crc32c did not match');
      if (ciphertext.length < 4 + 4 + 12 + 16 || !ciphertext.subarray(0, 4).equals(MAGIC)) {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Decryption failed: the ciphertext is invalid.');
      }
      const n = ciphertext.readUInt32BE(4);
      const version = k.versions[n - 1];
      if (!version) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Decryption failed: the ciphertext is invalid.');
      if (!version.enabled) throw new RpcError(grpc.status.FAILED_PRECONDITION, `${name}/cryptoKeyVersions/${n} is not enabled`);
      try {
        const d = createDecipheriv('aes-256-gcm', version.key, ciphertext.subarray(8, 20));
        d.setAAD(aad);
        d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
        const plaintext = Buffer.concat([d.update(ciphertext.subarray(20, ciphertext.length - 16)), d.final()]);
        return { plaintext, plaintextCrc32c: { value: crc(plaintext) }, usedPrimary: n === k.primary, protectionLevel: 'SOFTWARE' };
      } catch {
        // Wrong associated data or a tampered ciphertext: KMS says no more than this.
        throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Decryption failed: the ciphertext is invalid.');
      }
    },
  };

  const protos = JSON.parse(readFileSync(PROTOS_JSON, 'utf8')) as Parameters<GrpcClient['loadProtoJSON']>[0];
  const pkg = new GrpcClient().loadProtoJSON(protos) as unknown as {
    google: { cloud: { kms: { v1: { KeyManagementService: { service: grpc.ServiceDefinition } } } } };
  };
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    implementation[method] = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const name = String(call.request.name ?? '');
      try {
        const answer = handler(call.request);
        calls.push({ method: method as KmsCall['method'], name, code: grpc.status.OK });
        callback(null, answer);
      } catch (e) {
        const code = e instanceof RpcError ? e.code : grpc.status.INTERNAL;
        calls.push({ method: method as KmsCall['method'], name, code });
        callback({ code, details: e instanceof Error ? e.message : String(e) });
      }
    };
  }
  const served = await serveGrpc(pkg.google.cloud.kms.v1.KeyManagementService.service, implementation, opts.host);

  return {
    host: served.host,
    port: served.port,
    calls,
    createKey(name) {
      if (!KEY_RE.test(name)) throw new Error(`Invalid CryptoKey name: ${name}`);
      if (!keys.has(name)) keys.set(name, { versions: [{ key: randomBytes(32), enabled: true }], primary: 1 });
      return name;
    },
    rotate(keyName) {
      const k = keyOf(keyName);
      k.versions.push({ key: randomBytes(32), enabled: true });
      k.primary = k.versions.length;
      return `${keyName}/cryptoKeyVersions/${k.primary}`;
    },
    disableVersion(versionName) {
      const m = /^(.*)\/cryptoKeyVersions\/(\d+)$/.exec(versionName);
      const v = m ? keyOf(m[1] as string).versions[Number(m[2]) - 1] : undefined;
      if (!v) throw new Error(`No such version: ${versionName}`);
      v.enabled = false;
    },
    stop: served.stop,
  };
}
