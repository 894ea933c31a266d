import { describe, expect, it } from 'vitest';
import { exportWindowProblem } from '../../functions/src/domain/export-window';
import { parseRfc3339 } from '../../functions/src/domain/rfc3339';

describe('strict RFC 3339', () => {
  it('takes real instants in every allowed form', () => {
    for (const s of ['2024-02-29T00:00:00Z', '2000-02-29T12:00:00Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999999999Z', '2026-01-01T00:00:00.5+05:30', '2026-01-01T00:00:00-23:59']) {
      expect(parseRfc3339(s), s).toMatchObject({ ok: true, ms: Date.parse(s) });
    }
  });

  it('refuses what Date.parse would roll over or guess', () => {
    const refused: Array<[string, RegExp]> = [
      ['2026-02-30T00:00:00Z', /not a calendar date/],
      ['2025-02-29T00:00:00Z', /not a calendar date/],
      ['1900-02-29T00:00:00Z', /not a calendar date/],
      ['2026-04-31T00:00:00Z', /not a calendar date/],
      ['2026-00-10T00:00:00Z', /not a calendar date/],
      ['2026-01-01T24:00:00Z', /not a time of day/],
      ['2026-01-01T12:60:00Z', /not a time of day/],
      ['2026-01-01T12:00:60Z', /not a time of day/],
      ['0000-01-01T00:00:00Z', /year must be 0001 to 9999/],
      ['0001-01-01T00:30:00+01:00', /must fall between/],
      ['9999-12-31T23:30:00-01:00', /must fall between/],
      ['2026-01-01T00:00:00+24:00', /UTC offset/],
      ['2026-01-01T00:00:00', /RFC 3339/],
      ['2026-01-01 00:00:00Z', /RFC 3339/],
      ['2026-01-01t00:00:00z', /RFC 3339/],
      ['2026-01-01T00:00:00.1234567890Z', /RFC 3339/],
      ['+002026-01-01T00:00:00Z', /RFC 3339/],
    ];
    for (const [s, reason] of refused) {
      const r = parseRfc3339(s);
      expect(r.ok, s).toBe(false);
      if (!r.ok) expect(r.reason, s).toMatch(reason);
    }
  });

  it('export windows lie in the past and are not empty', () => {
    const now = Date.parse('2026-06-01T00:00:00Z');
    expect(exportWindowProblem({}, now)).toBeUndefined();
    expect(exportWindowProblem({ startTime: '2026-01-01T00:00:00Z', endTime: '2026-06-01T00:00:00Z' }, now)).toBeUndefined();
    expect(exportWindowProblem({ endTime: '2026-06-01T00:00:00.001Z' }, now)?.field).toBe('endTime');
    expect(exportWindowProblem({ startTime: '2026-06-01T00:00:00Z' }, now)?.field).toBe('startTime');
    expect(exportWindowProblem({ startTime: '2026-02-01T00:00:00Z', endTime: '2026-02-01T00:00:00Z' }, now)).toEqual({ field: 'startTime', message: 'startTime must be before endTime' });
  });
});
