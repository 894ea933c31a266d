/**
 * Fuzz: thousands of generated malformed or hostile requests across every route, from a seeded
 * generator (a failure names its seed and request). Every answer must be a 4xx with a JSON error,
 * none 5xx, and Firestore and the bucket must be exactly as before (full snapshots compared).
 * Then the parallel mode sends the same requests many at once: the same invariants hold, and each
 * request gets the very status it got a few at a time (an outcome never depends on timing).
 */
import http from 'node:http';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, objectNames, waitForExport, type ExportBody } from '../support/api-client';

const PROJECT = 'demo-e2e-fuzz';
const SEED = Number(process.env.FUZZ_SEED ?? 20260401);
const COUNT = 2400;

let stack: LocalStack;
let db: Firestore;
let token: string;
let exportId: string;

/** mulberry32: small, seeded, good enough to pick cases. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: PROJECT,
    jobDurationMs: 200,
    archiveBytes: 20_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 1,
    taskTimeScale: 0.2,
    logLevel: 'silent',
    // Every valid-looking start must be refused too: the limits are spent by the setup's export.
    env: { MAX_EXPORTS_PER_DAY: '1', MAX_CONCURRENT_EXPORTS: '1' },
  });
  db = new Firestore({ projectId: PROJECT });
  ({ token } = await authorizedUser(stack, 'fuzzer', ['myactivity.search', 'chrome.history']));
  const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
  exportId = (await waitForExport(stack, token, started.body.exportId)).exportId;
  // The setup's audit facts are chained right after their commits, and its export settled after
  // its last job's end (readers derive SUCCEEDED before the settle removes its marker), both in
  // the background: wait for them, so the snapshots compare what the hostile requests did and
  // nothing else.
  for (const collection of ['auditPending', 'exportSettles']) {
    for (const deadline = Date.now() + 30_000; !(await db.collection(collection).limit(1).get()).empty; ) {
      if (Date.now() > deadline) throw new Error(`the setup's ${collection} never emptied`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

afterAll(async () => {
  await db?.terminate();
  await stack?.stop();
});

async function firestoreSnapshot(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const c of await db.listCollections()) {
    for (const d of (await c.get()).docs) out[d.ref.path] = d.data();
  }
  return out;
}

async function bucketSnapshot(): Promise<Array<[string, string]>> {
  const [files] = await stack.storage.bucket(stack.config.archive.bucket).getFiles();
  return files.map((f) => [f.name, `${String(f.metadata.generation)}:${String(f.metadata.crc32c)}`] as [string, string]).sort();
}

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function isEmptyObject(body: Buffer): boolean {
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  } catch {
    return false;
  }
}

function generator(seed: number, validToken: string, knownExport: string): () => FuzzRequest {
  const r = rng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const hostile = [
    "' OR '1'='1",
    '"; DROP TABLE exports; --',
    '{"$ne": null}',
    '{"$where": "sleep(1000)"}',
    '../../etc/passwd',
    '..%2F..%2Fgrants%2Ffuzzer',
    '%00',
    '\u0000\u0001\u0002',
    '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e\u200b',
    '<script>alert(1)</script>',
    '$' + '{jndi:ldap://x}',
    '__proto__',
    'constructor',
    'x'.repeat(5000),
    '',
    ' ',
    '-1',
    '1e309',
    'NaN',
    'null',
  ];
  const ids = [
    knownExport.toUpperCase(),
    `${knownExport}0`,
    knownExport.slice(1),
    '..',
    '%2e%2e',
    '0123456789abcdef0123',
    'zzzzzzzzzzzzzzzzzzzz',
    encodeURIComponent(pick(hostile)),
    '%E2%80%AE',
    'a'.repeat(300),
  ];
  const routes = (): Array<[string, string]> => {
    const id = pick(ids);
    return [
      ['POST', '/v1/authorizations'],
      ['POST', '/v1/authorizations:reset'],
      ['POST', '/v1/exports'],
      ['GET', `/v1/exports?pageSize=${pick(['0', '101', '-1', '1.5', 'ten', '1&pageSize=2'])}`],
      ['GET', `/v1/exports/${id}`],
      ['POST', `/v1/exports/${id}:cancel`],
      ['DELETE', `/v1/exports/${id}`],
      ['POST', '/v1/schedules'],
      ['GET', `/v1/schedules/${id}`],
      ['DELETE', `/v1/schedules/${id}`],
      ['DELETE', '/v1/me'],
      [pick(['GET', 'PUT', 'POST']), `/v1/me${pick(['', '/erasure?x=1', '/erasure/x'])}`],
      [pick(['PUT', 'PATCH', 'DELETE']), '/v1/authorizations'],
      // The GET routes without a body answer 200 to a plain request: a query they do not take is refused.
      ['GET', `/v1/${pick(['authorizations', 'resource-groups'])}?${pick(['pageSize=1', `q=${encodeURIComponent(pick(hostile)).slice(0, 100)}`, 'x'])}`],
      [pick(['PUT', 'PATCH']), `/v1/exports/${knownExport}`],
      [pick(['GET', 'POST']), `/v1/${encodeURIComponent(pick(hostile)).slice(0, 200)}`],
      ['GET', `/v1/exports?pageSize=${encodeURIComponent(pick(hostile)).slice(0, 100)}&pageSize=2`],
      ['GET', `/v1/exports?pageToken=${encodeURIComponent(pick(hostile)).slice(0, 300)}`],
      ['GET', `/v1/exports?unknown=1&pageSize=1`],
    ];
  };
  const randomValue = (depth = 0): unknown => {
    const k = Math.floor(r() * (depth > 2 ? 6 : 9));
    switch (k) {
      case 0:
        return pick(hostile);
      case 1:
        return Math.floor(r() * 2 ** 40) * (r() < 0.5 ? -1 : 1);
      case 2:
        return r() < 0.5;
      case 3:
        return null;
      case 4:
        return r() * 1e300;
      case 5:
        return pick(['myactivity.search', 'chrome.history', 'not.a.group', 'MYACTIVITY.SEARCH']);
      case 6:
        return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(depth + 1));
      default:
        return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [pick(['resources', 'startTime', 'endTime', 'code', 'redirectUri', 'everyHours', '__proto__', '$where', pick(hostile)]), randomValue(depth + 1)]));
    }
  };
  const bodies = (): Buffer | undefined => {
    switch (Math.floor(r() * 12)) {
      case 0:
        return Buffer.from('{"resources": [');
      case 1:
        return Buffer.from(pick(['[]', '"str"', '42', 'null', 'true', '{}garbage', '{"a":1,}', "{'a':1}"]));
      case 2:
        return Buffer.from(JSON.stringify({ resources: [pick(hostile)] }));
      case 3:
        return Buffer.from(JSON.stringify({ resources: 'myactivity.search' }));
      case 4:
        return Buffer.from(JSON.stringify({ startTime: pick(hostile), endTime: '2020-13-45T99:99:99Z' }));
      case 5:
        return Buffer.from(JSON.stringify({ code: pick(hostile), redirectUri: pick(['javascript:alert(1)', 'http://169.254.169.254/', pick(hostile)]) }));
      case 6:
        return Buffer.alloc(16 * 1024 + 1 + Math.floor(r() * 20_000), 0x61);
      case 7:
        return Buffer.from(JSON.stringify({ resources: ['myactivity.search'], extra: pick(hostile) }));
      case 8:
        return Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0xc3, 0x28]);
      case 9:
        return undefined;
      default:
        return Buffer.from(JSON.stringify(randomValue()));
    }
  };
  const auths = (): string | undefined =>
    pick([
      undefined,
      'Bearer',
      'Bearer ',
      'Basic dXNlcjpwYXNz',
      'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJmdXp6ZXIifQ.',
      `Bearer ${validToken.slice(0, -4)}AAAA`,
      `Bearer ${validToken}x`,
      `bearer ${validToken}`,
      `Bearer ${validToken} ${validToken}`,
      `Bearer ${'A'.repeat(4000)}`,
      `Bearer ${validToken}`,
      `Bearer ${validToken}`,
      `Bearer ${validToken}`,
    ]);
  return () => {
    const [method, path] = pick(routes());
    const headers: Record<string, string> = {};
    const auth = auths();
    if (auth !== undefined) headers.Authorization = auth;
    let body = method === 'GET' && r() < 0.7 ? undefined : bodies();
    // A reset or an erasure with no body or `{}` is a valid request (it would revoke the fuzzer's grant, or erase it): draw again.
    while ((path === '/v1/authorizations:reset' || path === '/v1/me') && (body === undefined || isEmptyObject(body))) body = bodies();
    if (body !== undefined || r() < 0.2) {
      headers['Content-Type'] = pick([
        'application/json',
        'application/json; charset=utf-8',
        'application/json; charset=utf-16',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/json; charset=latin-9',
        '*/*',
      ]);
    }
    // Framed as a real client would (unframed bytes after a GET would be a second, garbage request).
    if (body !== undefined) {
      if (r() < 0.5) headers['Content-Length'] = String(body.length);
      else headers['Transfer-Encoding'] = 'chunked';
    }
    if (r() < 0.1) headers['Content-Encoding'] = pick(['gzip', 'deflate', 'br-x', 'identity']);
    if (r() < 0.1) headers['Idempotency-Key'] = pick(['k', ' spaced key ', 'x'.repeat(300), 'ключ']).replace(/[^\x20-\x7e]/g, '?');
    if (r() < 0.1) headers.Origin = pick(['https://evil.example', 'null', 'http://localhost:5173']);
    if (r() < 0.05) headers['X-Cloud-Trace-Context'] = pick(hostile).replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
    return { method, path, headers, ...(body !== undefined ? { body } : {}) };
  };
}

