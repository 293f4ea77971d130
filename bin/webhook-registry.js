#!/usr/bin/env node
// The package's command-line entry: the compiled CLI when built (`npm run build`),
// else the TypeScript source through tsx (a development install).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
