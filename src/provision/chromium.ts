/**
 * Headless Chromium for the dashboard's browser tests: Debian's `chromium` package, found
 * on PATH or installed with apt-get when running as root (as redis-server and nginx are).
 * Nothing is downloaded at run time by the browser driver.
 */
import fs from 'node:fs';
import { aptInstall, isRoot, which, type LogFn } from './exec';

/** Where Debian's package puts the browser. */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/**
 * The path of a Chromium executable, installing Debian's `chromium` package when it is
 * missing and this process is root with apt-get (which may take minutes the first time).
 * @throws Error saying what to install when it is missing and cannot be installed here.
 */
export async function ensureChromium(opts: { log?: LogFn } = {}): Promise<string> {
  const found = which('chromium') ?? which('chromium-browser') ?? (fs.existsSync(DEBIAN_CHROMIUM) ? DEBIAN_CHROMIUM : null);
  if (found) return found;
  if (!isRoot() || !which('apt-get')) {
    throw new Error('chromium not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install chromium) to run the dashboard browser test.');
  }
  await aptInstall(['chromium', 'chromium-browser'], opts.log);
  const installed = which('chromium') ?? (fs.existsSync(DEBIAN_CHROMIUM) ? DEBIAN_CHROMIUM : null);
  if (!installed) throw new Error('apt-get installed chromium but it is still not on PATH');
  return installed;
}
