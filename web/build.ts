/**
 * Builds the web app into static files (`npm run build:web`, and `npm start` and the browser tests
 * before serving): app.js and its lazily loaded chunks (the Firebase sign-in is one), index.html,
 * style.css. No config.json: each deployment writes its own beside them.
 */
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

export const WEB_ROOT = __dirname;
export const DEFAULT_OUT_DIR = path.join(WEB_ROOT, 'dist');

export async function buildWebApp(outDir = DEFAULT_OUT_DIR): Promise<string> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { app: path.join(WEB_ROOT, 'src', 'main.ts') },
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    chunkNames: 'chunks/[name]-[hash]',
    logLevel: 'warning',
    absWorkingDir: WEB_ROOT,
  });
  for (const f of ['index.html', 'style.css']) copyFileSync(path.join(WEB_ROOT, f), path.join(outDir, f));
  return outDir;
}

if (require.main === module) {
  buildWebApp(process.argv[2] ? path.resolve(process.argv[2]) : DEFAULT_OUT_DIR).then(
    (dir) => console.log(`Web app built into ${dir}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
