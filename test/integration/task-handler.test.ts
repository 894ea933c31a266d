/**
 * The Cloud Tasks handler's one table, on the real Firestore store: a transient failure answers
 * 500 (retry), a throttle 503 with Retry-After, and once the task's retry budget is spent the
 * failure is recorded on the job (RETRY_BUDGET_EXHAUSTED) and answered 200 so Cloud Tasks stops.
 */
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import type { Job } from '../../functions/src/domain/model';
import { PortabilityApiError } from '../../functions/src/domain/errors';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import type { HttpRequest, HttpResponse } from '../../functions/src/http/http-types';
import { createTaskHandler } from '../../functions/src/http/task-handler';
import { createLogger } from '../../functions/src/logging';
import { testRunner, waitingJob } from '../support/job-fixtures';

let db: Firestore;
let store: FirestoreExportStore;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
let nextError: unknown;

const api: PortabilityApi = {
  initiate: async () => ({ archiveJobId: 'g1', accessType: 'ACCESS_TYPE_ONE_TIME' }),
  getState: async () => {
    throw nextError;
  },
  retry: async () => ({ archiveJobId: 'g2' }),
  cancel: async () => undefined,
  resetAuthorization: async () => undefined,
  checkAccessType: async () => ({ oneTimeResources: [], timeBasedResources: [] }),
};

function handler() {
  const runner = testRunner(store, cipher, api);
  const verifier = { check: async () => undefined };
  return createTaskHandler({ runner, verifier, steps: ['initiate', 'check'], retryBudget: 5, projectId: 'demo-task-handler', logger: createLogger({ level: 'silent' }) });
}

async function deliver(job: Job, retryCount: number): Promise<{ status: number; headers: Record<string, string>; body: unknown }> {
  const out = { status: 0, headers: {} as Record<string, string>, body: undefined as unknown };
  const res: HttpResponse = {
    status(code) {
      out.status = code;
      return res;
    },
    set(field, value) {
      out.headers[field.toLowerCase()] = value;
      return res;
    },
    json(body) {
      out.body = body;
    },
    send(body) {
      out.body = body;
    },
    end() {},
    headersSent: false,
  };
  const req: HttpRequest = {
    method: 'POST',
    path: '/',
    headers: { authorization: 'Bearer x', 'x-cloudtasks-taskretrycount': String(retryCount) },
    query: {},
    body: { jobId: job.id, step: 'check', seq: job.seq },
  };
  await handler()(req, res);
  return out;
}

const waiting = (userId: string): Promise<Job> => waitingJob(store, cipher, userId);

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId: 'demo-task-handler', ignoreUndefinedProperties: true });
  // The store has its own client (as a function does); the test reads what it wrote through another.
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-task-handler' }));
});

afterAll(async () => {
  await db?.terminate();
});

describe('the task handler table', () => {
  it('answers 500 to a transient failure, leaving the job as it was', async () => {
    const job = await waiting('transient');
    nextError = new PortabilityApiError(500, 'INTERNAL', 'backend error');
    expect((await deliver(job, 0)).status).toBe(500);
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'WAITING', seq: 1 });
  });

  it('answers 503 with Retry-After when Google asks to slow down', async () => {
    const job = await waiting('throttled');
    nextError = new PortabilityApiError(429, 'RESOURCE_EXHAUSTED', 'quota', undefined, {}, 120);
    const res = await deliver(job, 0);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('120');
  });

  it('records RETRY_BUDGET_EXHAUSTED and answers 200 once the budget is spent', async () => {
    const job = await waiting('exhausted');
    nextError = new PortabilityApiError(500, 'INTERNAL', 'backend error');
    expect((await deliver(job, 3)).status).toBe(500);
    const last = await deliver(job, 4);
    expect(last.status).toBe(200);
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'FAILED', error: { code: 'RETRY_BUDGET_EXHAUSTED' } });
    expect((await db.doc(`exports/${job.exportId}`).get()).data()).toMatchObject({ state: 'FAILED' });
    // A further delivery finds the job finished and is dropped.
    expect((await deliver(job, 5)).status).toBe(200);
  });
});
