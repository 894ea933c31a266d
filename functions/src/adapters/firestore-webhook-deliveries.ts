/**
 * How each webhook delivery ended, in `webhookDeliveries/{deliveryId}` (one document per event and
 * endpoint, named like its task): delivered, or given up after the bounded attempts. Endpoint id,
 * event id and type, attempts, the last status or error: never a secret, a body or a URL.
 */
import type { Firestore } from '@google-cloud/firestore';
import type { WebhookDeliveryLog, WebhookDeliveryRecord } from '../domain/ports/webhooks';
import { deliveryId } from '../domain/webhook-message';

export const WEBHOOK_DELIVERIES = 'webhookDeliveries';

export class FirestoreWebhookDeliveryLog implements WebhookDeliveryLog {
  constructor(private readonly db: Firestore) {}

  async record(r: WebhookDeliveryRecord): Promise<void> {
    await this.db.doc(`${WEBHOOK_DELIVERIES}/${deliveryId(r.eventId, r.endpointId)}`).set({ ...r });
  }
}
