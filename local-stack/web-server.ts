/**
 * Serves the built web app (web/build.ts) as a static host would, plus its runtime `config.json`:
 * `/`, `/index.html` and `/oauth/callback` answer index.html, other paths the file of that name.
 * Used by `npm start` and the browser tests; production serves the same files from a bucket.
 */
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface WebServer {
  /** `http://localhost:PORT`: the origin the API's CORS list and redirect URIs name. */
  origin: string;
  stop(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
};
const PAGES = new Set(['/', '/index.html', '/oauth/callback']);

/** The API settings a web app served at `origin` needs: CORS for it and its OAuth callback. */
export function webAppEnv(origin: string, env: Record<string, string> = {}): Record<string, string> {
  const join = (a: string | undefined, b: string) => [...new Set([...(a ?? '').split(','), b].filter((s) => s !== ''))].join(',');
  return { ...env, CORS_ORIGINS: join(env.CORS_ORIGINS, origin), OAUTH_REDIRECT_URIS: join(env.OAUTH_REDIRECT_URIS, `${origin}/oauth/callback`) };
}

export async function startWebServer(opts: { dir: string; config: () => unknown; port?: number }): Promise<WebServer> {
  const root = path.resolve(opts.dir);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url.pathname === '/config.json') {
      res.writeHead(200, { 'content-type': TYPES['.json'] as string, 'cache-control': 'no-store' }).end(JSON.stringify(opts.config()));
      return;
    }
    const file = path.join(root, PAGES.has(url.pathname) ? 'index.html' : path.normalize(decodeURIComponent(url.pathname)));
    let size = -1;
    try {
      if (file.startsWith(root + path.sep)) size = statSync(file).isFile() ? statSync(file).size : -1;
    } catch {
      size = -1;
    }
    if (size < 0) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found');
      return;
    }
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, { 'content-type': type, 'content-length': size, 'cache-control': type.startsWith('text/html') ? 'no-store' : 'no-cache', 'x-content-type-options': 'nosniff' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  return {
    origin: `http://localhost:${(server.address() as AddressInfo).port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
