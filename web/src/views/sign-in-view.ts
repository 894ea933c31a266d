/** The first page: sign in (a name locally, Google through Firebase in production). */
import type { AppContext } from '../app-context';
import { el, errorBox, show } from '../dom';

export function signInView(ctx: AppContext, onSignedIn: () => void): void {
  const { t, signIn } = ctx;
  const errors = el('div');
  const form = el('form', { 'aria-labelledby': 'sign-in-heading' });
  if (signIn.asksForName) {
    form.append(
      el('p', {}, el('label', { for: 'account-name' }, t('signIn.name')), ' ', el('input', { id: 'account-name', name: 'account', required: true, autocomplete: 'username', pattern: '[A-Za-z0-9_\\-]{1,128}' })),
      el('button', { type: 'submit' }, t('signIn.button')),
    );
  } else {
    form.append(el('button', { type: 'submit' }, t('signIn.google')));
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = (form.querySelector('input') as HTMLInputElement | null)?.value;
    signIn.signIn(name).then(onSignedIn, (err: unknown) => errors.replaceChildren(errorBox(err instanceof Error ? err.message : String(err))));
  });
  show(el('section', {}, el('h2', { id: 'sign-in-heading' }, t('signIn.heading')), el('p', {}, t('signIn.intro')), errors, form));
}
