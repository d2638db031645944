/**
 * Authentication before the body (issue 12): an API route's token is checked from the
 * headers alone, before a byte of its body is read. A request without a token on a
 * non-public route is refused synchronously; a token is looked up (through the cache) while
 * the transport holds the body back; any refusal (401, 403, 429) is answered at once and
 * the connection closed, so an anonymous client can never make the server hold its body.
 * Failed lookups count against the address's failure budget (auth/failed-auth.ts); a token
 * the cache holds as valid is answered without it.
 */
import type { Auth, Principal, Role } from '../auth/principals';
import { AppError } from '../errors';
import type { Gate } from './router';

/** Who may call a route (the same as declared routes' `access`). */
export type GateAccess = 'public' | 'token' | Role[];

/** "a manager", "an admin". */
export function withArticle(word: string): string {
  return `${/^[aeiou]/i.test(word) ? 'an' : 'a'} ${word}`;
}

/** Throws 401 or 403 unless `principal` may call a route with this access. */
export function allowed(access: GateAccess, principal: Principal | undefined): void {
  if (access === 'public') return;
  if (!principal) throw new AppError('unauthorized', 'This route needs Authorization: Bearer <token>', { 'www-authenticate': 'Bearer' });
  if (access !== 'token' && !access.includes(principal.role)) {
    throw new AppError('forbidden', `This route is for ${access.join(' or ')} tokens; this token is ${withArticle(principal.role)}'s`);
  }
}

/** The gate of a route with this access. */
export function authGate(auth: Auth, access: GateAccess): Gate {
  return ({ headers, clientAddress }) => {
    const header = headers.authorization;
    if (header === undefined || header === '') return allowed(access, undefined);
    // A token this process holds as valid costs no lookup, so the address's failure budget
    // does not apply: its own failures do not lock out a good token (a developer's typo, a
    // NAT shared with a bad client).
    const known = auth.recall(header);
    if (known !== undefined && known !== 'recently-valid') return allowed(access, known);
    // Nor does one found valid a few minutes ago, whose cache entry has expired: it is looked
    // up, and counts as a failure only if it has been revoked since.
    if (known === 'recently-valid') return auth.failures.counted(clientAddress, () => auth.fromHeader(header)).then((p) => allowed(access, p));
    auth.failures.check(clientAddress);
    return auth.failures.guard(clientAddress, () => auth.fromHeader(header)).then((p) => allowed(access, p));
  };
}
