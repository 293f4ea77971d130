// Child processes for the bench: each server runs in its own Node process
// (so its CPU and RSS are its own and the load generator does not share its
// event loop), driven over the IPC channel.
//
// The children run compiled JavaScript, as production runs the service (the
// Dockerfile's `node dist/main.js`), not through tsx: tsx's loader runs in a
// thread with a V8 isolate of its own, which every child carried — an idle
// registry was 134 MiB of RSS under tsx and 100 MiB compiled, so figure 6
// measured the development loader as much as the service. The source and the
// child scripts are compiled once per bench run into bench/.build/.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = path.join(ROOT, 'bench', '.build');
let compiled = false;

/** Compiles src/ and bench/ into bench/.build/ (tsc, bench/tsconfig.children.json), with the catalog beside them. */
function compileChildren(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, 'bench', 'tsconfig.children.json')], { cwd: ROOT, stdio: 'inherit' });
  // src/catalog.ts finds the shipped catalog at ../catalog from its own file.
  cpSync(path.join(ROOT, 'catalog'), path.join(BUILD, 'catalog'), { recursive: true });
  compiled = true;
}

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  readonly url: string;
  /** Sends a message and waits for the first answer of `expect` type. */
  request<T = Record<string, unknown>>(message: object, expect: string, timeoutMs?: number): Promise<T>;
  /** Asks the child to stop gracefully; kills it after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();

/** Kills every child still running (for exit and signal handlers). */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

function waitFor<T>(child: ChildProcess, type: string, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: { type?: string }) => {
      if (message?.type !== type) return;
      cleanup();
      resolve(message as T);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`${what}: child exited (${signal ?? code}) while waiting for "${type}"`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: no "${type}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

export interface StartChildOptions {
  readonly name: string;
  readonly script: string;
  readonly env?: Record<string, string>;
  /** Extra Node flags (e.g. --cpu-prof). */
  readonly nodeFlags?: readonly string[];
  readonly startTimeoutMs?: number;
}

export async function startChild(options: StartChildOptions): Promise<Child> {
  if (!compiled) compileChildren();
  const child = fork(path.join(BUILD, options.script.replace(/\.ts$/, '.js')), [], {
    cwd: ROOT,
    execArgv: [...(options.nodeFlags ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.add(child);
  child.on('exit', () => live.delete(child));
  const ready = await waitFor<{ url: string }>(child, 'ready', options.startTimeoutMs ?? 120_000, options.name).catch(
    (error: unknown) => {
      child.kill('SIGKILL');
      throw error;
    },
  );
  const pid = child.pid!;
  return {
    name: options.name,
    process: child,
    pid,
    url: ready.url,
    request<T>(message: object, expect: string, timeoutMs = 30_000): Promise<T> {
      const answer = waitFor<T>(child, expect, timeoutMs, options.name);
      child.send(message);
      return answer;
    },
    async stop(timeoutMs = 20_000): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resident set size of a process now, and its peak, in MiB (Linux /proc). */
export function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used, in clock ticks. */
export function cpuTicksOf(pid: number): number {
  return cpuTicksOfFile(`/proc/${pid}/stat`);
}

/**
 * CPU ticks (user + system, 1/100 s) of a process's main thread — for a Node
 * server, its event loop — and of all its threads together.
 */
export function threadTicksOf(pid: number): { main: number; all: number } {
  return { main: cpuTicksOfFile(`/proc/${pid}/task/${pid}/stat`), all: cpuTicksOf(pid) };
}

function cpuTicksOfFile(file: string): number {
  try {
    const stat = readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Busy and total CPU ticks of the whole machine. */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
