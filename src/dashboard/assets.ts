/**
 * The dashboard's static files: the compiled UI modules (dist/ui/dashboard/ui/*.js, built
 * by src/dashboard/ui/tsconfig.json), its stylesheet and uPlot from node_modules, read once
 * into memory and published under one content-hash version, so every asset URL can be
 * cached for a year and a new build is a new URL.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** One file ready to send. */
export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The loaded dashboard. */
export interface DashboardAssets {
  /** Content hash of every asset (12 hex digits); the path segment of asset URLs. */
  version: string;
  /** Assets by file name (`app.js`, `uPlot.esm.js`, ...). */
  files: Map<string, Asset>;
  /** The page; it names the versioned assets by relative URL so a path prefix added by a proxy keeps working. */
  index: Asset;
}

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

function asset(body: Buffer, type: string): Asset {
  return { body, type, etag: `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/**
 * Where the compiled UI modules live: dist/ui/dashboard/ui (this file runs from
 * dist/src/dashboard; the UI build is rooted at src/, see src/dashboard/ui/tsconfig.json).
 */
export const UI_DIR = path.resolve(__dirname, '..', '..', 'ui', 'dashboard', 'ui');
/** The stylesheet is not compiled; it is read from the source tree shipped in the package. */
const CSS_FILE = path.resolve(__dirname, '..', '..', '..', 'src', 'dashboard', 'ui', 'dashboard.css');

/**
 * Reads the assets. Returns undefined when the UI has not been built (the server still
 * runs; /dashboard/ then says how to build it).
 */
export function loadDashboardAssets(uiDir = UI_DIR): DashboardAssets | undefined {
  if (!fs.existsSync(path.join(uiDir, 'app.js'))) return undefined;
  const files = new Map<string, Asset>();
  for (const name of fs.readdirSync(uiDir).sort()) {
    if (name.endsWith('.js')) files.set(name, asset(fs.readFileSync(path.join(uiDir, name)), TYPES['.js']!));
  }
  files.set('dashboard.css', asset(fs.readFileSync(CSS_FILE), TYPES['.css']!));
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.esm.js'));
  files.set('uPlot.esm.js', asset(fs.readFileSync(path.join(uplotDir, 'uPlot.esm.js')), TYPES['.js']!));
  files.set('uPlot.min.css', asset(fs.readFileSync(path.join(uplotDir, 'uPlot.min.css')), TYPES['.css']!));

  const hash = crypto.createHash('sha256');
  for (const [name, a] of files) hash.update(name).update(a.etag);
  const version = hash.digest('hex').slice(0, 12);
  const base = `assets/${version}/`;
  const html = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>stream-coordinator dashboard</title>',
    `<link rel="stylesheet" href="${base}uPlot.min.css">`,
    `<link rel="stylesheet" href="${base}dashboard.css">`,
    `<script type="module" src="${base}app.js"></script>`,
    '</head><body><div id="app"></div></body></html>',
    '',
  ].join('\n');
  return { version, files, index: asset(Buffer.from(html), 'text/html; charset=utf-8') };
}
