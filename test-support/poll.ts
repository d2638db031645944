/** Waiting for a condition, for tests and benchmarks alike. */

/**
 * Polls `fn` every `intervalMs` until it returns a truthy value, or throws (naming `what` and
 * the last error) once `timeoutMs` has passed. Errors are retried, except those with
 * `fatal: true`, which end the wait at once.
 */
export async function eventually<T>(fn: () => Promise<T | undefined | false | null> | T | undefined | false | null, timeoutMs = 15000, what = 'condition', intervalMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String((last as Error).message ?? last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
