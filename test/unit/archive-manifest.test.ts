/** The manifest's pure parts: folder totals, pages under Firestore's document limit, Google's archive index, warnings. */
import { describe, expect, it } from 'vitest';
import { folderTotals, MAX_FOLDERS, mergeWarnings, PAGE_BUDGET_BYTES, pagesOf, parseArchiveBrowser, serviceWarnings, type ManifestEntry } from '../../functions/src/domain/archive-manifest';

const entry = (path: string, size = 10, compressedSize = 4): ManifestEntry => ({ path, size, compressedSize, crc32: '00000000' });

describe('archive manifests', () => {
  it('totals every folder with the folders below it; directory entries count as no file', () => {
    const { folders, truncated } = folderTotals([entry('a/b/c.json', 100, 10), entry('a/d.txt', 5, 5), entry('a/b/'), entry('top.html', 1, 1)]);
    expect(truncated).toBe(false);
    expect(folders).toEqual([
      { folder: 'a/', files: 2, size: 105, compressedSize: 15 },
      { folder: 'a/b/', files: 1, size: 100, compressedSize: 10 },
    ]);
  });

  it('keeps the shallowest folders when there are more than it stores', () => {
    const many = Array.from({ length: MAX_FOLDERS + 10 }, (_, i) => entry(`root/f${i}/x`));
    const { folders, truncated } = folderTotals(many);
    expect(truncated).toBe(true);
    expect(folders).toHaveLength(MAX_FOLDERS);
    expect(folders.map((f) => f.folder)).toContain('root/');
  });

  it('splits entries into pages under the budget, in order, and always gives at least one page', () => {
    expect(pagesOf([])).toEqual([[]]);
    const long = Array.from({ length: 20_000 }, (_, i) => entry(`${'x'.repeat(100)}/${i}`));
    const pages = pagesOf(long);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.flat()).toEqual(long);
    // Each page serialised as JSON (larger than Firestore's count of it) stays under 1 MiB.
    for (const p of pages) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThan(1024 * 1024);
    expect(PAGE_BUDGET_BYTES).toBeLessThan(1024 * 1024);
  });

  it('reads Google\'s archive index leniently and turns incomplete services into warnings', () => {
    const parsed = parseArchiveBrowser({
      creationTime: '2026-11-01T00:00:00Z',
      totalSize: '12345',
      serviceStatus: [
        { service: { name: 'CHROME' }, localizedServiceName: 'Chrome history', isIncomplete: true, folderName: 'Chrome', extractedFileTotal: '3', extractedFileSize: '999' },
        { service: { name: 'SEARCH' }, isIncomplete: false, extractedFile: [{ name: 'a.json' }, { name: 'b.json' }] },
        'garbage',
        { isIncomplete: 'yes', extractedFileTotal: '-1' },
      ],
    });
    expect(parsed).toEqual({
      totalSize: 12345,
      services: [
        { name: 'Chrome history', incomplete: true, folder: 'Chrome', files: 3, size: 999 },
        { name: 'SEARCH', incomplete: false, files: 2 },
        { name: 'an unnamed service', incomplete: false },
      ],
    });
    expect(serviceWarnings(1, parsed?.services ?? [])).toEqual([
      { code: 'SERVICE_INCOMPLETE', archive: 1, service: 'Chrome history', message: 'Google marked Chrome history incomplete' },
    ]);
    expect(parseArchiveBrowser({ unrelated: true })).toBeUndefined();
    expect(parseArchiveBrowser(null)).toBeUndefined();
  });

  it('merges warnings once: a service named by two archives, a redelivery', () => {
    const w = { code: 'SERVICE_INCOMPLETE' as const, archive: 0, service: 'Chrome history', message: 'Google marked Chrome history incomplete' };
    const d = { code: 'ARCHIVE_DAMAGED' as const, archive: 0, message: 'damaged' };
    expect(mergeWarnings([w], [{ ...w, archive: 1 }, w, d, { ...d, archive: 1 }])).toEqual([w, d, { ...d, archive: 1 }]);
  });
});
