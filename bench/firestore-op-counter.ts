/**
 * Counts the billed Firestore operations of one official client, on the wire: a gRPC interceptor
 * (installed through grpc-js's `callInvocationTransformer` client option, which google-gax passes
 * on) sees every request and response message. Billing rules counted: a document get is one read
 * per document asked for (found or not), a query one read per document returned (at least one),
 * an aggregation one read, a commit one write per write in it. Contention is counted too: calls
 * the server answered ABORTED, and transactions the client began again as a retry of an earlier
 * one (a `retryTransaction` in the request).
 */
import { Firestore } from '@google-cloud/firestore';
import { grpc } from 'google-gax';

export interface FirestoreOpCounts {
  reads: number;
  writes: number;
  /** Read-write transactions begun (retries included). */
  transactions: number;
  /** Calls answered ABORTED (a transaction that lost to another). */
  aborted: number;
  /** Transactions begun again by the client as a retry of an aborted one. */
  retries: number;
}

interface TransactionOptions {
  readWrite?: { retryTransaction?: unknown };
}

const [INVALID_ARGUMENT, ABORTED] = [3, 10];

interface CallProperties {
  methodDefinition: { path: string };
  callOptions: { interceptors?: grpc.Interceptor[] };
}

export function countingFirestore(projectId: string, emulatorHost: string): { db: Firestore; counts: FirestoreOpCounts } {
  const counts: FirestoreOpCounts = { reads: 0, writes: 0, transactions: 0, aborted: 0, retries: 0 };
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
            // The emulator also closes a transaction it aborted for another: INVALID_ARGUMENT.
            if (status.code === ABORTED || (status.code === INVALID_ARGUMENT && /transaction/i.test(status.details))) counts.aborted++;
            nextStatus(status);
          },
        });
      },
      sendMessage(message: { documents?: unknown[]; writes?: unknown[]; options?: TransactionOptions; newTransaction?: TransactionOptions }, next) {
        // BeginTransaction carries `options`; a read that starts its transaction, `newTransaction`.
        const begun = message.options ?? message.newTransaction;
        if (begun) counts.transactions++;
        const retried = begun?.readWrite?.retryTransaction;
        if (retried && (!(retried instanceof Uint8Array) || retried.length > 0)) counts.retries++;
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
