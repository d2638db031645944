/**
 * CORS for browser dashboards: origins listed in `cors.allowedOrigins` (or "*") get the
 * Access-Control headers; preflight OPTIONS requests are answered for every known route.
 * Tokens travel in the Authorization header, never cookies, so no credentials mode is needed.
 */
import type { Reply, Request, Router } from './router';

const ALLOWED_HEADERS = 'authorization, content-type, x-request-id';
const EXPOSED_HEADERS = 'x-request-id, retry-after, content-length';

/** CORS decisions for one configuration. */
export class Cors {
  private readonly any: boolean;
  private readonly origins: Set<string>;

  constructor(allowed: readonly string[]) {
    this.any = allowed.includes('*');
    this.origins = new Set(allowed.map((o) => o.replace(/\/$/, '').toLowerCase()));
  }

  /** Whether a request's Origin may read responses. */
  allows(origin: string | undefined): origin is string {
    return origin !== undefined && (this.any || this.origins.has(origin.toLowerCase()));
  }

  /** Headers for an ordinary response. */
  headers(req: Request): Record<string, string> {
    const origin = req.headers.origin;
    if (!this.allows(origin)) return {};
    return { 'access-control-allow-origin': this.any ? '*' : origin, 'access-control-expose-headers': EXPOSED_HEADERS, vary: 'Origin' };
  }

  /**
   * The answer to a preflight (OPTIONS with Access-Control-Request-Method), or undefined when
   * the request is not one. An origin that is not allowed gets 204 without CORS headers, so
   * the browser refuses the real request.
   */
  preflight(router: Router, method: string, path: string, headers: Record<string, string>): Reply | undefined {
    if (method !== 'OPTIONS' || !headers['access-control-request-method']) return undefined;
    const methods = router.methodsFor(path);
    if (methods.length === 0 || !this.allows(headers.origin)) return { status: 204, headers: { vary: 'Origin' } };
    return {
      status: 204,
      headers: {
        'access-control-allow-origin': this.any ? '*' : headers.origin!,
        'access-control-allow-methods': methods.join(', '),
        'access-control-allow-headers': ALLOWED_HEADERS,
        'access-control-max-age': '600',
        vary: 'Origin',
      },
    };
  }
}
