/** The web app's plain words for a job's state, in both shipped languages. */
import { describe, expect, it } from 'vitest';
import type { JobView } from '../../web/src/api-client';
import { pickLocale, translator } from '../../web/src/i18n/i18n';
import { formatBytes, jobWords, warningWords } from '../../web/src/progress-words';

const job = (j: Partial<JobView>): JobView => ({ jobId: 'j', resource: 'myactivity.search', state: 'WAITING', attempts: 1, ...j });
const en = translator('en');
const de = translator('de');

describe('jobWords', () => {
  it('says what Google is doing, which retry is under way, and how much is copied', () => {
    expect(jobWords(job({}), en, 3).status).toBe('Waiting for Google to prepare your data');
    expect(jobWords(job({ attempts: 3 }), en, 3).status).toBe('Google\'s export failed; trying again (2 of 3)');
    expect(jobWords(job({ state: 'COPYING', bytesCopied: 1_234_000_000 }), en, 3).status).toBe('Copying: 1.2 GB so far');
    expect(jobWords(job({ state: 'COPYING', bytesCopied: 1_234_000_000 }), de, 3).status).toBe('Wird kopiert: bisher 1,2 GB');
    expect(jobWords(job({ state: 'SUCCEEDED' }), de, 3).status).toBe('Fertig');
    // With the total known: the share, rounded down and below 100 % until the job is done.
    expect(jobWords(job({ state: 'COPYING', bytesCopied: 1_200_000_000, bytesTotal: 2_600_000_000 }), en, 3).status).toBe('Copying: 46 % — 1.2 GB of 2.6 GB');
    expect(jobWords(job({ state: 'COPYING', bytesCopied: 1_200_000_000, bytesTotal: 2_600_000_000 }), de, 3).status).toBe('Wird kopiert: 46 % — 1,2 GB von 2,6 GB');
    expect(jobWords(job({ state: 'COPYING', bytesCopied: 2_600_000_000, bytesTotal: 2_600_000_000 }), en, 3).status).toBe('Copying: 99 % — 2.6 GB of 2.6 GB');
    expect(jobWords(job({ state: 'COPYING', bytesCopied: 0, bytesTotal: 2_600_000_000 }), en, 3).status).toBe('Copying: 0 % — 0 B of 2.6 GB');
    expect(jobWords(job({ state: 'COPYING' }), en, 3).status).toBe('Copying');
  });

  it('a failure: the reason and what the person can do; a cooldown: when Google allows the next copy', () => {
    const revoked = jobWords(job({ state: 'FAILED', error: { code: 'CONSENT_REVOKED', message: 'The user revoked access' } }), en, 3);
    expect(revoked).toEqual({ status: 'Failed: The user revoked access', advice: 'Give Google\'s permission again to copy this data.' });
    expect(jobWords(job({ state: 'FAILED', error: { code: 'COPY_FAILED', message: 'x' } }), en, 3).advice).toMatch(/^Try again later/);
    const cooldown = jobWords(job({ state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN', message: 'x', retryAt: '2026-03-01T14:05:00Z' } }), en, 3);
    expect(cooldown.status).toMatch(/^Google allows the next copy of this data at .*2026/);
    expect(cooldown.advice).toBeUndefined();
  });
});

describe('warningWords', () => {
  it('says what the manifests found, in the person\'s language, numbering files from 1', () => {
    expect(warningWords({ code: 'SERVICE_INCOMPLETE', archive: 0, service: 'Chrome', message: 'x' }, en)).toBe('Google marked Chrome incomplete: this copy may lack some of it.');
    expect(warningWords({ code: 'SERVICE_INCOMPLETE', archive: 0, service: 'Chrome', message: 'x' }, de)).toBe('Google hat Chrome als unvollständig markiert: dieser Kopie kann davon etwas fehlen.');
    expect(warningWords({ code: 'ARCHIVE_DAMAGED', archive: 1, message: 'x' }, en)).toBe('File 2 looks damaged; what it holds could not be listed.');
    expect(warningWords({ code: 'ARCHIVE_NOT_ZIP', archive: 0, message: 'x' }, de)).toBe('Datei 1 ist kein ZIP-Archiv; ihr Inhalt ließ sich nicht auflisten.');
  });
});

describe('the catalogues', () => {
  it('pick the browser\'s language when shipped, else English, and fill in parameters', () => {
    expect(pickLocale(['fr-FR', 'de-AT'])).toBe('de');
    expect(pickLocale(['ja'])).toBe('en');
    expect(en('signIn.signedInAs', { name: 'Ada' })).toBe('Signed in as Ada');
    expect(formatBytes(999, 'en')).toBe('999 B');
  });
});
