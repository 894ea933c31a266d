/** The web app's start: settings, words, sign-in, then the page the address asks for. */
import { Api, type ResourceGroup } from './api-client';
import type { AppContext } from './app-context';
import { CALLBACK_PATH } from './app-context';
import { createSignIn } from './auth/sign-in';
import { el, errorBox, show } from './dom';
import { pickLocale, translator } from './i18n/i18n';
import { loadRuntimeConfig } from './runtime-config';
import { callbackView } from './views/callback-view';
import { exportView } from './views/export-view';
import { homeView } from './views/home-view';
import { signInView } from './views/sign-in-view';

async function start(): Promise<void> {
  let t = translator(pickLocale(navigator.languages));
  try {
    const config = await loadRuntimeConfig();
    t = translator(pickLocale([...(config.locale ? [config.locale] : []), ...navigator.languages]));
    document.documentElement.lang = t.locale;
    document.title = t('app.title');
    (document.getElementById('app-title') as HTMLElement).textContent = t('app.title');
    const signIn = await createSignIn(config.auth);
    let groups: Promise<ResourceGroup[]> | undefined;
    const ctx: AppContext = { config, t, signIn, api: new Api(config.apiBaseUrl, signIn, t('app.unreachable')), groups: () => (groups ??= ctx.api.resourceGroups()) };
    const route = async (): Promise<void> => {
      const user = await signIn.current();
      accountBar(ctx, user?.displayName);
      if (!user) return signInView(ctx, () => void route().catch(fail));
      if (location.pathname === CALLBACK_PATH) return callbackView(ctx);
      const exportId = new URLSearchParams(location.search).get('export');
      return exportId ? exportView(ctx, exportId) : homeView(ctx);
    };
    await route();
  } catch (err) {
    fail(err);
  }

  function fail(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    show(el('section', {}, el('h2', {}, t('app.title')), errorBox(err instanceof Error && err.name === 'ConfigProblem' ? t('app.configProblem', { message }) : message)));
  }
}

function accountBar(ctx: AppContext, name: string | undefined): void {
  const bar = document.getElementById('account') as HTMLElement;
  if (!name) return bar.replaceChildren();
  const out = el('button', { type: 'button' }, ctx.t('signIn.signOut'));
  out.addEventListener('click', () => void ctx.signIn.signOut().then(() => location.assign('/index.html')));
  bar.replaceChildren(el('span', {}, ctx.t('signIn.signedInAs', { name })), ' ', out);
}

void start();
