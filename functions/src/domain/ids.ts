/** Ids of exports, jobs and schedules: 20 random hex characters, and the pattern a path parameter must match before any lookup. */
import { randomBytes } from 'node:crypto';

export const newId = (): string => randomBytes(10).toString('hex');
export const ID_PATTERN = /^[0-9a-f]{20}$/;
