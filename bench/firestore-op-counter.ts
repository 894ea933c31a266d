/**
 * Counts the billed Firestore operations of one official client, on the wire: a gRPC interceptor
 * (installed through grpc-js's `callInvocationTransformer` client option, which google-gax passes
 * on) sees every request and response message. Billing rules counted: a document get is one read
 * per document asked for (found or not), a query one read per document returned (at least one),
 * an aggregation one read, a commit one write per write in it.
 */
import { Firestore } from '@google-cloud/firestore';
import { grpc } from 'google-gax';

export interface FirestoreOpCounts {
  reads: number;
  writes: number;
}

interface CallProperties {
  methodDefinition: { path: string };
  callOptions: { interceptors?: grpc.Interceptor[] };
}

export function countingFirestore(projectId: string, emulatorHost: string): { db: Firestore; counts: FirestoreOpCounts } {
  const counts: FirestoreOpCounts = { reads: 0, writes: 0 };
  const interceptor: grpc.Interceptor = (options, nextCall) => {
    const method = options.method_definition.path.split('/').pop() ?? '';
    let documents = 0;
    return new grpc.InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        next(metadata, {
          onReceiveMessage(message: { document?: unknown }, nextMessage) {
            if (method === 'RunQuery' && message.document) documents++;
            nextMessage(message);
          },
          onReceiveStatus(status, nextStatus) {
            if (method === 'RunQuery') counts.reads += Math.max(1, documents);
            if (method === 'RunAggregationQuery') counts.reads += 1;
            nextStatus(status);
          },
        });
      },
      sendMessage(message: { documents?: unknown[]; writes?: unknown[] }, next) {
        if (method === 'BatchGetDocuments') counts.reads += message.documents?.length ?? 0;
        if (method === 'Commit') counts.writes += message.writes?.length ?? 0;
        next(message);
      },
    });
  };
  const db = new Firestore({
    projectId,
    host: emulatorHost,
    ssl: false,
    ignoreUndefinedProperties: true,
    'grpc.callInvocationTransformer': (props: CallProperties) => ({
      ...props,
      callOptions: { ...props.callOptions, interceptors: [...(props.callOptions.interceptors ?? []), interceptor] },
    }),
  });
  return { db, counts };
}
