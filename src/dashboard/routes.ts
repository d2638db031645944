/**
 * Serves the dashboard on the admin listener: `/dashboard` redirects to `/dashboard/` (the
 * page), and `/dashboard/assets/<version>/<file>` serves the versioned static files. Every
 * dashboard response carries a strict Content-Security-Policy: scripts and styles only from
 * this origin, no inline script or style, API calls only to this origin.
 */
import { bufferBody, type Reply, type Request, type Router } from '../http/router';
import { AppError } from '../errors';
import type { Logger } from '../telemetry/log';
import { loadDashboardAssets, type Asset, type DashboardAssets } from './assets';

/** The Content-Security-Policy of every dashboard response. */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** Assets are immutable under their version; the page is revalidated every time so a deploy shows at once. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

function send(req: Request, a: Asset, cacheControl: string): Reply {
  const headers = { ...SECURITY, 'cache-control': cacheControl, etag: a.etag, 'content-type': a.type };
  const inm = req.headers['if-none-match'];
  if (inm && inm.split(',').some((t) => t.trim() === a.etag)) return { status: 304, headers };
  // Shared by every reply: sent a chunk at a time, so a client that does not read holds no copy.
  return { status: 200, headers, body: bufferBody(a.body) };
}

/** Registers the dashboard routes. The assets are read on first use, and again while the UI is missing. */
export function dashboardRoutes(router: Router, log: Logger): void {
  let assets: DashboardAssets | undefined;
  let warned = false;
  const get = (): DashboardAssets => {
    assets ??= loadDashboardAssets();
    if (!assets) {
      if (!warned) log.warn('dashboard UI is not built (dist/ui/dashboard/ui/app.js missing); run npm run build');
      warned = true;
      throw new AppError('not_found', 'The dashboard UI is not built on this server; run npm run build');
    }
    return assets;
  };
  // Relative Location: behind a proxy that mounts the service under a prefix it still lands on the page.
  router.add('GET', '/dashboard', () => ({ status: 308, headers: { ...SECURITY, location: 'dashboard/', 'cache-control': REVALIDATE } }));
  router.add('GET', '/dashboard/', (req) => send(req, get().index, REVALIDATE));
  router.add('GET', '/dashboard/assets/:version/:file', (req) => {
    const a = get();
    const file = a.files.get(req.params.file!);
    if (req.params.version !== a.version || !file) throw new AppError('not_found', `No dashboard asset ${req.params.version}/${req.params.file}`);
    return send(req, file, IMMUTABLE);
  });
}
