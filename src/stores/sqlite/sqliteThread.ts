// Helper threads that open their own connection to a SQLite file (the event
// store's writer, the WAL checkpointer). Their source is plain CommonJS run
// with eval, so it runs the same under tsx, vitest or compiled output, and
// they get `workerData.driver`, the path of better-sqlite3 to require.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Starts a thread from CommonJS source; it is unref'd (callers ref it while it owes them an answer). */
export function startSqliteThread(source: string, workerData: Record<string, unknown>): Worker {
  const worker = new Worker(source, {
    eval: true,
    // Not the parent's flags: the thread needs no TypeScript loader.
    execArgv: [],
    workerData: { ...workerData, driver: createRequire(import.meta.url).resolve('better-sqlite3') },
  });
  worker.unref();
  return worker;
}

/** Asks the thread to close its connection and exit ('stop'); terminates it if it has not within 2 s. */
export async function stopSqliteThread(worker: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.postMessage('stop');
  const timer = setTimeout(() => void worker.terminate(), 2000);
  await exited;
  clearTimeout(timer);
}
