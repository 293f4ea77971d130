// The browser the browser tests drive (through playwright-core): Debian's
// Chromium. `npm test` must pass on a fresh machine that has only Node and
// npm, so when no Chromium is found it is installed here — through apt, as
// root — once per machine, whichever test file asks first; concurrent test
// processes wait on a lock instead of racing apt. (Not as another user: the
// tests do not run sudo on a developer's machine; set CHROMIUM_PATH there.)
// A machine where it can be neither found nor installed fails the browser
// tests with the reason: they never skip.
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
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
/** Each apt step's limit; a lock older than both steps together belongs to an install that died. */
const STEP_TIMEOUT_MS = 10 * 60_000;
const STALE_LOCK_MS = 2 * STEP_TIMEOUT_MS + 60_000;

function lockAge(): number {
  try {
    return Date.now() - statSync(LOCK).mtimeMs;
  } catch {
    return 0; // released meanwhile: try again
  }
}

async function withInstallLock<T>(work: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      closeSync(openSync(LOCK, 'wx'));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`cannot take the Chromium install lock ${LOCK}: ${(error as Error).message}`);
      }
      if (lockAge() > STALE_LOCK_MS) rmSync(LOCK, { force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await work();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

const run = promisify(execFile);

async function install(): Promise<void> {
  const apt = ['/usr/bin/apt-get', '/bin/apt-get'].find((p) => existsSync(p));
  if (!apt || process.getuid?.() !== 0) {
    throw new Error(
      `no Chromium found, and it can only be installed here as root through apt (${apt ? 'not root' : 'no apt-get'}): ` +
        'install it (apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium binary',
    );
  }
  console.log("\n  No Chromium on this machine: installing Debian's chromium through apt (once; a minute or two)…\n");
  const options = { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: STEP_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 };
  try {
    await run(apt, ['update', '-qq'], options);
    await run(apt, ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], options);
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? error).trim();
    throw new Error(`no Chromium found, and installing it through apt failed: ${stderr.slice(-500)}\nInstall it (apt-get install -y chromium) or set CHROMIUM_PATH.`);
  }
}

/** The path of a Chromium binary, installed first if the machine has none. */
export async function ensureChromium(): Promise<string> {
  const present = found();
  if (present) return present;
  return withInstallLock(async () => {
    // Another test process may have installed it while this one waited.
    const now = found();
    if (now) return now;
    await install();
    const installed = found();
    if (!installed) throw new Error(`apt installed chromium, but none of ${candidates().join(', ')} exists`);
    return installed;
  });
}

/** How long a test hook may wait for ensureChromium on a machine that has to install it. */
export const BROWSER_SETUP_TIMEOUT_MS = 2 * STEP_TIMEOUT_MS + 2 * 60_000;
