/**
 * What the API answers of an export's manifests and warnings, pure: each job shows its warnings
 * and (once SUCCEEDED) its manifests; the export sums them over its jobs, and says nothing of
 * manifests until a job has one or a warning.
 */
import { describe, expect, it } from 'vitest';
import { newJob } from '../../functions/src/domain/job';
import type { ExportRecord, Job, JobWarning } from '../../functions/src/domain/model';
import { toExportView, toJobView } from '../../functions/src/pipeline/export-views';

const T0 = Date.UTC(2026, 0, 1);
const job = (over: Partial<Job>): Job => ({ ...newJob({ id: 'j1', exportId: 'e1', userId: 'u', resource: 'chrome.history' }, T0), ...over });
const record: ExportRecord = { id: 'e1', userId: 'u', state: 'RUNNING', resources: ['chrome.history'], createdAt: T0, updatedAt: T0 };
const warning = (archive: number): JobWarning => ({ code: 'SERVICE_INCOMPLETE', archive, service: 'Chrome', message: 'Google marked Chrome incomplete' });
const archive = { bucket: 'b', name: 'u/e1/chrome.history/archive-1.zip', size: 3, crc32c: 'AAAAAA==' };

describe('manifests and warnings in the views', () => {
  it('a job shows its warnings when it has any, and its manifests once it SUCCEEDED', () => {
    const done = toJobView(job({ state: 'SUCCEEDED', archives: [archive, archive], finishedAt: T0, manifests: [{ archive: 0, entries: 4 }], warnings: [warning(1)] }));
    expect(done).toMatchObject({ manifests: [{ archive: 0, entries: 4 }], warnings: [warning(1)] });
    const copying = toJobView(job({ state: 'COPYING', manifests: [{ archive: 0, entries: 4 }], warnings: [warning(0)] }));
    expect(copying).not.toHaveProperty('manifests');
    expect(copying.warnings).toEqual([warning(0)]);
    expect(toJobView(job({ state: 'SUCCEEDED', finishedAt: T0, warnings: [] }))).not.toHaveProperty('warnings');
  });

  it('an export sums the archives with a manifest and their entries over its SUCCEEDED jobs, and the warnings over all', () => {
    const jobs = [
      job({ id: 'a', state: 'SUCCEEDED', finishedAt: T0, manifests: [{ archive: 0, entries: 4 }, { archive: 1, entries: 6 }], warnings: [warning(0)] }),
      job({ id: 'b', state: 'SUCCEEDED', finishedAt: T0, manifests: [{ archive: 0, entries: 10 }] }),
      // A failed job's manifests do not count (its archives are not offered); its warnings do.
      job({ id: 'c', state: 'FAILED', finishedAt: T0, manifests: [{ archive: 0, entries: 100 }], warnings: [warning(0), warning(1)] }),
    ];
    expect(toExportView(record, jobs).manifests).toEqual({ archives: 3, entries: 20, warnings: 3 });
  });

  it('an export with warnings but no manifest yet, and one with neither', () => {
    expect(toExportView(record, [job({ state: 'COPYING', warnings: [warning(0)] })]).manifests).toEqual({ archives: 0, entries: 0, warnings: 1 });
    expect(toExportView(record, [job({ state: 'SUCCEEDED', finishedAt: T0, manifests: [{ archive: 0, entries: 0 }] })]).manifests).toEqual({ archives: 1, entries: 0, warnings: 0 });
    expect(toExportView(record, [job({ state: 'SUCCEEDED', finishedAt: T0 }), job({ id: 'j2' })])).not.toHaveProperty('manifests');
  });

  it('an export lists each job\u2019s view, with the archives\u2019 retention it was given', () => {
    const view = toExportView(record, [job({ state: 'SUCCEEDED', archives: [archive], finishedAt: T0 })], 7);
    expect(view.jobs).toHaveLength(1);
    expect(view.jobs[0]?.archives?.[0]?.expiresAt).toBe(new Date(T0 + 7 * 86_400_000).toISOString());
    expect(view).toMatchObject({ exportId: 'e1', state: 'RUNNING', resources: ['chrome.history'], createdAt: new Date(T0).toISOString() });
  });
});
