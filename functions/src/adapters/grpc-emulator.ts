/**
 * Client options for a Google API stand-in that speaks plaintext gRPC on `host:port` (the local
 * stack's Cloud Tasks, KMS and Secret Manager servers): no TLS, no credentials sent.
 */
import { grpc } from 'google-gax';

export function grpcEmulatorOptions(emulatorHost: string, what: string): { apiEndpoint: string; port: number; sslCreds: grpc.ChannelCredentials } {
  const colon = emulatorHost.lastIndexOf(':');
  const port = Number(emulatorHost.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0) throw new Error(`${what} must be host:port, got "${emulatorHost}"`);
  // grpc must be google-gax's own copy: credentials from another @grpc/grpc-js are rejected.
  return { apiEndpoint: emulatorHost.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port, sslCreds: grpc.credentials.createInsecure() };
}
