/** Picks the catalogue (English or German) and fills in `{name}` parameters. */
import { de } from './messages-de';
import { en, type MessageKey, type Messages } from './messages-en';

export const CATALOGUES: Record<string, Messages> = { en, de };

export interface Translator {
  (key: MessageKey, params?: Record<string, string | number>): string;
  locale: string;
}

export function pickLocale(wanted: readonly string[]): string {
  for (const w of wanted) {
    const lang = w.toLowerCase().split('-')[0] ?? '';
    if (lang in CATALOGUES) return lang;
  }
  return 'en';
}

export function translator(locale: string): Translator {
  const messages = CATALOGUES[locale] ?? en;
  const t = ((key: MessageKey, params: Record<string, string | number> = {}) =>
    messages[key].replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m))) as Translator;
  t.locale = locale in CATALOGUES ? locale : 'en';
  return t;
}
