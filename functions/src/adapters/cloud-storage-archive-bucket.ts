/**
 * The archive bucket's deletes: every object under a prefix (an export's or a job's objects),
 * page by page, a few at a time; an object already gone counts as not deleted.
 */
import type { File, Storage } from '@google-cloud/storage';
import type { ArchiveBucket } from '../domain/ports/archive-copier';
import { httpStatusOf } from './stored-archive';

export class CloudStorageArchiveBucket implements ArchiveBucket {
  constructor(
    private readonly storage: Storage,
    private readonly bucket: string,
  ) {}

  async deletePrefix(prefix: string): Promise<number> {
    if (prefix.length === 0) throw new Error('Refusing to delete an empty prefix (the whole bucket)');
    const bucket = this.storage.bucket(this.bucket);
    let deleted = 0;
    let query: { prefix: string; autoPaginate: false; pageToken?: string; maxResults: number } | null = {
      prefix,
      autoPaginate: false,
      maxResults: 500,
    };
    while (query) {
      const [files, next]: [File[], { pageToken?: string } | null | undefined, unknown] = (await bucket.getFiles(query)) as [
        File[],
        { pageToken?: string } | null | undefined,
        unknown,
      ];
      // A few deletes at a time: fast enough, and gentle on the per-object mutation rate.
      for (let i = 0; i < files.length; i += 8) {
        const results = await Promise.all(
          files.slice(i, i + 8).map((f) =>
            f.delete().then(
              () => 1,
              (e: unknown) => {
                if (httpStatusOf(e) === 404) return 0;
                throw e;
              },
            ),
          ),
        );
        deleted += results.reduce<number>((a, b) => a + b, 0);
      }
      query = next?.pageToken ? { prefix, autoPaginate: false, maxResults: 500, pageToken: next.pageToken } : null;
    }
    return deleted;
  }
}
