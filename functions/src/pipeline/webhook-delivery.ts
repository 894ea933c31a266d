/**
 * One attempt to deliver an event to a webhook endpoint (a Cloud Task of the webhook queue):
 * sign it with the endpoint's secret at this attempt's time, POST it, and say what Cloud Tasks
 * should do. A 2xx is delivered; a redirect or a refused address will never succeed and is given up
 * at once; anything else (another status, a timeout, a network error) is retried by the queue's
 * backoff until the bounded number of attempts, then given up. Both ends are recorded.
 */
import type { PipelineEvent } from '../domain/events';
import type { SecretSource, WebhookDeliveryLog, WebhookDeliveryRecord, WebhookDeliveryTask, WebhookEndpoint, WebhookPost, WebhookPostResult } from '../domain/ports/webhooks';
import { cloudEventBody, signWebhook, webhookKey } from '../domain/webhook-message';
import type { Logger } from '../logging';
import type { TaskOutcome } from './task-outcome';

export interface WebhookDeliveryDeps {
  endpoints: readonly WebhookEndpoint[];
  secrets: () => Promise<SecretSource>;
  post: WebhookPost;
  log: WebhookDeliveryLog;
  maxAttempts: number;
  logger: Logger;
  now: () => number;
}

export class WebhookDelivery {
  constructor(private readonly deps: WebhookDeliveryDeps) {}

  /** `attempt` is 1-based (Cloud Tasks' retry count + 1). */
  async deliver(task: WebhookDeliveryTask, attempt: number): Promise<TaskOutcome> {
    const endpoint = this.deps.endpoints.find((e) => e.id === task.endpointId);
    if (!endpoint) return { kind: 'dropped', detail: `no endpoint ${task.endpointId} is configured any more` };
    const log = this.deps.logger.child({ endpointId: endpoint.id, eventId: task.event.id, attempt });
    const result = await this.attempt(endpoint, task.event);
    const status = result.kind === 'answered' ? result.status : undefined;
    if (status !== undefined && status >= 200 && status < 300) {
      await this.record(task.event, endpoint, 'DELIVERED', attempt, status);
      log.info({ status }, 'webhook delivered');
      return { kind: 'done', detail: `delivered (${status})` };
    }
    const reason = result.kind === 'answered' ? `answered ${result.status}` : result.reason;
    const permanent = result.kind === 'refused' || (status !== undefined && status >= 300 && status < 400);
    if (permanent || attempt >= this.deps.maxAttempts) {
      const why = permanent && result.kind === 'answered' ? `${reason}: redirects are not followed` : reason;
      await this.record(task.event, endpoint, 'GAVE_UP', attempt, status, why);
      log.error({ status, reason: why }, 'webhook delivery given up');
      return { kind: 'done', detail: `given up after ${attempt} attempts: ${why}` };
    }
    log.warn({ status, reason }, 'webhook delivery failed; Cloud Tasks retries it');
    return { kind: 'retry', detail: reason };
  }

  /** Signs at this attempt's time and POSTs. A secret that cannot be read (or is not a whsec_ secret) fails the attempt like a network error. */
  private async attempt(endpoint: WebhookEndpoint, event: PipelineEvent): Promise<WebhookPostResult> {
    let key: Buffer;
    try {
      key = webhookKey(await (await this.deps.secrets()).access(endpoint.secret));
    } catch (err) {
      this.deps.logger.error({ err, endpointId: endpoint.id }, 'webhook secret unavailable');
      return { kind: 'failed', reason: 'the endpoint secret could not be read' };
    }
    const body = cloudEventBody(event);
    const headers = { 'content-type': 'application/cloudevents+json; charset=utf-8', 'user-agent': 'portability-pipeline-webhooks', ...signWebhook(key, event.id, this.deps.now(), body) };
    return this.deps.post(new URL(endpoint.url), headers, body);
  }

  private async record(event: PipelineEvent, endpoint: WebhookEndpoint, state: WebhookDeliveryRecord['state'], attempts: number, lastStatus?: number, lastError?: string): Promise<void> {
    await this.deps.log.record({
      endpointId: endpoint.id,
      eventId: event.id,
      eventType: event.type,
      state,
      attempts,
      ...(lastStatus !== undefined ? { lastStatus } : {}),
      ...(lastError !== undefined ? { lastError } : {}),
      at: this.deps.now(),
    });
  }
}
