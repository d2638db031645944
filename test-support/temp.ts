/**
 * Temporary directories of the servers a test file or benchmark starts (their data and
 * config files), removed when the process exits, so that `npm test` leaves nothing in the
 * OS temporary directory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];

function removeAll(): void {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** A fresh directory `<os tmpdir>/<prefix>XXXXXX`, removed at this process's exit. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (made.push(dir) === 1) process.once('exit', removeAll);
  return dir;
}
