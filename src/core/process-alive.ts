/**
 * Whether a process runs, for the start-up sweeps that remove what dead processes left behind
 * (spill directories, seed directories): a directory is named after its process's pid and
 * removed only when that process is gone.
 */

/**
 * True while a process with this pid exists, whoever runs it (signal 0 answers EPERM for
 * another user's). False for anything but a positive integer, which `kill` would take for a
 * process group.
 */
export function processRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    return process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
