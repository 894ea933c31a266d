/**
 * One export, live: a line per resource group in plain words, refreshed from the API until it
 * ends; then its files with size, checksum and a Download button. Cancel while it runs, delete once it ended, and
 * the configured "return to" link at the end.
 */
import type { ExportView, ResourceGroup } from '../api-client';
import type { AppContext } from '../app-context';
import { HOME, homeWith } from '../app-context';
import { actionButton, announce, el, errorBox, show } from '../dom';
import { formatBytes, jobWords, warningWords } from '../progress-words';

export async function exportView(ctx: AppContext, exportId: string): Promise<void> {
  const { t, api, config } = ctx;
  const groups = await ctx.groups();
  const errors = el('div');
  const stateLine = el('p', { class: 'export-state', 'aria-live': 'polite' });
  const jobs = el('ul', { class: 'jobs' });
  const files = el('div');
  const actions = el('div', { class: 'actions' });
  show(el('section', {}, el('h2', {}, t('export.heading')), errors, stateLine, jobs, files, actions, el('p', {}, el('a', { href: HOME }, t('export.back')))));

  let ended = false;
  const render = (view: ExportView) => {
    ended = view.state !== 'RUNNING';
    stateLine.textContent = t('export.status', { state: t(`state.${view.state}`) });
    stateLine.dataset.state = view.state;
    jobs.replaceChildren(...view.jobs.map((job) => jobLine(ctx, groups, job)));
    // Only a SUCCEEDED job lists archives; each is downloaded through a short-lived link asked for on click.
    const archives = view.jobs.flatMap((j) => (j.archives ?? []).map((a, n) => ({ a, n, jobId: j.jobId })));
    files.replaceChildren(
      ...(archives.length > 0
        ? [
            el('h3', {}, t('export.archives')),
            el(
              'ul',
              { class: 'archives' },
              ...archives.map(({ a, n, jobId }) => {
                const name = a.name.slice(a.name.lastIndexOf('/') + 1);
                const download: HTMLButtonElement = action(t('export.download'), async () => {
                  const link = await api.downloadLink(exportId, jobId, n);
                  location.assign(link.url);
                  download.disabled = false;
                });
                download.setAttribute('aria-label', t('export.downloadNamed', { name }));
                download.classList.add('download');
                return el('li', {}, t('export.archive', { name: a.name, size: formatBytes(a.size, t.locale), crc32c: a.crc32c }), ' ', download);
              }),
            ),
          ]
        : []),
    );
    actions.replaceChildren(
      ...(ended
        ? [
            action(t('export.delete'), async () => {
              await api.deleteExport(exportId);
              location.assign(homeWith({ notice: 'export.deleted' }));
            }),
            ...(config.returnTo ? [el('a', { href: config.returnTo.url, class: 'return-to' }, config.returnTo.label ?? t('export.returnTo'))] : []),
          ]
        : [
            action(t('export.cancel'), async () => {
              render(await api.cancel(exportId));
              announce(t('export.cancelled'));
            }),
          ]),
    );
  };
  const action = (label: string, run: () => Promise<void>) => actionButton(label, run, errors);

  // Asks again until the export ends; a failed ask shows its message and keeps asking.
  for (;;) {
    try {
      render(await api.export(exportId));
      errors.replaceChildren();
    } catch (err) {
      errors.replaceChildren(errorBox((err as Error).message));
      if ((err as { status?: number }).status === 404) return;
    }
    if (ended) return;
    await new Promise((r) => setTimeout(r, config.pollMs ?? 2000));
  }
}

function jobLine(ctx: AppContext, groups: ResourceGroup[], job: ExportView['jobs'][number]): HTMLElement {
  const words = jobWords(job, ctx.t, ctx.config.maxArchiveRetries ?? 3);
  return el(
    'li',
    { 'data-resource': job.resource, 'data-state': job.state },
    el('strong', {}, groups.find((g) => g.id === job.resource)?.title ?? job.resource),
    ': ',
    el('span', { class: 'job-status' }, words.status),
    words.advice && el('span', { class: 'advice' }, ` ${words.advice}`),
    // An export must never look complete when Google said it is not.
    ...(job.warnings ?? []).map((w) => el('p', { class: 'warning', role: 'note', 'data-warning': w.code }, warningWords(w, ctx.t))),
  );
}
