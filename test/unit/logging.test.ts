import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED_KEYS, safeUrl, traceFields } from '../../functions/src/logging';

function capture(level?: string) {
  const lines: string[] = [];
  const logger = createLogger({ ...(level ? { level } : {}), destination: { write: (l: string) => (lines.push(l), true) } });
  const entries = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, entries };
}

describe('the structured logger', () => {
  it('writes one JSON line per entry with Cloud Logging severity, time and message', () => {
    const { logger, lines, entries } = capture('trace');
    logger.trace({ a: 1 }, 't');
    logger.debug({}, 'd');
    logger.info({ n: 2 }, 'i');
    logger.warn({}, 'w');
    logger.error({}, 'e');
    logger.fatal({}, 'f');
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(entries().map((e) => [e.severity, e.message])).toEqual([
      ['DEBUG', 't'],
      ['DEBUG', 'd'],
      ['INFO', 'i'],
      ['WARNING', 'w'],
      ['ERROR', 'e'],
      ['CRITICAL', 'f'],
    ]);
    expect(entries()[2]).toMatchObject({ n: 2 });
    expect(Number.isNaN(Date.parse(String(entries()[0]?.time)))).toBe(false);
  });

  it('drops entries below its level; silent writes nothing; an unknown level is refused', () => {
    const info = capture('info');
    info.logger.debug({}, 'hidden');
    info.logger.info({}, 'shown');
    expect(info.entries().map((e) => e.message)).toEqual(['shown']);
    const silent = capture('silent');
    silent.logger.fatal({}, 'nothing');
    expect(silent.lines).toEqual([]);
    expect(() => createLogger({ level: 'loud' })).toThrow('Unknown log level');
  });

  it('children carry their bindings, and their children both sets', () => {
    const { logger, entries } = capture();
    logger.child({ jobId: 'j' }).child({ step: 'copy' }).info({ seq: 3 }, 'x');
    logger.info({}, 'parent');
    expect(entries()[0]).toMatchObject({ jobId: 'j', step: 'copy', seq: 3, message: 'x' });
    expect(entries()[1]).not.toHaveProperty('jobId');
  });

  it('redacts credentials by key and path, without touching the caller’s object or error codes elsewhere', () => {
    const { logger, lines, entries } = capture();
    const fields = { accessToken: 'ya29.secret', url: 'https://x/y?sig=s', headers: { authorization: 'Bearer t', accept: 'json' }, error: { code: 'ARCHIVE_FAILED' } };
    logger.child({ refreshToken: '1//r' }).warn(fields, 'm');
    expect(entries()[0]).toMatchObject({ accessToken: '[REDACTED]', refreshToken: '[REDACTED]', url: '[REDACTED]', headers: { authorization: '[REDACTED]', accept: 'json' }, error: { code: 'ARCHIVE_FAILED' } });
    expect(lines.join('')).not.toMatch(/ya29|sig=s|Bearer t|1\/\/r/);
    expect(fields.headers.authorization).toBe('Bearer t');
    for (const key of REDACTED_KEYS.filter((k) => !k.includes('.'))) {
      const c = capture();
      c.logger.info({ [key]: 'credential-value' }, 'k');
      expect(c.lines.join(''), key).not.toContain('credential-value');
    }
  });

  it('never throws on what it is given: circular objects and BigInts are written as text', () => {
    const { logger, entries } = capture();
    const loop: Record<string, unknown> = { name: 'loop' };
    loop.self = loop;
    logger.info({ loop, big: 10n }, 'odd');
    expect(entries()[0]).toMatchObject({ loop: { name: 'loop', self: '[Circular]' }, big: '10', message: 'odd' });
  });

  it('safe URLs drop the query; trace fields follow X-Cloud-Trace-Context', () => {
    expect(safeUrl('https://storage.googleapis.com/b/o?X-Goog-Signature=abc')).toBe('https://storage.googleapis.com/b/o');
    expect(safeUrl('not a url')).toBe('[unparseable url]');
    expect(traceFields('p', 'abc123/1;o=1')).toEqual({ 'logging.googleapis.com/trace': 'projects/p/traces/abc123' });
    expect(traceFields('p', undefined)).toEqual({});
  });
});
