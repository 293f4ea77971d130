// The test command must fail when a test fails: a process that loaded the
// embedded PostgreSQL starter keeps the exit code it set (see
// loadEmbeddedPostgres in test/support/embeddedPostgres.ts).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('the embedded PostgreSQL starter', () => {
  it('leaves a process exit code set after it was loaded as it was set', () => {
    const script = [
      "const { startEmbeddedPostgres } = await import('./test/support/embeddedPostgres.ts');",
      // Load the package as a start would, without starting a server: a bad parent folder fails before the start.
      "await startEmbeddedPostgres({ parent: '/nonexistent/parent', password: 'x', settings: [], owner: 'the test' }).catch(() => undefined);",
      'process.exitCode = 3;',
    ].join('\n');
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(result.stderr).not.toMatch(/Error \[ERR|SyntaxError/);
    expect(result.status).toBe(3);
  });
});
