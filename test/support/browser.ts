// The browser the browser tests drive (through playwright-core): Debian's
// Chromium. `npm test` must pass on a fresh machine that has only Node and
// npm, so when no Chromium is found it is installed here — through apt, as
// root (or passwordless sudo) — once per machine, whichever test file asks
// first; concurrent test processes wait on a lock instead of racing apt.
// A machine where it can be neither found nor installed fails the browser
// tests with the reason: they never skip.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Where a browser may already be: CHROMIUM_PATH first, then Debian's and Ubuntu's packages. */
function candidates(): string[] {
  return [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
    (p): p is string => p !== undefined && p !== '',
  );
}

function found(): string | undefined {
  return candidates().find((p) => existsSync(p));
}

const LOCK = path.join(tmpdir(), 'webhook-registry-chromium-install.lock');
/** A lock older than this belongs to an install that died; apt itself gives up long before. */
const STALE_LOCK_MS = 15 * 60_000;

async function withInstallLock<T>(work: () => T): Promise<T> {
  for (;;) {
    try {
      closeSync(openSync(LOCK, 'wx'));
      break;
    } catch {
      const age = existsSync(LOCK) ? Date.now() - statSync(LOCK).mtimeMs : 0;
      if (age > STALE_LOCK_MS) rmSync(LOCK, { force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return work();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

function run(command: string, args: string[]): void {
  execFileSync(command, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 10 * 60_000,
  });
}

function install(): void {
  const isRoot = process.getuid?.() === 0;
  const apt = ['/usr/bin/apt-get', '/bin/apt-get'].find((p) => existsSync(p));
  if (!apt) throw new Error('no Chromium found and no apt-get to install it: set CHROMIUM_PATH to a Chromium binary');
  const as = (args: string[]): [string, string[]] => (isRoot ? [apt, args] : ['sudo', ['-n', apt, ...args]]);
  console.log('\n  No Chromium on this machine: installing Debian\'s chromium through apt (once; a minute or two)…\n');
  try {
    run(...as(['update', '-qq']));
    run(...as(['install', '-y', '-qq', '--no-install-recommends', 'chromium']));
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString('utf8').trim() ?? String(error);
    throw new Error(
      `no Chromium found, and installing it failed (${isRoot ? 'as root' : 'through sudo -n'}): ${stderr.slice(-500)}\n` +
        'Install it (apt-get install -y chromium) or set CHROMIUM_PATH.',
    );
  }
}

/** The path of a Chromium binary, installed first if the machine has none. */
export async function ensureChromium(): Promise<string> {
  const present = found();
  if (present) return present;
  return withInstallLock(() => {
    // Another test process may have installed it while this one waited.
    const now = found();
    if (now) return now;
    install();
    const installed = found();
    if (!installed) throw new Error(`apt installed chromium, but none of ${candidates().join(', ')} exists`);
    return installed;
  });
}

/** How long a test hook may wait for ensureChromium on a machine that has to install it. */
export const BROWSER_SETUP_TIMEOUT_MS = 12 * 60_000;
