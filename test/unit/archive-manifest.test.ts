/** The manifest's pure parts: folder totals, pages under Firestore's document limit, Google's archive index, warnings. */
import { describe, expect, it } from 'vitest';
import { crc32Hex, folderTotals, MAX_FOLDERS, mergeWarnings, PAGE_BUDGET_BYTES, pagesOf, parseArchiveBrowser, serviceWarnings, type ManifestEntry } from '../../functions/src/domain/archive-manifest';

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
    // Strictly: a count Google did not give is absent, not undefined.
    expect(parsed).toStrictEqual({
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

  it('shows a CRC-32 as unzip -v does: 8 lower-case hex digits, an int32 read as unsigned', () => {
    expect(crc32Hex(0xa)).toBe('0000000a');
    expect(crc32Hex(-1)).toBe('ffffffff');
    expect(crc32Hex(0xcbf43926)).toBe('cbf43926');
  });

  it('lists folders by name, and when it must cut, keeps the shallowest and among those the first by name', () => {
    // Depth order and name order differ here: a/, b/, a/b/ by depth; a/, a/b/, b/ by name.
    expect(folderTotals([entry('b/x'), entry('a/b/c.json')]).folders.map((f) => f.folder)).toEqual(['a/', 'a/b/', 'b/']);

    // MAX_FOLDERS + 5 top-level folders, written in no order (a fixed shuffle), and one deep file
    // whose folders sort first by name: the deep ones and the last five by name are cut.
    const names = Array.from({ length: MAX_FOLDERS + 5 }, (_, i) => `d${String(i).padStart(5, '0')}`);
    const many = names.map((_, i) => names[(i * 7919) % names.length] as string).map((d) => entry(`${d}/x`));
    expect(new Set(many.map((e) => e.path)).size).toBe(names.length);
    const { folders, truncated } = folderTotals([...many, entry('a/b/c/deep.json')]);
    expect(truncated).toBe(true);
    expect(folders.map((f) => f.folder)).toEqual(['a/', ...names.slice(0, MAX_FOLDERS - 1).map((d) => `${d}/`)]);
  });

  it('does not cut exactly MAX_FOLDERS folders', () => {
    const { folders, truncated } = folderTotals(Array.from({ length: MAX_FOLDERS }, (_, i) => entry(`f${i}/x`)));
    expect(truncated).toBe(false);
    expect(folders).toHaveLength(MAX_FOLDERS);
  });

  it('fills a page up to the budget exactly as Firestore counts an entry (66 bytes and the path\u2019s UTF-8), no further', () => {
    // 66 + 958 = 1024 bytes an entry: 512 fill the budget exactly, the 513th opens a page.
    const ascii = Array.from({ length: 513 }, (_, i) => entry(`${String(i).padStart(4, '0')}${'x'.repeat(954)}`));
    expect(pagesOf(ascii).map((p) => p.length)).toEqual([512, 1]);
    expect(pagesOf(ascii.slice(0, 512)).map((p) => p.length)).toEqual([512]);
    // Two bytes a character: 479 characters are the same 958 bytes.
    const accented = Array.from({ length: 513 }, () => entry('é'.repeat(479)));
    expect(pagesOf(accented).map((p) => p.length)).toEqual([512, 1]);
    // An entry larger than the budget is a page of its own, never an empty page before it.
    const huge = entry('y'.repeat(PAGE_BUDGET_BYTES));
    expect(pagesOf([huge])).toEqual([[huge]]);
    expect(pagesOf([entry('a'), huge]).map((p) => p.length)).toEqual([1, 1]);
  });

  it('takes a count as a digit string or a safe non-negative integer, nothing else', () => {
    const files = (extractedFileTotal: unknown): number | undefined => parseArchiveBrowser({ serviceStatus: [{ localizedServiceName: 'S', extractedFileTotal }] })?.services[0]?.files;
    expect(files('3')).toBe(3);
    expect(files(3)).toBe(3);
    expect(files(0)).toBe(0);
    for (const bad of ['12abc', 'abc12', '', ' 3', '-1', '1'.repeat(17), -1, 2.5, 9007199254740992, Number.NaN, ['5'], true, null]) {
      expect(files(bad), JSON.stringify(bad)).toBeUndefined();
    }
    const total = (totalSize: unknown) => parseArchiveBrowser({ serviceStatus: [], totalSize });
    expect(total(77)).toStrictEqual({ services: [], totalSize: 77 });
    expect(total('x')).toStrictEqual({ services: [] });
  });

  it('names a service by its first non-blank name, cut to 200 characters, and skips entries that are not objects', () => {
    const parsed = parseArchiveBrowser({
      serviceStatus: [
        null,
        7,
        { localizedServiceName: '   ', service: { name: 'SEARCH' }, folderName: '  ' },
        { localizedServiceName: 'n'.repeat(300) },
        { folderName: 'Takeout folder' },
      ],
    });
    expect(parsed?.services).toStrictEqual([
      { name: 'SEARCH', incomplete: false },
      { name: 'n'.repeat(200), incomplete: false },
      { name: 'Takeout folder', incomplete: false, folder: 'Takeout folder' },
    ]);
    // At most 500 services are read from an index.
    const many = parseArchiveBrowser({ serviceStatus: Array.from({ length: 600 }, (_, i) => ({ localizedServiceName: `s${i}` })) });
    expect(many?.services).toHaveLength(500);
    expect(many?.services[499]?.name).toBe('s499');
    expect(parseArchiveBrowser('serviceStatus')).toBeUndefined();
    expect(parseArchiveBrowser({ serviceStatus: 'not a list' })).toBeUndefined();
  });
});
