/**
 * Strict RFC 3339 timestamps, as Google's APIs read them (protobuf Timestamp): `YYYY-MM-DDTHH:MM:SS`
 * with up to nine fractional digits and `Z` or `±HH:MM`, upper-case `T` and `Z`, a real calendar
 * date (no 2026-02-30), a real time of day (no 24:00:00, no leap second 60), years 0001 to 9999.
 * `Date.parse` is not enough: it rolls 2026-02-30 over to March and takes 24:00 as midnight.
 */
const SHAPE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))$/;

export type Rfc3339 = { ok: true; ms: number } | { ok: false; reason: string };

const isLeap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const daysIn = (year: number, month: number): number => (month === 2 ? (isLeap(year) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31);

const MIN_MS = Date.parse('0001-01-01T00:00:00Z');
const MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');

export function parseRfc3339(s: string): Rfc3339 {
  const m = SHAPE.exec(s);
  if (!m) return { ok: false, reason: 'must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z' };
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (year < 1) return { ok: false, reason: 'year must be 0001 to 9999' };
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return { ok: false, reason: `${m[1]}-${m[2]}-${m[3]} is not a calendar date` };
  if (hour > 23 || minute > 59 || second > 59) return { ok: false, reason: `${m[4]}:${m[5]}:${m[6]} is not a time of day (00:00:00 to 23:59:59)` };
  if (m[9] !== undefined && (Number(m[10]) > 23 || Number(m[11]) > 59)) return { ok: false, reason: 'the UTC offset must be -23:59 to +23:59' };
  const ms = Date.parse(s);
  if (!Number.isFinite(ms) || ms < MIN_MS || ms > MAX_MS) return { ok: false, reason: 'must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z' };
  return { ok: true, ms };
}
