/**
 * Google sends the person back here with `code` and `state` (or `error`). The code is exchanged
 * once; the page then moves on to the main page, so a reload never sends a used code again.
 */
import type { AppContext } from '../app-context';
import { HOME } from '../app-context';
import { el, errorBox, show } from '../dom';

export async function callbackView(ctx: AppContext): Promise<void> {
  const { t, api } = ctx;
  const q = new URLSearchParams(location.search);
  const body = el('div', {}, el('p', { role: 'status' }, t('callback.exchanging')));
  show(el('section', {}, el('h2', {}, t('callback.heading')), body));
  const again = el('p', {}, el('a', { href: HOME }, t('callback.again')));
  const code = q.get('code');
  const state = q.get('state');
  if (q.get('error') || !code || !state) {
    body.replaceChildren(errorBox(t('callback.denied')), again);
    return;
  }
  try {
    await api.authorize(code, state);
    location.replace(HOME);
  } catch (err) {
    body.replaceChildren(errorBox(t('callback.failed', { message: (err as Error).message })), again);
  }
}
