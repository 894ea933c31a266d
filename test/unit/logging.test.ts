import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED_KEYS, REPORTED_ERROR_EVENT, RESERVED_KEYS, traceFields } from '../../functions/src/logging';

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

  it('writes Error objects itself: name, message, code, stack and cause, never their other properties', () => {
    const { logger, entries, lines } = capture();
    // As gaxios errors are: the request's config, with its Authorization header, enumerable on the error.
    const err = Object.assign(new Error('upload failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) }), {
      code: 503,
      config: { headers: { Authorization: 'Bearer ya29.leak' } },
    });
    logger.warn({ jobId: 'j', err }, 'copy interrupted');
    const e = entries()[0] as { err: Record<string, unknown> };
    expect(e.err).toEqual({
      name: 'Error',
      message: 'upload failed',
      code: 503,
      stack: err.stack,
      cause: { name: 'Error', message: 'socket hang up', code: 'ECONNRESET', stack: (err.cause as Error).stack },
    });
    expect(lines.join('')).not.toContain('ya29.leak');
    // Nested anywhere, and a thrown non-Error, are written too.
    logger.info({ results: [{ failure: new TypeError('bad') }], err: 'plain string' }, 'nested');
    expect(entries()[1]).toMatchObject({ results: [{ failure: { name: 'TypeError', message: 'bad' } }], err: 'plain string' });
  });

  it('shapes ERROR and CRITICAL entries as Error Reporting events: @type, message, and the stack in stack_trace', () => {
    const { logger, entries } = capture();
    const err = Object.assign(new RangeError('seq out of range'), { code: 'E_SEQ' });
    logger.child({ jobId: 'j' }).error({ err }, 'task step failed');
    logger.fatal({ detail: 'retry budget spent' }, 'job failed');
    logger.error({ err });
    logger.warn({ err }, 'not an error event');
    const [withStack, withoutError, noMessage, warning] = entries();
    expect(withStack).toMatchObject({ severity: 'ERROR', '@type': REPORTED_ERROR_EVENT, jobId: 'j', message: 'task step failed', stack_trace: err.stack });
    expect(String(withStack?.stack_trace)).toMatch(/^RangeError: seq out of range\n\s+at /);
    // The stack is written once, where Error Reporting reads it.
    expect(withStack?.err).toEqual({ name: 'RangeError', message: 'seq out of range', code: 'E_SEQ' });
    expect(withoutError).toMatchObject({ severity: 'CRITICAL', '@type': REPORTED_ERROR_EVENT, message: 'job failed', detail: 'retry budget spent' });
    expect(withoutError).not.toHaveProperty('stack_trace');
    expect(noMessage).toMatchObject({ '@type': REPORTED_ERROR_EVENT, message: 'seq out of range' });
    expect(warning).not.toHaveProperty('@type');
    expect(warning).not.toHaveProperty('stack_trace');
  });

  it('never lets a field or binding replace severity, message, time, @type or stack_trace', () => {
    const { logger, entries } = capture();
    const clash = Object.fromEntries(RESERVED_KEYS.map((k) => [k, `from-field-${k}`]));
    logger.child(clash).info({}, 'real message');
    logger.info(clash);
    logger.error({ ...clash, err: new Error('boom') }, 'real error');
    const [child, noMessage, error] = entries();
    expect(child).toMatchObject({ severity: 'INFO', message: 'real message' });
    expect(noMessage).toMatchObject({ severity: 'INFO' });
    expect(noMessage).not.toHaveProperty('message');
    expect(error).toMatchObject({ severity: 'ERROR', message: 'real error', '@type': REPORTED_ERROR_EVENT });
    expect(String(error?.stack_trace)).toMatch(/^Error: boom/);
    for (const entry of [child, noMessage, error]) {
      expect(Number.isNaN(Date.parse(String(entry?.time)))).toBe(false);
      // Kept, under a name of their own.
      for (const k of RESERVED_KEYS) expect(entry?.[`field_${k}`], k).toBe(`from-field-${k}`);
    }
  });

  it('never throws on what it is given: circular objects and BigInts are written as text', () => {
    const { logger, entries } = capture();
    const loop: Record<string, unknown> = { name: 'loop' };
    loop.self = loop;
    logger.info({ loop, big: 10n }, 'odd');
    expect(entries()[0]).toMatchObject({ loop: { name: 'loop', self: '[Circular]' }, big: '10', message: 'odd' });
  });

  it('trace fields follow X-Cloud-Trace-Context', () => {
    expect(traceFields('p', 'abc123/1;o=1')).toEqual({ 'logging.googleapis.com/trace': 'projects/p/traces/abc123' });
    expect(traceFields('p', undefined)).toEqual({});
  });
});
