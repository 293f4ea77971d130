// Runs the command-line tool as a child process, the way an operator would:
// `node --import tsx src/cli/main.ts <command> …` with the registry's environment.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliRun {
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly done: Promise<CliResult>;
  /** Everything written to stderr so far. */
  stderr(): string;
}

/** Starts the CLI; the process is killed if it runs longer than `timeoutMs`. */
export function startCli(args: readonly string[], env: Record<string, string>, timeoutMs = 30_000): CliRun {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: REPO_ROOT,
    // Only the registry's environment (plus what node needs), so a developer's
    // EVENTSTORE_URL or DATA_DIR cannot leak into a test.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done, stderr: () => stderr };
}

export function runCli(args: readonly string[], env: Record<string, string>, timeoutMs?: number): Promise<CliResult> {
  return startCli(args, env, timeoutMs).done;
}

/** Polls `condition` every few milliseconds until it holds (true) or `timeoutMs` passes (false). */
export async function waitUntil(condition: () => boolean, timeoutMs: number, intervalMs = 5): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return condition();
}
