/**
 * The web app in Debian's Chromium against the local stack, as a person uses it: sign in, choose
 * data by product, the consent screen (partial consent, Allow/Deny, one-time or 30 days), what
 * was and was not granted, the export's live progress in plain words (a Google failure retried),
 * its files, delete, cancel, withdraw access, a daily schedule and its stop. Each page is checked
 * with axe-core, and a console error or failed request fails the test. Waits are for text and
 * states only; the Google side's clock is moved by the test, so no step depends on timing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { startWebServer, webAppEnv, type WebServer } from '../../local-stack/web-server';
import { buildWebApp } from '../../web/build';
import { api, objectNames, type ExportBody } from '../support/api-client';
import { launchChromium, screenshot, seriousAxeViolations, watchedPage } from '../support/browser';

const MINUTE = 60_000;
let stack: LocalStack;
let web: WebServer;
let browser: Browser;
let outDir: string;
/** How far the simulated Google side's clock runs ahead (archive jobs end by it). */
let googleAheadMs = 0;
let webConfig: unknown;

beforeAll(async () => {
  outDir = mkdtempSync(path.join(os.tmpdir(), 'web-app-'));
  await buildWebApp(outDir);
  web = await startWebServer({ dir: outDir, config: () => webConfig });
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: 'demo-web-app',
    jobDurationMs: 300,
    archiveBytes: 40_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'silent',
    googleNow: () => Date.now() + googleAheadMs,
    env: webAppEnv(web.origin, { OAUTH_CLIENT_TESTING_MODE: 'true' }),
  });
  webConfig = {
    apiBaseUrl: stack.apiUrl,
    auth: { mode: 'local', idTokenUrl: stack.oauth.idTokenUrl },
    pollMs: 250,
    returnTo: { url: 'https://survey.example/thanks', label: 'Back to the survey' },
  };
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await web?.stop();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

async function expectAccessible(page: Page, step: string): Promise<void> {
  await screenshot(page, step);
  expect(await seriousAxeViolations(page), step).toEqual([]);
}

async function signIn(page: Page, name: string, label = 'Account name', button = 'Sign in'): Promise<void> {
  await page.goto(`${web.origin}/`);
  await page.getByLabel(label).fill(name);
  await page.getByRole('button', { name: button, exact: true }).click();
}

/** On the choose page: ticks the groups (by their titles) and goes to the consent screen. */
async function chooseAndGoToGoogle(page: Page, titles: string[], submit = 'Import from Google'): Promise<void> {
  for (const title of titles) await page.getByLabel(title, { exact: true }).check();
  await page.getByRole('button', { name: submit }).click();
  await page.getByRole('heading', { name: 'Choose what to share' }).waitFor();
}

/** Waits until the element's whole text is `text` (playwright-core has no expect of its own). */
const hasText = (loc: Locator, text: string) => loc.and(loc.page().getByText(text, { exact: true })).waitFor();
/** Waits until an element of `loc` contains `text`. */
const containsText = (loc: Locator, text: string | RegExp) => loc.filter({ hasText: text }).first().waitFor();
const visible = (loc: Locator) => loc.waitFor({ state: 'visible' });

/** Presses Tab until the focused element's accessible label is `label` (at most 200 times). */
async function tabTo(page: Page, label: string): Promise<void> {
  const focused = () =>
    page.evaluate(() => {
      const a = document.activeElement as HTMLInputElement | null;
      return a?.labels?.[0]?.textContent ?? a?.textContent ?? '';
    });
  for (let i = 0; i < 200; i++) {
    await page.keyboard.press('Tab');
    if ((await focused()).trim() === label) return;
  }
  throw new Error(`Tab never reached "${label}"`);
}

const jobLine = (page: Page, resource: string) => page.locator(`.jobs li[data-resource="${resource}"] .job-status`);

