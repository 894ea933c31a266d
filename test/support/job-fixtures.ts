/** Jobs and job runners for tests that drive the runner directly against the Firestore store. */
import { randomBytes } from 'node:crypto';
import type { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import type { SecretCipher } from '../../functions/src/domain/ports/secret-cipher';
import { createLogger } from '../../functions/src/logging';
import { AccessTokens } from '../../functions/src/pipeline/access-tokens';
import { JobRunner, type JobRunnerDeps } from '../../functions/src/pipeline/job-runner';

/** A runner with a refresh-only token client, a copier that must not be used, and silent logs. */
export function testRunner(store: FirestoreExportStore, cipher: SecretCipher, api: PortabilityApi, over: Partial<JobRunnerDeps> = {}): JobRunner {
  const tokens = new AccessTokens(store, async () => cipher, async () => ({ exchangeCode: async () => { throw new Error('unused'); }, refresh: async () => ({ accessToken: 'ya29.t', expiresAt: Date.now() + 3_600_000 }) }));
  return new JobRunner({
    store,
    api,
    tokens,
    queue: { enqueue: async () => undefined },
    copier: async () => ({ copy: async () => { throw new Error('unused'); }, deletePrefix: async () => 0 }),
    policy: { initialSeconds: 300, maxSeconds: 3600 },
    maxArchiveRetries: 3,
    cipher,
    copySliceSeconds: 60,
    copyChunkBytes: 262_144,
    logger: createLogger({ level: 'silent' }),
    ...over,
  });
}

/** A user with an active grant and one export whose only job waits on Google's archive job `g1`. */
export async function waitingJob(store: FirestoreExportStore, cipher: SecretCipher, userId: string, over: Partial<Job> = {}): Promise<Job> {
  await store.putGrant({ userId, refreshToken: await cipher.encrypt('1//r', userId), resources: ['myactivity.search'], oneTimeResources: [], timeBasedResources: [], state: 'ACTIVE', createdAt: 0, updatedAt: 0 });
  const exportId = randomBytes(10).toString('hex');
  const job: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'myactivity.search' }, Date.now()), state: 'WAITING', seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'], ...over };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['myactivity.search'], createdAt: Date.now(), updatedAt: Date.now() }, [job]);
  return job;
}
