/**
 * The Functions Framework reads every request body with body-parser before our handler runs, with
 * a hard-coded limit of 1024 MB and no option to change it, and hands body-parser's errors to
 * Express's default handler, which answers an HTML page. This guard wraps body-parser's
 * middleware factories (the very instance the framework requires) so that, on every function:
 *   - a body is read only up to MAX_BODY_BYTES: a Content-Length above it is refused before a
 *     byte is read, and a streamed (chunked) body the moment its bytes pass it; the refusal
 *     reaches our handler at once, not after the rest of the upload, and nothing is parsed;
 *   - a parse failure (malformed JSON, unsupported charset or encoding, aborted upload) is
 *     recorded on the request as `bodyError`, and our handler answers it with a JSON 4xx.
 * The bytes of a refused body are discarded as they arrive (Node's server, or body-parser's
 * own dump), never buffered. It must run before the framework builds its server
 * (functions-framework 5.x, body-parser 2.x: both call `bodyParser.json(...)` etc. then).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';

/** The largest body any function reads; every body we accept is a small JSON object. */
export const MAX_BODY_BYTES = 16 * 1024;
export const BODY_TOO_LARGE_MESSAGE = `The body exceeds ${MAX_BODY_BYTES} bytes`;

export interface BodyParseError {
  /** The status body-parser chose (400, 413, 415). */
  status: number;
  /** body-parser's error type, e.g. `entity.parse.failed`; never the body itself. */
  type: string;
}

type GuardedRequest = IncomingMessage & { bodyError?: BodyParseError };
type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
type Factory = (options?: unknown) => Middleware;

const MARK = Symbol.for('portability-pipeline.request-body-guard');
const TOO_LARGE: BodyParseError = { status: 413, type: 'entity.too.large' };

function parseError(err: unknown): BodyParseError {
  const e = err as { status?: unknown; statusCode?: unknown; type?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 400;
  return { status, type: typeof e.type === 'string' ? e.type : 'entity.parse.failed' };
}

function declaredLength(req: IncomingMessage): number {
  const v = req.headers['content-length'];
  return v === undefined ? 0 : Number(v);
}

function guard(factory: Factory): Factory {
  return (options) => {
    const inner = factory({ ...(options as object | undefined), limit: MAX_BODY_BYTES });
    return (req, res, next) => {
      const r = req as GuardedRequest;
      // Refused by an earlier parser: no later parser may start reading the body.
      if (r.bodyError) return next();
      if (declaredLength(req) > MAX_BODY_BYTES) {
        r.bodyError = TOO_LARGE;
        return next();
      }
      let passed = false;
      const pass = (err?: unknown): void => {
        if (passed) return; // body-parser's own answer after an early refusal
        passed = true;
        if (err !== undefined && err !== null) r.bodyError = parseError(err);
        next();
      };
      const listeners = req.listenerCount('data');
      inner(req, res, pass);
      // The parser skipped this request, or is reading it: then count the bytes beside it (both
      // listeners are attached in this tick, before the first chunk flows). body-parser stops
      // buffering at the same limit but calls back only once the whole upload is in; we go on now.
      if (passed || req.listenerCount('data') === listeners) return;
      let received = 0;
      const count = (chunk: Buffer): void => {
        received += chunk.length;
        if (received <= MAX_BODY_BYTES) return;
        req.off('data', count);
        r.bodyError = TOO_LARGE;
        pass();
      };
      req.on('data', count);
    };
  };
}

/** Idempotent: installs the guard once per process. */
export function installRequestBodyGuard(): void {
  // The very body-parser instance the framework requires (not necessarily a hoisted copy of ours).
  const fromFramework = createRequire(require.resolve('@google-cloud/functions-framework'));
  const bp = fromFramework('body-parser') as Record<string, Factory> & { [MARK]?: true };
  if (bp[MARK]) return;
  for (const name of ['json', 'text', 'urlencoded', 'raw'] as const) bp[name] = guard(bp[name] as Factory);
  bp[MARK] = true;
}
