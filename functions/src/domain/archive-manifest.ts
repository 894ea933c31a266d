/**
 * What an archive's manifest is: every entry (path, size, compressed size, CRC-32), totals per
 * folder, and what Google's `Portability/archive_browser.json` says of each service. Pure: the
 * entries come from the zip's central directory (adapters/zip-central-directory.ts).
 *
 * Firestore holds a document of at most 1 MiB, and an archive may list hundreds of thousands of
 * entries, so the entries are split into pages of at most PAGE_BUDGET_BYTES (estimated as
 * Firestore counts a document's size) and the folder totals are capped at MAX_FOLDERS.
 */
import type { JobWarning } from './model';

export interface ManifestEntry {
  path: string;
  size: number;
  compressedSize: number;
  /** 8 lower-case hex digits, as unzip -v shows it. */
  crc32: string;
}

/** A folder's files, counted with every folder below it. */
export interface FolderTotal {
  folder: string;
  files: number;
  size: number;
  compressedSize: number;
}

/** One service of Google's archive index. */
export interface ServiceSummary {
  name: string;
  incomplete: boolean;
  folder?: string;
  files?: number;
  size?: number;
}

export interface ManifestSummary {
  entries: number;
  /** Entries that are files (names not ending in `/`). */
  files: number;
  size: number;
  compressedSize: number;
  zip64: boolean;
  folders: FolderTotal[];
  /** More folders than MAX_FOLDERS: the shallowest are kept. */
  foldersTruncated?: boolean;
  /** From `Portability/archive_browser.json`, when the archive holds a readable one. */
  services?: ServiceSummary[];
  /** The index's own `totalSize`, when it gives one. */
  servicesTotalSize?: number;
  pages: number;
}

export const PAGE_BUDGET_BYTES = 512 * 1024;
export const MAX_FOLDERS = 2000;

export const crc32Hex = (crc: number): string => (crc >>> 0).toString(16).padStart(8, '0');

/** Every folder an entry lies in (`a/b/c.json` → `a/`, `a/b/`), shallowest first. */
function foldersOf(path: string): string[] {
  const parts = path.split('/').slice(0, -1);
  return parts.map((_, i) => `${parts.slice(0, i + 1).join('/')}/`);
}

export function folderTotals(entries: ManifestEntry[]): { folders: FolderTotal[]; truncated: boolean } {
  const totals = new Map<string, FolderTotal>();
  for (const e of entries) {
    if (e.path.endsWith('/')) continue;
    for (const folder of foldersOf(e.path)) {
      const t = totals.get(folder) ?? { folder, files: 0, size: 0, compressedSize: 0 };
      t.files++;
      t.size += e.size;
      t.compressedSize += e.compressedSize;
      totals.set(folder, t);
    }
  }
  const depth = (f: string): number => f.split('/').length;
  const all = [...totals.values()].sort((a, b) => depth(a.folder) - depth(b.folder) || (a.folder < b.folder ? -1 : a.folder > b.folder ? 1 : 0));
  const kept = all.slice(0, MAX_FOLDERS).sort((a, b) => (a.folder < b.folder ? -1 : a.folder > b.folder ? 1 : 0));
  return { folders: kept, truncated: all.length > MAX_FOLDERS };
}

/** Firestore's size of one entry as a map in an array: field names + 1, strings' UTF-8 + 1, numbers 8. */
const entryBytes = (e: ManifestEntry): number => 5 + 8 + 5 + 8 + 15 + 8 + 7 + 9 + Buffer.byteLength(e.path, 'utf8') + 1;

/** The entries in pages that each stay under PAGE_BUDGET_BYTES (a page holds at least one entry). */
export function pagesOf(entries: ManifestEntry[]): ManifestEntry[][] {
  const pages: ManifestEntry[][] = [];
  let page: ManifestEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const n = entryBytes(e);
    if (page.length > 0 && bytes + n > PAGE_BUDGET_BYTES) {
      pages.push(page);
      page = [];
      bytes = 0;
    }
    page.push(e);
    bytes += n;
  }
  if (page.length > 0 || pages.length === 0) pages.push(page);
  return pages;
}

const count = (v: unknown): number | undefined => {
  const n = typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  return n;
};
const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.slice(0, 200) : undefined);

/**
 * Google's index (`{creationTime, totalSize, serviceStatus: [{service: {name}, localizedServiceName,
 * isIncomplete, folderName, extractedFile: [...], extractedFileTotal, extractedFileSize}]}`, int64
 * counts as strings). Read leniently: unknown fields are ignored, a missing count stays missing.
 * Returns undefined when it is not that shape at all.
 */
export function parseArchiveBrowser(json: unknown): { services: ServiceSummary[]; totalSize?: number } | undefined {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { serviceStatus?: unknown }).serviceStatus)) return undefined;
  const doc = json as { serviceStatus: unknown[]; totalSize?: unknown };
  const services = doc.serviceStatus.slice(0, 500).flatMap((raw): ServiceSummary[] => {
    if (typeof raw !== 'object' || raw === null) return [];
    const s = raw as Record<string, unknown>;
    const name = text(s.localizedServiceName) ?? text((s.service as { name?: unknown } | undefined)?.name) ?? text(s.folderName) ?? 'an unnamed service';
    const files = count(s.extractedFileTotal) ?? (Array.isArray(s.extractedFile) ? s.extractedFile.length : undefined);
    const size = count(s.extractedFileSize);
    const folder = text(s.folderName);
    return [{ name, incomplete: s.isIncomplete === true, ...(folder ? { folder } : {}), ...(files !== undefined ? { files } : {}), ...(size !== undefined ? { size } : {}) }];
  });
  const totalSize = count(doc.totalSize);
  return { services, ...(totalSize !== undefined ? { totalSize } : {}) };
}

/** The warnings a manifest gives its job: each service Google marked incomplete. */
export function serviceWarnings(archive: number, services: ServiceSummary[]): JobWarning[] {
  return services
    .filter((s) => s.incomplete)
    .map((s) => ({ code: 'SERVICE_INCOMPLETE' as const, archive, service: s.name, message: `Google marked ${s.name} incomplete` }));
}

/** Warnings a job already has are not added again (the same service in two archives, a redelivered step). */
export function mergeWarnings(have: JobWarning[], more: JobWarning[]): JobWarning[] {
  const key = (w: JobWarning): string => `${w.code}\n${w.service ?? `archive ${w.archive}`}\n${w.message}`;
  const seen = new Set(have.map(key));
  const out = [...have];
  for (const w of more) {
    if (seen.has(key(w))) continue;
    seen.add(key(w));
    out.push(w);
  }
  return out;
}
