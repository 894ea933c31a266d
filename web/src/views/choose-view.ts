/** Choosing resource groups, by product, with what each holds; then off to Google's consent screen. */
import type { AppContext } from '../app-context';
import { CALLBACK_PATH } from '../app-context';
import { announce, el, errorBox, show } from '../dom';

export async function chooseView(ctx: AppContext, intro?: HTMLElement): Promise<void> {
  const { t, api } = ctx;
  const groups = await ctx.groups();
  const byProduct = new Map<string, typeof groups>();
  for (const g of groups) byProduct.set(g.product, [...(byProduct.get(g.product) ?? []), g]);
  const errors = el('div');
  const form = el('form', { 'aria-labelledby': 'choose-heading' });
  for (const [product, list] of byProduct) {
    const fieldset = el('fieldset', {}, el('legend', {}, product));
    for (const g of list) {
      const id = `rg-${g.id.replace(/[^a-z0-9]/gi, '-')}`;
      fieldset.append(
        el(
          'div',
          { class: 'group' },
          el('input', { type: 'checkbox', id, name: 'resource', value: g.id, 'aria-describedby': `${id}-desc` }),
          ' ',
          el('label', { for: id }, g.title),
          el('p', { id: `${id}-desc`, class: 'description' }, g.description, g.timeFilter ? ` ${t('choose.timeFilter')}` : ''),
        ),
      );
    }
    form.append(fieldset);
  }
  const submit = el('button', { type: 'submit' }, t('choose.submit'));
  form.append(submit);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const chosen = [...form.querySelectorAll<HTMLInputElement>('input[name=resource]:checked')].map((i) => i.value);
    if (chosen.length === 0) {
      errors.replaceChildren(errorBox(t('choose.none')));
      return;
    }
    submit.disabled = true;
    announce(t('choose.redirecting'));
    api.startConsent(chosen, new URL(CALLBACK_PATH, location.origin).toString()).then(
      ({ authorizationUrl }) => location.assign(authorizationUrl),
      (err: Error) => {
        submit.disabled = false;
        errors.replaceChildren(errorBox(err.message));
      },
    );
  });
  show(el('section', {}, el('h2', { id: 'choose-heading' }, t('choose.heading')), intro, el('p', {}, t('choose.intro')), errors, form));
}
