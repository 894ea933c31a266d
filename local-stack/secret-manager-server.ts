/**
 * A local stand-in for Secret Manager's AccessSecretVersion (google.cloud.secretmanager.v1
 * SecretManagerService over plaintext gRPC), so the real `SecretManagerServiceClient` and our
 * secret source run in tests and `npm start`. Secrets live in memory as numbered versions.
 *
 * Like Secret Manager: `versions/latest` is the newest enabled version; an unknown secret or
 * version answers NOT_FOUND, a disabled one FAILED_PRECONDITION; the payload carries its CRC32C.
 * Every other method answers UNIMPLEMENTED.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { GrpcClient, grpc } from 'google-gax';
import { Crc32c } from '../functions/src/adapters/crc32c';
import { serveGrpc } from './grpc-stand-in';

const PROTOS_JSON = path.join(path.dirname(require.resolve('@google-cloud/secret-manager')), '..', 'protos', 'protos.json');
const SECRET_RE = /^projects\/[^/]+\/secrets\/[^/]+$/;
const VERSION_RE = /^(projects\/[^/]+\/secrets\/[^/]+)\/versions\/(\d+|latest)$/;

export interface SecretManagerServer {
  /** host:port (plaintext gRPC), for SECRET_MANAGER_EMULATOR_HOST. */
  host: string;
  /** Adds a version to `secretName` (`projects/p/secrets/s`, created on first use); returns the version's full name. */
  addVersion(secretName: string, data: string): string;
  disableVersion(versionName: string): void;
  /** Every AccessSecretVersion call's name, oldest first (tests count the reads the cache saves). */
  accessed: string[];
  stop(): Promise<void>;
}

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const crc = (b: Buffer): number => Buffer.from(new Crc32c().update(b).digestBase64(), 'base64').readUInt32BE(0);

export async function startSecretManagerServer(opts: { host?: string } = {}): Promise<SecretManagerServer> {
  const secrets = new Map<string, Array<{ data: Buffer; enabled: boolean }>>();
  const accessed: string[] = [];

  const access = (name: string): unknown => {
    const m = VERSION_RE.exec(name);
    if (!m) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid secret version name: ${name}`);
    const versions = secrets.get(m[1] as string);
    if (!versions) throw new RpcError(grpc.status.NOT_FOUND, `Secret [${m[1]}] not found or has no versions.`);
    const n = m[2] === 'latest' ? versions.map((v, i) => (v.enabled ? i + 1 : 0)).reduce((a, b) => Math.max(a, b), 0) : Number(m[2]);
    const version = versions[n - 1];
    if (!version) throw new RpcError(grpc.status.NOT_FOUND, `Secret Version [${name}] not found.`);
    if (!version.enabled) throw new RpcError(grpc.status.FAILED_PRECONDITION, `Secret Version [${m[1]}/versions/${n}] is in DISABLED state.`);
    return { name: `${m[1]}/versions/${n}`, payload: { data: version.data, dataCrc32c: crc(version.data) } };
  };

  const protos = JSON.parse(readFileSync(PROTOS_JSON, 'utf8')) as Parameters<GrpcClient['loadProtoJSON']>[0];
  const pkg = new GrpcClient().loadProtoJSON(protos) as unknown as {
    google: { cloud: { secretmanager: { v1: { SecretManagerService: { service: grpc.ServiceDefinition } } } } };
  };
  const served = await serveGrpc(pkg.google.cloud.secretmanager.v1.SecretManagerService.service, {
    AccessSecretVersion: (call: grpc.ServerUnaryCall<{ name?: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const name = String(call.request.name ?? '');
      accessed.push(name);
      try {
        callback(null, access(name));
      } catch (e) {
        callback({ code: e instanceof RpcError ? e.code : grpc.status.INTERNAL, details: e instanceof Error ? e.message : String(e) });
      }
    },
  }, opts.host);

  return {
    host: served.host,
    accessed,
    addVersion(secretName, data) {
      if (!SECRET_RE.test(secretName)) throw new Error(`Invalid secret name: ${secretName}`);
      const versions = secrets.get(secretName) ?? [];
      versions.push({ data: Buffer.from(data, 'utf8'), enabled: true });
      secrets.set(secretName, versions);
      return `${secretName}/versions/${versions.length}`;
    },
    disableVersion(versionName) {
      const m = VERSION_RE.exec(versionName);
      const v = m ? secrets.get(m[1] as string)?.[Number(m[2]) - 1] : undefined;
      if (!v) throw new Error(`No such version: ${versionName}`);
      v.enabled = false;
    },
    stop: served.stop,
  };
}
