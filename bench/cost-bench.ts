/**
 * Benchmark 6: what one export of one resource group costs through its whole life, counted on the
 * local stack: function invocations, Firestore document reads/writes (counted by the store's own
 * Firestore client, per request), Cloud Tasks operations and Data Portability API calls; priced for
 * 1,000 and 1,000,000 exports at list prices.
 */
import { countingFirestore } from './firestore-op-counter';
import { startFirestoreEmulator } from '../local-stack/firestore-emulator';
import { startLocalStack } from '../local-stack/local-stack';
import { api, authorizedUser, type ExportBody } from '../test/support/api-client';
import type { BenchRow, Log } from './bench-types';

/** USD list prices assumed (checked against the pricing pages in November 2025; free tiers ignored). */
export const PRICES = {
  firestoreReadPer100k: 0.06, // Firestore multi-region (nam5/eur3) document reads
  firestoreWritePer100k: 0.18, // document writes
  tasksOpPerMillion: 0.4, // Cloud Tasks: an API call or a push delivery attempt
  invocationPerMillion: 0.4, // Cloud Functions invocations (compute time not included)
  portabilityApiCall: 0, // the Data Portability API has no published per-call price
};

export interface ExportCost {
  invocations: number;
  apiRequests: number;
  taskDeliveries: number;
  tasksCreated: number;
  firestoreReads: number;
  firestoreWrites: number;
  portabilityCalls: number;
}

export async function measureExportCost(log: Log): Promise<ExportCost> {
  const projectId = 'demo-bench-cost';
  // The store gets a Firestore client of our own so its operations, and only its, are counted.
  const emulator = await startFirestoreEmulator();
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  // Billed reads and writes, counted on the wire of the store's own client.
  const { db, counts: fs } = countingFirestore(projectId, emulator.host);
  const stack = await startLocalStack({
    projectId,
    firestoreEmulatorHost: emulator.host,
    jobDurationMs: 1500,
    archiveBytes: 200_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.5,
    logLevel: 'silent',
    overrides: { firestore: db },
  });
  try {
    const user = await authorizedUser(stack, 'cost-user', ['myactivity.search']);
    const t0 = { reads: fs.reads, writes: fs.writes, deliveries: stack.tasks.deliveries.length, calls: stack.portability.calls.length };
    const started = await api<ExportBody>(stack, user.token, 'POST', '/v1/exports', {});
    if (started.status !== 202) throw new Error(`start answered ${started.status}`);
    // Our own status polling, counted, so its reads can be taken out of the pipeline's.
    let polls = 0;
    let done: ExportBody | undefined;
    for (const deadline = Date.now() + 45_000; Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 500));
      polls++;
      const res = await api<ExportBody>(stack, user.token, 'GET', `/v1/exports/${started.body.exportId}`);
      if (res.body.state !== 'RUNNING') {
        done = res.body;
        break;
      }
    }
    if (done?.state !== 'SUCCEEDED') throw new Error(`export ended ${done?.state ?? 'never'}`);
    // Let the last task's answer land.
    await new Promise((r) => setTimeout(r, 300));
    const t1 = { reads: fs.reads, writes: fs.writes };
    await api(stack, user.token, 'GET', `/v1/exports/${started.body.exportId}`);
    const perGet = { reads: fs.reads - t1.reads, writes: fs.writes - t1.writes };
    const deliveries = stack.tasks.deliveries.slice(t0.deliveries);
    const cost: ExportCost = {
      // start + one status read by the frontend + every task delivery
      invocations: 2 + deliveries.length,
      apiRequests: 2,
      taskDeliveries: deliveries.length,
      tasksCreated: new Set(deliveries.map((d) => d.taskName)).size,
      firestoreReads: t1.reads - t0.reads - (polls - 1) * perGet.reads,
      firestoreWrites: t1.writes - t0.writes - (polls - 1) * perGet.writes,
      portabilityCalls: stack.portability.calls.length - t0.calls,
    };
    log(`  one export: ${JSON.stringify(cost)} (status read: ${perGet.reads} reads; ${polls} polls taken out)`);
    return cost;
  } finally {
    await stack.stop();
    await db.terminate();
    await emulator.stop();
  }
}

const usd = (x: number): string => (x < 0.01 ? `$${x.toFixed(4)}` : `$${x.toFixed(2)}`);

/** Per-export price at list prices (free tiers ignored). */
export function exportPrice(c: ExportCost): number {
  return (
    (c.firestoreReads * PRICES.firestoreReadPer100k) / 1e5 +
    (c.firestoreWrites * PRICES.firestoreWritePer100k) / 1e5 +
    ((c.tasksCreated + c.taskDeliveries) * PRICES.tasksOpPerMillion) / 1e6 +
    (c.invocations * PRICES.invocationPerMillion) / 1e6 +
    c.portabilityCalls * PRICES.portabilityApiCall
  );
}

export function costRows(c: ExportCost): BenchRow[] {
  const per = exportPrice(c);
  return [
    {
      bench: '6 cost per export',
      name: 'one export of one resource group: invocations / Firestore reads / writes / Tasks ops / API calls',
      value: `${c.invocations} / ${c.firestoreReads} / ${c.firestoreWrites} / ${c.tasksCreated + c.taskDeliveries} / ${c.portabilityCalls}`,
      baseline: `(${c.apiRequests} API requests + ${c.taskDeliveries} task deliveries; ${c.tasksCreated} CreateTask)`,
    },
    { bench: '6 cost per export', name: '1,000 exports at list prices (compute time excluded)', value: usd(per * 1e3) },
    { bench: '6 cost per export', name: '1,000,000 exports at list prices (compute time excluded)', value: usd(per * 1e6) },
  ];
}
