/** Where an export's archives live in the bucket: `{userId}/{exportId}/{resource}/archive-I-of-N.zip`. */
import type { Job } from './model';

type JobPlace = Pick<Job, 'userId' | 'exportId' | 'resource'>;

/** A job's objects: its archives, and their parts while they are copied in parts. */
export function jobObjectPrefix(job: JobPlace): string {
  return `${job.userId}/${job.exportId}/${job.resource}/`;
}

export function archiveObjectName(job: JobPlace, index: number, count: number): string {
  return `${jobObjectPrefix(job)}archive-${index + 1}-of-${count}.zip`;
}
