import { defineConfig } from 'vitest/config';

// Two projects in one run, sharing the workers and one PostgreSQL server
// (started by the global setup):
// - default: every test, the HTTP suite on SQLite (or on EVENTSTORE_URL /
//   MONGODB_URL when set); the PostgreSQL contract suites inject the server;
// - postgres: the HTTP suite again, every registry on PostgreSQL.
const shared = {
  testTimeout: 30_000,
  hookTimeout: 60_000,
  pool: 'forks',
} as const;

export default defineConfig({
  test: {
    ...shared,
    globalSetup: ['test/setup/postgres.globalSetup.ts'],
    reporters: ['default'],
    projects: [
      {
        test: {
          ...shared,
          name: 'default',
          include: ['test/**/*.test.ts'],
          // POSTGRES_URL in the environment names the server for the tests, not an engine for this project.
          env: { POSTGRES_URL: '' },
        },
      },
      {
        test: {
          ...shared,
          name: 'postgres',
          include: ['test/int/**/*.int.test.ts'],
          // Its own engine settings; it runs once, in the default project.
          exclude: ['**/node_modules/**', 'test/int/postgresEngine.int.test.ts', 'test/int/postgresScaleOut.int.test.ts'],
          setupFiles: ['test/setup/postgres.setup.ts'],
        },
      },
    ],
  },
});
