// Builds the web console into console/dist/: one ES module bundle (preact,
// oidc-client-ts and the app, minified, with a source map) and its
// stylesheet, beside index.html. `npm start`, `npm run build` and the tests
// run it; the server serves console/dist/ at /console/ and nothing from a CDN.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONSOLE_DIR = path.dirname(fileURLToPath(import.meta.url));
export const CONSOLE_DIST = path.join(CONSOLE_DIR, 'dist');

export async function buildConsole(outDir = CONSOLE_DIST): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(path.join(outDir, 'assets'), { recursive: true });
  await build({
    // main.tsx imports its stylesheet: the bundle is console.js and console.css.
    entryPoints: { console: path.join(CONSOLE_DIR, 'src', 'main.tsx') },
    outdir: path.join(outDir, 'assets'),
    entryNames: '[name]',
    bundle: true,
    format: 'esm',
    target: ['es2022'],
    minify: true,
    sourcemap: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: path.join(CONSOLE_DIR, 'tsconfig.json'),
    legalComments: 'linked',
    logLevel: 'warning',
  });
  copyFileSync(path.join(CONSOLE_DIR, 'index.html'), path.join(outDir, 'index.html'));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildConsole();
  process.stdout.write(`console built into ${path.relative(process.cwd(), CONSOLE_DIST) || CONSOLE_DIST}\n`);
}
