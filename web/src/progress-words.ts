/**
 * A job's state in plain words for the person waiting: what Google is doing, the retry under way,
 * the cooldown's end, how much is copied, or why it failed and what the person can do.
 */
import type { JobView, JobWarning } from './api-client';
import type { Translator } from './i18n/i18n';
import type { MessageKey } from './i18n/messages-en';

export function formatBytes(bytes: number, locale: string): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: i === 0 ? 0 : 1 }).format(v)} ${units[i]}`;
}

export function formatTime(iso: string, locale: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
}

export interface JobWords {
  status: string;
  /** FAILED: what the person can do about it. */
  advice?: string;
}

export function jobWords(job: JobView, t: Translator, maxRetries: number): JobWords {
  switch (job.state) {
    case 'INITIATING':
    case 'WAITING':
      // Attempts beyond the first are Google's failed exports being retried.
      return { status: job.attempts > 1 ? t('job.retrying', { retry: job.attempts - 1, max: maxRetries }) : t(`job.${job.state}`) };
    case 'COPYING':
      return { status: copyingWords(job.bytesCopied ?? 0, job.bytesTotal, t) };
    case 'SUCCEEDED':
    case 'CANCELLED':
      return { status: t(`job.${job.state}`) };
    case 'FAILED': {
      const error = job.error;
      if (error?.code === 'TIME_BASED_COOLDOWN' && error.retryAt) return { status: t('job.cooldown', { time: formatTime(error.retryAt, t.locale) }) };
      const adviceKey = `job.whatToDo.${error?.code ?? ''}`;
      const advice = adviceKey in ADVICE ? t(adviceKey as MessageKey) : t('job.whatToDo.default');
      return { status: t('job.FAILED', { reason: error?.message ?? '' }), advice };
    }
  }
}

/** "Copying: 45 % — 1.2 of 2.6 GB" when the total is known, else how much so far. */
function copyingWords(copied: number, total: number | undefined, t: Translator): string {
  if (total !== undefined && total > 0) {
    // Never 100 % before the job says it is done (the last bytes are still being verified).
    const percent = Math.min(99, Math.floor((copied / total) * 100));
    return t('job.COPYING.share', { percent: new Intl.NumberFormat(t.locale).format(percent), copied: formatBytes(copied, t.locale), total: formatBytes(total, t.locale) });
  }
  return copied > 0 ? t('job.COPYING', { copied: formatBytes(copied, t.locale) }) : t('job.COPYING.start');
}

/** A manifest's warning in the person's language (the API's message is English). */
export function warningWords(w: JobWarning, t: Translator): string {
  return w.code === 'SERVICE_INCOMPLETE' ? t('job.warning.SERVICE_INCOMPLETE', { service: w.service ?? '' }) : t(`job.warning.${w.code}`, { n: w.archive + 1 });
}

const ADVICE = { 'job.whatToDo.CONSENT_REVOKED': 1, 'job.whatToDo.ONE_TIME_CONSENT_USED': 1, 'job.whatToDo.RESOURCE_NOT_AUTHORIZED': 1 };
