/** What every page of the app is handed: the settings, the words, the API and the sign-in. */
import type { Api, ResourceGroup } from './api-client';
import type { SignIn } from './auth/sign-in';
import type { Translator } from './i18n/i18n';
import type { RuntimeConfig } from './runtime-config';

export interface AppContext {
  config: RuntimeConfig;
  t: Translator;
  api: Api;
  signIn: SignIn;
  /** The catalogue, fetched once per page. */
  groups(): Promise<ResourceGroup[]>;
}

/** The app's own pages: the main page (with `?export=` for one export) and the OAuth callback. */
export const HOME = '/index.html';
export const CALLBACK_PATH = '/oauth/callback';

export const homeWith = (params: Record<string, string>): string => `${HOME}?${new URLSearchParams(params).toString()}`;

/** A message key the home page may show after a navigation (`?notice=`): only these. */
export const NOTICES = ['grant.revoked', 'export.deleted', 'schedules.started', 'schedules.stopped'] as const;
