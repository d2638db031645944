/**
 * Request headers from uWS the way node:http reads them: every occurrence of a list header
 * (X-Forwarded-For), joined with ", ". uWS's getHeader returns only the first, and a plain
 * forEach copy keeps only the last, so a proxy chain that adds its own header line would be
 * read differently on HTTP and on upgrades (issue 12 §7).
 */
import type { HttpRequest } from 'uWebSockets.js';

/** All values of `name` (lower case) joined with ", ", or '' when absent. */
export function headerList(req: HttpRequest, name: string): string {
  const values: string[] = [];
  req.forEach((k, v) => {
    if (k === name) values.push(v);
  });
  return values.join(', ');
}
