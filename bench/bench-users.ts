/** Users of the app for the benchmarks that start many exports on the local stack. */
import { scopeOf } from '../functions/src/domain/resource-groups';
import type { LocalStack } from '../local-stack/local-stack';
import { api, consentAtGoogle, startConsent } from '../test/support/api-client';

/** Runs `fn` over `items`, `width` at a time. */
export async function inParallel<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

/**
 * A user whose grant holds `groups`. The API refuses to start a consent whose URL is longer than
 * Google's consent screen reliably takes (about 24 groups), so for more the consent is started
 * for one group and the scope widened at the simulated consent screen: what the grant of a user
 * who consented to every group would be.
 */
export async function userGranted(stack: LocalStack, userId: string, groups: string[], attempt = 1): Promise<{ token: string; googleUserId: string }> {
  const token = await stack.idToken(userId);
  const googleUserId = `google-${userId}`;
  const started = await startConsent(stack, token, groups.slice(0, 1));
  const url = new URL(started.authorizationUrl);
  url.searchParams.set('scope', groups.map(scopeOf).join(' '));
  const { code, state } = await consentAtGoogle(url.toString(), googleUserId);
  const res = await api<{ resources: string[] }>(stack, token, 'POST', '/v1/authorizations', { code, state });
  if (res.status >= 500 && attempt < 3) {
    // A server fault is a finding, not a reason to lose the run: said on stderr, then consented again.
    process.stderr.write(`  ${userId}: POST /v1/authorizations answered ${res.status} ${JSON.stringify(res.body)}; consenting again\n`);
    return userGranted(stack, userId, groups, attempt + 1);
  }
  if (res.status !== 201 || res.body.resources.length !== groups.length) throw new Error(`authorization answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { token, googleUserId };
}

