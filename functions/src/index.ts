/**
 * Entry points, registered with the Functions Framework. Each deployed function runs one target;
 * configuration is parsed on first use (a bad environment fails loudly, listing every problem).
 */
import * as ff from '@google-cloud/functions-framework';
import { createComposition, type Composition } from './composition-root';
import { parseConfig } from './config';
import { installRequestBodyGuard } from './http/request-body-guard';

// Before the framework builds its server: bodies are then read only up to 16 KB, and malformed ones reach our handlers, which answer JSON.
installRequestBodyGuard();

let composition: Composition | undefined;
const app = (): Composition => (composition ??= createComposition(parseConfig(process.env)));

// A cold start: Cloud Functions names the target in FUNCTION_TARGET. Start fetching what its first
// request needs (signing keys, a Firestore connection) while the framework finishes starting. A bad
// environment is left to the first request, which answers with the list of problems.
const target = process.env.FUNCTION_TARGET;
if (target) {
  try {
    const c = app();
    c.warmUp(target).catch((e: unknown) => c.logger.debug({ err: e }, 'warm-up failed; the first request retries'));
  } catch {
    // parseConfig failed: reported on the first request
  }
}

/** Public HTTPS API for browser frontends. */
ff.http('api', (req, res) => app().api(req, res));
/** Cloud Tasks: initiate archive jobs and check their state. */
ff.http('checkArchiveJob', (req, res) => app().checkArchiveJob(req, res));
/** Cloud Tasks: copy a completed job's archives into the bucket. */
ff.http('copyArchives', (req, res) => app().copyArchives(req, res));
/** Cloud Scheduler: re-enqueue jobs whose next step is overdue (lost tasks, dead copies). */
ff.http('sweepJobs', (req, res) => app().sweepJobs(req, res));
/** Cloud Scheduler (a tick: fan out due schedules) and Cloud Tasks (one scheduled run each). */
ff.http('runSchedules', (req, res) => app().runSchedules(req, res));
/** Cloud Tasks: deliver one event to one webhook endpoint, signed (Standard Webhooks). */
ff.http('deliverWebhooks', (req, res) => app().deliverWebhooks(req, res));
