/**
 * The signing side of Standard Webhooks, checked with the specification's own library
 * (`standardwebhooks`) as an independent verifier: our headers verify, a changed byte, id or
 * timestamp does not, and the body is the event as a structured CloudEvent.
 */
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../../functions/src/domain/events';
import { cloudEventBody, deliveryId, signWebhook, webhookKey } from '../../functions/src/domain/webhook-message';

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const event: PipelineEvent = {
  id: 'job/0123456789abcdef0123/SUCCEEDED',
  type: 'portability.job.finished',
  source: 'exports/abcdefabcdefabcdefab',
  subject: 'jobs/0123456789abcdef0123',
  time: '2026-12-01T10:00:00.000Z',
  attributes: { type: 'portability.job.finished', userIdHash: 'a'.repeat(64), exportId: 'abcdefabcdefabcdefab', state: 'SUCCEEDED' },
  data: { exportId: 'abcdefabcdefabcdefab', jobId: '0123456789abcdef0123', resource: 'myactivity.search', state: 'SUCCEEDED', archives: [] },
};

describe('webhook signatures', () => {
  it('verify with the standardwebhooks library, and say the event as a CloudEvent', () => {
    const body = cloudEventBody(event);
    const headers = signWebhook(webhookKey(secret), event.id, Date.now(), body);
    expect(headers['webhook-id']).toBe(event.id);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual({
      specversion: '1.0',
      id: event.id,
      type: event.type,
      source: event.source,
      subject: event.subject,
      time: event.time,
      datacontenttype: 'application/json',
      useridhash: 'a'.repeat(64),
      exportid: 'abcdefabcdefabcdefab',
      state: 'SUCCEEDED',
      data: event.data,
    });
    // The library signs the same way.
    expect(new Webhook(secret).sign(event.id, new Date(Number(headers['webhook-timestamp']) * 1000), body)).toBe(headers['webhook-signature']);
  });

  it('fail to verify when the body, the id or the timestamp changed, or under another secret', () => {
    const body = cloudEventBody(event);
    const h = signWebhook(webhookKey(secret), event.id, Date.now(), body);
    const wh = new Webhook(secret);
    expect(() => wh.verify(body.replace('SUCCEEDED', 'SUCCEEDEd'), { ...h })).toThrow();
    expect(() => wh.verify(body, { ...h, 'webhook-id': 'job/other/SUCCEEDED' })).toThrow();
    expect(() => wh.verify(body, { ...h, 'webhook-timestamp': String(Number(h['webhook-timestamp']) + 1) })).toThrow();
    expect(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(body, { ...h })).toThrow();
    // An attempt signed long ago is refused by the receiver's tolerance (replays).
    const old = signWebhook(webhookKey(secret), event.id, Date.now() - 3_600_000, body);
    expect(() => wh.verify(body, { ...old })).toThrow(/timestamp/i);
  });

  it('refuse a secret that is not whsec_ and base64 of enough bytes, without quoting it', () => {
    for (const bad of ['', 'abc', 'whsec_', `whsec_${randomBytes(8).toString('base64')}`, 'whsec_not base64!', randomBytes(32).toString('base64')]) {
      expect(() => webhookKey(bad)).toThrow(/^A webhook secret must be whsec_/);
    }
    expect(webhookKey(secret)).toHaveLength(32);
  });

  it('name one delivery per event and endpoint', () => {
    expect(deliveryId(event.id, 'app')).toBe(deliveryId(event.id, 'app'));
    expect(deliveryId(event.id, 'app')).not.toBe(deliveryId(event.id, 'other'));
    expect(deliveryId(event.id, 'app')).toMatch(/^[0-9a-f]{32}$/);
  });

  it('take a secret with the whitespace a secret file carries around it', () => {
    const key = randomBytes(32);
    expect(webhookKey(`  whsec_${key.toString('base64')}\n`)).toEqual(key);
  });

  it('take keys of 24 to 64 bytes, padded or not, and nothing with other characters around the base64', () => {
    for (const n of [24, 32, 33, 34, 64]) {
      const key = randomBytes(n);
      expect(webhookKey(`whsec_${key.toString('base64')}`), `${n} bytes`).toEqual(key);
    }
    for (const n of [23, 65]) expect(() => webhookKey(`whsec_${randomBytes(n).toString('base64')}`), `${n} bytes`).toThrow(/^A webhook secret must be/);
    const b64 = randomBytes(32).toString('base64');
    for (const bad of [`whsec_%%${b64}`, `whsec_${b64}%%`, `whsec_${b64}===`, `whsec_${b64.slice(0, 20)} ${b64.slice(20)}`]) {
      expect(() => webhookKey(bad), bad).toThrow(/^A webhook secret must be/);
    }
  });

  it('say no subject when the event has none', () => {
    const { subject: _s, ...bare } = event;
    expect(JSON.parse(cloudEventBody(bare))).not.toHaveProperty('subject');
  });
});
