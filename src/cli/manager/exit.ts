/**
 * Exit codes of the manager commands, and the error that carries one. They extend the
 * server commands' convention (0 success, 1 failure, 2 bad usage) so scripts can tell an
 * expired token from a missing stream from a server outage.
 */

/** Process exit codes (documented in docs/cli.md). */
export const EXIT = {
  /** Everything asked for was done. */
  ok: 0,
  /** An unexpected failure (a bug, a local file that cannot be written). */
  failed: 1,
  /** Bad usage: unknown command or flag, missing argument, unusable local input, not logged in. */
  usage: 2,
  /** The server refused the token: missing, unknown or revoked (401), or not allowed (403). */
  auth: 3,
  /** No such target, stream, user, key or file (404). */
  notFound: 4,
  /** The server refused the request as invalid or conflicting (400, 409, 413, 415, 416, 429). */
  refused: 5,
  /** The server failed (5xx) or could not be reached (connection, TLS, timeout). */
  server: 6,
} as const;

/** An exit code. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure to report on stderr and exit with. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: ExitCode, readonly status?: number, readonly code?: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** The exit code for an HTTP error status. */
export function exitForStatus(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  if (status >= 500) return EXIT.server;
  if (status >= 400) return EXIT.refused;
  return EXIT.failed;
}

/** A usage error. */
export function usage(message: string): CliError {
  return new CliError(message, EXIT.usage);
}