function send(req: FuzzRequest): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const r = http.request(stack.apiUrl + req.path, { method: req.method, headers: req.headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        agent.destroy();
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text: Buffer.concat(parts).toString('utf8') });
      });
    });
    r.on('error', (e) => {
      agent.destroy();
      reject(e);
    });
    r.end(req.body);
  });
}

interface RunResult {
  failures: string[];
  /** Status of each request, by its index in the generated list. */
  statuses: number[];
}

/** Sends every request, at most `concurrency` in flight at once, and checks each answer is a JSON 4xx. */
async function runAll(requests: FuzzRequest[], concurrency: number): Promise<RunResult> {
  const failures: string[] = [];
  const statuses: number[] = new Array<number>(requests.length).fill(0);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < requests.length; i = next++) {
      const req = requests[i] as FuzzRequest;
      const res = await send(req);
      statuses[i] = res.status;
      let json: { error?: { code?: unknown; message?: unknown } } | undefined;
      try {
        json = JSON.parse(res.text) as typeof json;
      } catch {
        json = undefined;
      }
      const ok = res.status >= 400 && res.status < 500 && /application\/json/.test(res.type) && typeof json?.error?.code === 'string' && typeof json.error.message === 'string';
      if (!ok) failures.push(`#${i} ${req.method} ${req.path.slice(0, 120)} ${JSON.stringify(Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, v.slice(0, 40)])))} -> ${res.status} ${res.text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { failures, statuses };
}

const histogram = (statuses: number[]): string => JSON.stringify(Object.entries(statuses.reduce<Record<number, number>>((h, s) => ({ ...h, [s]: (h[s] ?? 0) + 1 }), {})));

/** How many requests the parallel mode keeps in flight at once. */
const PARALLEL = 100;

describe.sequential('API fuzz', () => {
  let oneByOne: number[] | undefined;

  it(`answers ${COUNT} hostile requests (seed ${SEED}) with JSON 4xx and changes nothing`, async () => {
    const firestoreBefore = await firestoreSnapshot();
    const bucketBefore = await bucketSnapshot();
    expect(Object.keys(firestoreBefore).length).toBeGreaterThan(3);
    expect(bucketBefore.length).toBe(2);

    const requests = Array.from({ length: COUNT }, generator(SEED, token, exportId));
    // A few at a time: enough concurrency to be quick on two cores, not so much that it's a load test.
    const { failures, statuses } = await runAll(requests, 8);
    oneByOne = statuses;
    expect(failures.slice(0, 10), `seed ${SEED}; statuses ${histogram(statuses)}`).toEqual([]);
    expect(await firestoreSnapshot()).toEqual(firestoreBefore);
    expect(await bucketSnapshot()).toEqual(bucketBefore);
    expect(await objectNames(stack, 'fuzzer/')).toHaveLength(2);
  });

  it(`parallel mode: the same ${COUNT} requests, ${PARALLEL} at once, end exactly as they did a few at a time`, async () => {
    // The answers to compare with are the previous test's (same seed, same requests).
    expect(oneByOne, 'run the whole file: this mode compares with the one before').toHaveLength(COUNT);
    const firestoreBefore = await firestoreSnapshot();
    const bucketBefore = await bucketSnapshot();
    const requests = Array.from({ length: COUNT }, generator(SEED, token, exportId));
    const { failures, statuses } = await runAll(requests, PARALLEL);
    expect(failures.slice(0, 10), `seed ${SEED}; statuses ${histogram(statuses)}`).toEqual([]);
    const differing = statuses.flatMap((s, i) => (s === oneByOne?.[i] ? [] : [`#${i} ${requests[i]?.method} ${requests[i]?.path.slice(0, 80)}: ${oneByOne?.[i]} then ${s}`]));
    expect(differing.slice(0, 10)).toEqual([]);
    expect(await firestoreSnapshot()).toEqual(firestoreBefore);
    expect(await bucketSnapshot()).toEqual(bucketBefore);
    expect(await objectNames(stack, 'fuzzer/')).toHaveLength(2);
  });
});
