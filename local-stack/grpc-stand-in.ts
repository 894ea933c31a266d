/** Serving one Google API service of a stand-in over plaintext gRPC (the KMS and Secret Manager stand-ins). */
import { grpc } from 'google-gax';

export interface GrpcStandIn {
  /** host:port */
  host: string;
  port: number;
  /** A graceful shutdown, forced after a second. */
  stop(): Promise<void>;
}

export async function serveGrpc(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation, bindHost = '127.0.0.1'): Promise<GrpcStandIn> {
  const server = new grpc.Server();
  server.addService(service, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${bindHost}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    host: `${bindHost}:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}
