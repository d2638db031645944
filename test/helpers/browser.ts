/**
 * A real browser for dashboard tests: Debian's Chromium (installed by ensureChromium when
 * missing and running as root) driven by playwright-core, which downloads nothing. Also
 * builds the dashboard UI when its compiled modules are older than the sources, so running
 * one test after `tsc -p tsconfig.json` works without `npm run build`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ensureChromium } from '../../src/provision/chromium';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const UI_SRC = path.join(ROOT, 'src', 'dashboard', 'ui');
const UI_OUT = path.join(ROOT, 'dist', 'ui', 'dashboard', 'ui', 'app.js');
/** The API schemas the UI's types derive from. */
const SCHEMAS = path.join(ROOT, 'src', 'http', 'api-schemas.ts');

/** Compiles src/dashboard/ui when dist is missing or older than any UI source. */
export function buildDashboardUi(): void {
  const built = fs.existsSync(UI_OUT) ? fs.statSync(UI_OUT).mtimeMs : 0;
  const newest = Math.max(fs.statSync(SCHEMAS).mtimeMs, ...fs.readdirSync(UI_SRC).map((f) => fs.statSync(path.join(UI_SRC, f)).mtimeMs));
  if (built >= newest) return;
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(UI_SRC, 'tsconfig.json')], { stdio: 'inherit' });
  fs.utimesSync(UI_OUT, new Date(), new Date());
}

/** Launches headless Chromium. `--no-sandbox` because tests run as root in containers. */
export async function launchBrowser(log?: (line: string) => void): Promise<Browser> {
  const executablePath = await ensureChromium({ log });
  return chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** A fresh folder for screenshots, kept after the run so a person can look. */
export function screenshotDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sc-dashboard-shots-'));
}
