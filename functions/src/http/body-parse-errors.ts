/**
 * The Functions Framework parses request bodies with body-parser before our handler runs, and
 * hands body-parser's errors (malformed JSON, unsupported charset or encoding, aborted uploads)
 * to Express's default error handler, which answers an HTML page. Our API promises JSON errors,
 * so this shim wraps body-parser's middleware factories: a parse failure is recorded on the
 * request as `bodyError` and the request continues to our handler, which answers it with a JSON
 * 4xx naming `body`. It must run before the framework builds its server (functions-framework
 * 5.x, body-parser 2.x: both call `bodyParser.json(...)` etc. when the server is created).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';

export interface BodyParseError {
  /** The status body-parser chose (400, 413, 415). */
  status: number;
  /** body-parser's error type, e.g. `entity.parse.failed`; never the body itself. */
  type: string;
}

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
type Factory = (options?: unknown) => Middleware;

const MARK = Symbol.for('portability-pipeline.body-parse-errors');

function wrap(factory: Factory): Factory {
  return (options) => {
    const inner = factory(options);
    return (req, res, next) =>
      inner(req, res, (err?: unknown) => {
        if (err === undefined || err === null) return next();
        const e = err as { status?: unknown; statusCode?: unknown; type?: unknown };
        const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 400;
        (req as IncomingMessage & { bodyError?: BodyParseError }).bodyError = { status, type: typeof e.type === 'string' ? e.type : 'entity.parse.failed' };
        next();
      });
  };
}

/** Idempotent: installs the wrappers once per process. */
export function installBodyParseErrorShim(): void {
  // The very body-parser instance the framework requires (not necessarily a hoisted copy of ours).
  const fromFramework = createRequire(require.resolve('@google-cloud/functions-framework'));
  const bp = fromFramework('body-parser') as Record<string, Factory> & { [MARK]?: true };
  if (bp[MARK]) return;
  for (const name of ['json', 'text', 'urlencoded', 'raw'] as const) bp[name] = wrap(bp[name] as Factory);
  bp[MARK] = true;
}
