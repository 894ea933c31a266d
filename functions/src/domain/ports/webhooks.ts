/** The seams of webhook deliveries: their queue, the endpoints' secrets, and the record of how each ended. */
import type { PipelineEvent } from '../events';

export interface WebhookDeliveryTask {
  endpointId: string;
  event: PipelineEvent;
}

export interface WebhookQueue {
  /** One task per (event, endpoint), named after both: enqueuing the same one again is a no-op. */
  enqueueDelivery(task: WebhookDeliveryTask): Promise<void>;
}

export interface SecretSource {
  /** The payload of a secret version (e.g. `projects/p/secrets/s/versions/1`), as text. */
  access(versionName: string): Promise<string>;
}

/** How a delivery ended: no secret, no body, no URL query. */
export interface WebhookDeliveryRecord {
  endpointId: string;
  eventId: string;
  eventType: string;
  state: 'DELIVERED' | 'GAVE_UP';
  attempts: number;
  /** The endpoint's last HTTP status, when it answered. */
  lastStatus?: number;
  /** Why the last attempt failed (a status, a timeout, a refused address), when it did. */
  lastError?: string;
  /** epoch ms */
  at: number;
}

export interface WebhookDeliveryLog {
  record(r: WebhookDeliveryRecord): Promise<void>;
}

/** A configured endpoint (WEBHOOK_ENDPOINTS). */
export interface WebhookEndpoint {
  /** Stable, short: names the endpoint in task names and delivery records. */
  id: string;
  url: string;
  /** The Secret Manager secret version holding `whsec_<base64>`. */
  secret: string;
}

/** The endpoint answered (any status), or did not: `refused` when its address may not be reached. */
export type WebhookPostResult = { kind: 'answered'; status: number } | { kind: 'refused'; reason: string } | { kind: 'failed'; reason: string };

/** POSTs a signed body to an endpoint with the address rules of archive downloads. */
export type WebhookPost = (url: URL, headers: Record<string, string>, body: string) => Promise<WebhookPostResult>;
