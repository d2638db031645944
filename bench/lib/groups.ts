/**
 * The process groups of the servers a benchmark started, so that whoever stops first (the
 * stack, an exit or a signal handler) can kill them all before the stores go away.
 */

/** Process-group ids of running server groups. */
export const groups = new Set<number>();

/** Kills every server group still running (for exit and signal handlers). */
export function killAllServersSync(): void {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  groups.clear();
}
