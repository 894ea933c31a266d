/**
 * Benchmark 7 (issue 11, item 1): a GET's latency while 8 MB bodies are being sent to the same
 * function, beside its latency alone, on the local stack (client and functions in this one
 * process, as in the e2e tests). The refused bodies are discarded as they arrive and never parsed,
 * so the GET should answer within 100 ms of its usual time. Before the body guard the framework
 * parsed each body first: p50 107 ms, max 2.6 s on the same machine.
 */
import { startFirestoreEmulator } from '../local-stack/firestore-emulator';
import { startLocalStack } from '../local-stack/local-stack';
import { api } from '../test/support/api-client';
import { slowUpload } from '../test/support/slow-upload';
import type { BenchRow, Log } from './bench-types';

const EIGHT_MB = 8 * 1024 * 1024;

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
}

export async function runUploadBench(opts: { gets: number; log: Log; firestoreEmulatorHost?: string }): Promise<BenchRow[]> {
  const emulator = opts.firestoreEmulatorHost ? undefined : await startFirestoreEmulator();
  const stack = await startLocalStack({ projectId: 'demo-bench-uploads', firestoreEmulatorHost: opts.firestoreEmulatorHost ?? emulator!.host, logLevel: 'silent' });
  try {
    const token = await stack.idToken('bench-user');
    const timedGets = async (): Promise<number[]> => {
      const ms: number[] = [];
      for (let i = 0; i < opts.gets; i++) {
        const t = performance.now();
        const res = await api(stack, token, 'GET', '/v1/exports');
        if (res.status !== 200) throw new Error(`GET answered ${res.status}`);
        ms.push(performance.now() - t);
      }
      return ms;
    };
    await timedGets(); // warm: keys fetched, Firestore connection open
    const alone = await timedGets();
    // Each GET is sent while one 8 MB body (Content-Length and chunked in turn) is on its way.
    const during: number[] = [];
    for (let i = 0; i < opts.gets; i++) {
      const u = slowUpload(`${stack.apiUrl}/v1/exports`, { size: EIGHT_MB, chunked: i % 2 === 1, headers: { Authorization: `Bearer ${token}` } });
      const t = performance.now();
      const res = await api(stack, token, 'GET', '/v1/exports');
      during.push(performance.now() - t);
      const a = await u.answer;
      u.abort();
      if (res.status !== 200 || a.status !== 413) throw new Error(`GET answered ${res.status}, the 8 MB body ${a.status}`);
    }
    const [p50Alone, p50During, p90During, maxDuring] = [percentile(alone, 0.5), percentile(during, 0.5), percentile(during, 0.9), Math.max(...during)];
    opts.log(`  GET alone p50 ${p50Alone.toFixed(1)} ms; beside an 8 MB body p50 ${p50During.toFixed(1)} ms, p90 ${p90During.toFixed(1)} ms, max ${maxDuring.toFixed(1)} ms`);
    return [
      {
        bench: '7 hostile uploads',
        name: `GET /v1/exports sent beside an 8 MB body of \`[\` (refused with 413): p50, p90 (max) of ${opts.gets}`,
        value: `${p50During.toFixed(1)} ms, ${p90During.toFixed(1)} ms (max ${maxDuring.toFixed(1)} ms)`,
        baseline: `alone ${p50Alone.toFixed(1)} ms`,
        ratio: p50During / p50Alone,
        goal: 'p90 within 100 ms of alone',
        pass: p90During - p50Alone <= 100,
      },
    ];
  } finally {
    await stack.stop();
    await emulator?.stop();
  }
}
