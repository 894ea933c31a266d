/**
 * The main page once signed in, built from what the API holds (so it is the same after a reload):
 * no grant → choose data; a grant → what Google allowed and what not, when it ends, start a copy
 * or a daily schedule, withdraw access; and the person's copies and schedules.
 */
import type { AuthorizationStatus, ExportView, ResourceGroup, ScheduleView } from '../api-client';
import type { AppContext } from '../app-context';
import { homeWith, NOTICES } from '../app-context';
import { actionButton, announce, el, errorBox, show } from '../dom';
import { formatTime } from '../progress-words';
import { chooseView } from './choose-view';

export async function homeView(ctx: AppContext): Promise<void> {
  const { t, api } = ctx;
  const notice = new URLSearchParams(location.search).get('notice');
  if (notice && (NOTICES as readonly string[]).includes(notice)) announce(t(notice as (typeof NOTICES)[number]));
  const [grant, exports, schedules, groups] = await Promise.all([api.authorization(), api.exports(), api.schedules(), ctx.groups()]);
  const history = historySection(ctx, exports, schedules);
  if (grant.state !== 'ACTIVE') {
    return chooseView(ctx, el('div', {}, grant.state === 'NEEDS_CONSENT' && el('p', { class: 'warning' }, t('grant.needsConsent')), history));
  }
  show(el('section', {}, el('h2', { id: 'grant-heading' }, t('grant.heading')), grantDetails(ctx, grant, groups), grantActions(ctx, grant), history));
}

function titleOf(groups: ResourceGroup[], id: string): string {
  return groups.find((g) => g.id === id)?.title ?? id;
}

function grantDetails(ctx: AppContext, grant: AuthorizationStatus, groups: ResourceGroup[]): HTMLElement {
  const { t } = ctx;
  const list = (ids: string[]) => el('ul', {}, ...ids.map((id) => el('li', { 'data-resource': id }, titleOf(groups, id))));
  const accessWords = grant.accessType === 'ONE_TIME' ? t('grant.oneTime') : grant.accessType === 'TIME_BASED' ? t('grant.timeBased') : t('grant.mixed');
  return el(
    'div',
    { class: 'grant' },
    ...grant.warnings.map((w) => el('p', { class: 'warning', role: 'note', 'data-warning': w.code }, w.message)),
    grant.expiresSoon &&
      grant.expiresAt &&
      el(
        'p',
        { class: 'warning', role: 'note', 'data-warning': 'EXPIRES_SOON' },
        t('grant.expiresSoon', { date: formatTime(grant.expiresAt, t.locale) }),
        ' ',
        grant.renewalUrl && el('a', { href: grant.renewalUrl, rel: 'noopener' }, t('grant.renew')),
      ),
    el('h3', {}, t('grant.granted')),
    list(grant.grantedResources),
    grant.notGrantedResources.length > 0 &&
      el('div', { class: 'not-granted' }, el('h3', {}, t('grant.notGranted')), list(grant.notGrantedResources), el('p', {}, t('grant.notGrantedWhy'))),
    el('p', {}, accessWords),
    grant.expiresAt && el('p', {}, t('grant.expires', { date: formatTime(grant.expiresAt, t.locale) })),
    grant.renewalUrl && !grant.expiresSoon && el('p', {}, el('a', { href: grant.renewalUrl, rel: 'noopener' }, t('grant.renew'))),
  );
}

function grantActions(ctx: AppContext, grant: AuthorizationStatus): HTMLElement {
  const { t, api } = ctx;
  const errors = el('div');
  const button = (label: string, run: () => Promise<void>, cls?: string) => actionButton(label, run, errors, cls);
  return el(
    'div',
    { class: 'actions' },
    errors,
    button(t('grant.start'), async () => {
      const started = await api.startExport();
      location.assign(homeWith({ export: started.exportId }));
    }),
    grant.timeBasedResources.length > 0 &&
      button(t('grant.schedule'), async () => {
        await api.createSchedule();
        location.assign(homeWith({ notice: 'schedules.started' }));
      }),
    button(t('grant.chooseOther'), () => chooseView(ctx)),
    button(
      t('grant.revoke'),
      async () => {
        await api.revoke();
        location.assign(homeWith({ notice: 'grant.revoked' }));
      },
      'danger',
    ),
  );
}

function historySection(ctx: AppContext, exports: ExportView[], schedules: ScheduleView[]): HTMLElement {
  const { t, api } = ctx;
  const section = el('section', { 'aria-labelledby': 'exports-heading' }, el('h3', { id: 'exports-heading' }, t('exports.heading')));
  section.append(
    exports.length === 0
      ? el('p', {}, t('exports.none'))
      : el(
          'ul',
          { class: 'exports' },
          ...exports.map((e) =>
            el('li', {}, el('a', { href: homeWith({ export: e.exportId }) }, t('exports.open', { date: formatTime(e.createdAt, t.locale), state: t(`state.${e.state}`) }))),
          ),
        ),
  );
  if (schedules.length > 0) {
    section.append(el('h3', {}, t('schedules.heading')));
    const list = el('ul', { class: 'schedules' });
    for (const s of schedules) {
      const line =
        s.state === 'ACTIVE'
          ? t('schedules.line', { hours: s.everyHours, count: s.runCount, next: s.nextRunAt ? formatTime(s.nextRunAt, t.locale) : '—' })
          : t('schedules.lineEnded', { reason: s.reason?.message ?? s.state });
      const stop = el('button', { type: 'button' }, t('schedules.stop'));
      stop.addEventListener('click', () => {
        stop.disabled = true;
        api.stopSchedule(s.scheduleId).then(
          () => location.assign(homeWith({ notice: 'schedules.stopped' })),
          (err: Error) => {
            stop.disabled = false;
            list.before(errorBox(err.message));
          },
        );
      });
      list.append(el('li', { 'data-schedule': s.scheduleId }, line, ' ', stop));
    }
    section.append(list);
  }
  return section;
}
