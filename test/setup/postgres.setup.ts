// Setup file of the `postgres` test project: every registry the HTTP suite
// starts (test/support/registry.ts) runs on the run's PostgreSQL server, in a
// database of its own, instead of SQLite files.
import { inject } from 'vitest';

process.env.POSTGRES_URL = inject('postgresUrl');