// Each test is a whole session in a browser: minutes on a loaded machine, never a fixed delay.
describe('the web app in Chromium', { timeout: 240_000 }, () => {
  it('signs in, consents partially, follows a retried export to its files, survives reloads, and deletes it', async () => {
    const { page, problems } = await watchedPage(browser);
    stack.portability.faults.jobDuration('chrome.history', 20 * MINUTE);
    stack.portability.faults.failNextJobs('chrome.history', 1);
    // Google's index in the search archive marks a service incomplete: the page must say so.
    stack.portability.faults.markIncomplete('myactivity.search');

    await page.goto(`${web.origin}/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await expectAccessible(page, '01-sign-in');
    await signIn(page, 'ada');

    // The catalogue, by product, with what each group holds.
    await page.getByRole('heading', { name: 'Choose what to copy' }).waitFor();
    await visible(page.getByRole('group', { name: 'My Activity' }).getByLabel('Search activity'));
    await visible(page.getByText('What you searched for on Google.'));
    await expectAccessible(page, '02-choose');
    await chooseAndGoToGoogle(page, ['Search activity', 'Chrome history', 'YouTube subscriptions']);

    // Google's screen (the simulator's): untick one group, one-time access, Allow.
    await page.getByLabel('Google account').fill('google-ada');
    await expectAccessible(page, '03-consent');
    await page.getByLabel('youtube.subscriptions').uncheck();
    await page.getByRole('button', { name: 'Allow' }).click();

    // Back: what was granted and what not, and why that matters; the Testing-mode warning.
    await page.getByRole('heading', { name: 'What Google allowed' }).waitFor();
    const shows = async () => {
      await expect(page.locator('.grant li[data-resource]').allTextContents()).resolves.toEqual(['Chrome history', 'Search activity', 'YouTube subscriptions']);
      await expect(page.locator('.not-granted li').allTextContents()).resolves.toEqual(['YouTube subscriptions']);
      await visible(page.getByText('You unticked these on Google\'s page'));
      await visible(page.getByText('One time: Google lets this service copy your data once.'));
      await containsText(page.locator('[data-warning="TESTING_MODE_7_DAYS"]'), 'Testing mode');
    };
    await shows();
    expect(new URL(page.url()).pathname).toBe('/index.html');
    await expectAccessible(page, '04-granted');
    await page.reload();
    await page.getByRole('heading', { name: 'What Google allowed' }).waitFor();
    await shows();

    await page.getByRole('button', { name: 'Start copying' }).click();
    await page.getByRole('heading', { name: 'Copying your data' }).waitFor();
    await page.locator('.jobs li[data-resource]').nth(1).waitFor();
    expect(await page.locator('.jobs li[data-resource]').count()).toBe(2);
    await page.locator('.jobs li[data-resource="myactivity.search"][data-state="SUCCEEDED"]').waitFor();
    await hasText(jobLine(page, 'chrome.history'), 'Waiting for Google to prepare your data');
    const exportId = new URL(page.url()).searchParams.get('export') as string;

    // Google's export of Chrome history fails (its clock passes the job's end); the pipeline retries it.
    googleAheadMs += 21 * MINUTE;
    await hasText(jobLine(page, 'chrome.history'), 'Google\'s export failed; trying again (1 of 3)');
    await page.reload();
    await hasText(jobLine(page, 'chrome.history'), 'Google\'s export failed; trying again (1 of 3)');
    await expectAccessible(page, '05-retrying');
    googleAheadMs += 21 * MINUTE;
    await page.locator('.export-state[data-state="SUCCEEDED"]').waitFor();
    await hasText(jobLine(page, 'chrome.history'), 'Done');
    await containsText(page.locator('.jobs li[data-resource="myactivity.search"] [data-warning="SERVICE_INCOMPLETE"]'), 'incomplete: this copy may lack some of it.');
    expect(await page.locator('.jobs li[data-resource="chrome.history"] [data-warning]').count()).toBe(0);
    stack.portability.faults.markIncomplete('myactivity.search', false);

    // The files, each with its size and checksum, as the API has them.
    const token = await stack.idToken('ada');
    const view = (await api<ExportBody>(stack, token, 'GET', `/v1/exports/${exportId}`)).body;
    const archives = view.jobs.flatMap((j) => j.archives ?? []);
    expect(archives.length).toBeGreaterThanOrEqual(2);
    for (const a of archives) await containsText(page.locator('.archives'), `${a.name}: ${(a.size / 1000).toFixed(1)} kB, checksum (CRC32C) ${a.crc32c}`);
    expect(await page.getByRole('link', { name: 'Back to the survey' }).getAttribute('href')).toBe('https://survey.example/thanks');
    await expectAccessible(page, '06-done');

    // A file's Download button asks the API for a signed link; the browser gets the archive through it.
    const first = archives[0]?.name ?? '';
    const fetched = page.waitForResponse((r) => r.url().includes('X-Goog-Signature='));
    await page.getByRole('button', { name: `Download ${first.slice(first.lastIndexOf('/') + 1)}` }).first().click();
    expect((await fetched).status()).toBe(200);

    await page.getByRole('button', { name: 'Delete this copy' }).click();
    await page.getByText('The copy and its files were deleted.').waitFor();
    await visible(page.getByText('No copies yet.'));
    expect(await objectNames(stack, 'ada/')).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('in German: Deny, then cancel an export while Google works, then withdraw access', async () => {
    const { page, problems } = await watchedPage(browser, { locale: 'de-DE' });
    stack.portability.faults.jobDurationFor('google-bea', 24 * 60 * MINUTE);
    await signIn(page, 'bea', 'Kontoname', 'Anmelden');
    await page.getByRole('heading', { name: 'Wählen Sie, was kopiert wird' }).waitFor();

    await chooseAndGoToGoogle(page, ['Chrome bookmarks'], 'Von Google importieren');
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.getByText('Sie haben Google keine Erlaubnis gegeben').waitFor();
    await expectAccessible(page, '07-denied-de');
    await page.getByRole('link', { name: 'Neu wählen' }).click();

    await chooseAndGoToGoogle(page, ['Chrome bookmarks'], 'Von Google importieren');
    await page.getByLabel('Google account').fill('google-bea');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.getByRole('button', { name: 'Kopieren starten' }).click();
    await hasText(jobLine(page, 'chrome.bookmarks'), 'Warten, bis Google Ihre Daten vorbereitet hat');
    await page.getByRole('button', { name: 'Abbrechen' }).click();
    await page.locator('.export-state[data-state="CANCELLED"]').waitFor();
    await hasText(jobLine(page, 'chrome.bookmarks'), 'Abgebrochen');
    await expectAccessible(page, '08-cancelled-de');

    await page.getByRole('link', { name: 'Zurück' }).click();
    await page.getByRole('button', { name: 'Zugriff entziehen' }).click();
    await page.getByText('Zugriff entzogen. Es wird nichts mehr kopiert.').waitFor();
    await page.getByRole('heading', { name: 'Wählen Sie, was kopiert wird' }).waitFor();
    const token = await stack.idToken('bea');
    expect((await api(stack, token, 'GET', '/v1/authorizations')).body).toMatchObject({ state: 'NONE' });
    expect(problems).toEqual([]);
  });

  it('by keyboard only: gives 30-day access, sets up a daily copy, watches its first run, and stops it', async () => {
    const { page, problems } = await watchedPage(browser);
    await signIn(page, 'cy');
    await page.getByRole('heading', { name: 'Choose what to copy' }).waitFor();
    // The page's heading has the focus; Tab reaches the choice and the button, Space ticks, Enter sends.
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('H2');
    await tabTo(page, 'Search activity');
    await page.keyboard.press('Space');
    await tabTo(page, 'Import from Google');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Choose what to share' }).waitFor();
    await page.getByLabel('Google account').fill('google-cy');
    await page.getByLabel('30 days').check();
    await page.getByRole('button', { name: 'Allow' }).click();

    await page.getByText('For a period: Google lets this service copy your data again').waitFor();
    await visible(page.getByText(/^Access ends on /));
    // The OAuth client is in Testing mode here: Google ends the access in 7 days, within the warning period.
    await visible(page.locator('[data-warning="EXPIRES_SOON"]').getByText(/^Your permission ends soon, on /));
    await page.getByRole('button', { name: 'Copy again every day' }).click();
    await page.getByText('Repeated copies set up.').waitFor();
    await containsText(page.locator('.schedules li'), 'Every 24 hours');
    await expectAccessible(page, '09-schedule');

    // Its first run starts at once; the person opens it from the list.
    const token = await stack.idToken('cy');
    const deadline = Date.now() + 60_000;
    let runs: ExportBody[] = [];
    while (runs.length === 0 && Date.now() < deadline) {
      runs = (await api<{ exports: ExportBody[] }>(stack, token, 'GET', '/v1/exports')).body.exports;
      if (runs.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(runs).toHaveLength(1);
    await page.reload();
    await page.getByRole('link', { name: /^Copy of / }).click();
    await page.locator('.export-state[data-state="SUCCEEDED"]').waitFor();
    await hasText(jobLine(page, 'myactivity.search'), 'Done');

    await page.getByRole('link', { name: 'Back', exact: true }).click();
    await page.getByRole('button', { name: 'Stop repeating' }).click();
    await page.getByText('Repeated copies stopped.').waitFor();
    expect(await page.locator('.schedules').count()).toBe(0);
    expect(problems).toEqual([]);
  });
});
