/**
 * Seed file content by digest, shared by the server processes of one machine.
 *
 * A target's streams often start from the same files: many simulations of one starting
 * structure (Folding@home's clones of a run) differ only in what the core randomises. Every
 * stream still stores its own copy (its files are its own to download and delete), but the
 * stream records each seed file's SHA-256 (`seedDigest` in store/streams.ts, computed by the
 * server when the stream is created), so an assignment whose seed file another assignment has
 * just read takes the bytes from here instead of reading 200 KiB from the store.
 *
 * The content lives in files named by digest, in a directory the processes of one server
 * share ({@link createSeedCacheDir}; tmpfs by default), so a machine holds each content once
 * however many worker processes it runs: held in each process, the same 32 contents cost
 * 14 workers 14 copies (docs/performance.md). A hit reads the file into a buffer that lives
 * until the assignment is written. Content is kept as the base64 an assignment carries
 * ({@link Base64File}), 4/3 of its size: it goes into the message whole, where raw bytes would
 * be encoded again for every set-up.
 *
 * Each process keeps its own index of the digests it may read, in use order, within
 * `core.seedCacheBytes`; evicting one deletes its file. A digest another process deleted is a
 * miss (the read finds no file), and the content is written again on its next admission. Files
 * never change once there (a digest names one content; written under a temporary name, then
 * renamed), so nothing needs invalidating. A digest is admitted only the second time it is
 * asked for within the last {@link DOORKEEPER_SIZE} misses: when every stream's seeds differ,
 * nothing is written and nothing is held.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { base64Length, toBase64File, Base64File } from './assignment-message';
import { processRunning } from './process-alive';

/** Digests of recent misses remembered to decide admission (a Set cleared when full). */
export const DOORKEEPER_SIZE = 4096;

/** What a digest looks like (`seedDigest`: SHA-256 in base64url); anything else never names a file. */
const DIGEST = /^[A-Za-z0-9_-]{43}$/;

/** Counts the cache reports (the server's metrics). */
export interface SeedCacheCounters {
  hit(): void;
  miss(): void;
  bytes(held: number): void;
}

/** One process's index into the shared seed directory (core.seedCacheBytes). */
export class SeedCache {
  /** Digest → base64 bytes of its file. Map order is use order: the first entry is the least recently used. */
  private readonly entries = new Map<string, number>();
  private readonly seen = new Set<string>();
  private held = 0;

  /**
   * @param dir the shared directory ({@link createSeedCacheDir}); undefined turns the cache off
   * @param budgetBytes most bytes this process indexes, counted in base64 (core.seedCacheBytes);
   *   0 turns the cache off. A file whose base64 is over a quarter of it is never held, so one
   *   file cannot empty the cache.
   */
  constructor(
    private readonly dir: string | undefined,
    private readonly budgetBytes: number,
    private readonly counters?: SeedCacheCounters,
  ) {}

  /** Bytes this process indexes now (base64). */
  get size(): number {
    return this.held;
  }

  /** This content in base64, read from its file, or undefined (then read the stream's file and {@link offer} its bytes). */
  get(digest: string): Base64File | undefined {
    if (this.dir === undefined || this.budgetBytes === 0) return undefined;
    const size = this.entries.get(digest);
    const ascii = size === undefined ? undefined : readExactly(this.file(digest), size);
    if (ascii === undefined) {
      // Another process evicted it (or it is not what was written): forget it here too, and
      // let the next misses admit it again.
      if (size !== undefined) this.forget(digest, size);
      this.counters?.miss();
      return undefined;
    }
    this.entries.delete(digest);
    this.entries.set(digest, size!);
    this.counters?.hit();
    return new Base64File(ascii);
  }

  /** Bytes just read for `digest` after a miss. From the second miss on, written to the shared directory in base64. */
  offer(digest: string, bytes: Uint8Array): void {
    const size = base64Length(bytes.byteLength);
    if (this.dir === undefined || this.budgetBytes === 0 || size * 4 > this.budgetBytes || this.entries.has(digest) || !DIGEST.test(digest)) return;
    if (!this.seen.has(digest)) {
      if (this.seen.size >= DOORKEEPER_SIZE) this.seen.clear();
      this.seen.add(digest);
      return;
    }
    this.seen.delete(digest);
    if (!this.store(digest, bytes, size)) return;
    this.entries.set(digest, size);
    this.held += size;
    for (const [d, s] of this.entries) {
      if (this.held <= this.budgetBytes) break;
      this.forget(d, s);
    }
    this.counters?.bytes(this.held);
  }

  private file(digest: string): string {
    return path.join(this.dir!, digest);
  }

  /** Writes the content's file unless another process already has; false when it cannot be written (a full tmpfs). */
  private store(digest: string, bytes: Uint8Array, size: number): boolean {
    const file = this.file(digest);
    try {
      if (fs.statSync(file).size === size) return true;
    } catch {
      // Not there yet.
    }
    const temp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(temp, toBase64File(bytes).ascii, { mode: 0o600 });
      fs.renameSync(temp, file);
      return true;
    } catch {
      fs.rmSync(temp, { force: true });
      return false;
    }
  }

  private forget(digest: string, size: number): void {
    this.entries.delete(digest);
    this.held -= size;
    fs.rmSync(this.file(digest), { force: true });
    this.counters?.bytes(this.held);
  }
}

/** The file's bytes when it holds exactly `size`, else undefined (gone, or not what was written). */
function readExactly(file: string, size: number): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    // One byte more than expected tells a longer file from the right one.
    const out = Buffer.allocUnsafe(size + 1);
    let got = 0;
    for (let n = 1; n > 0 && got <= size; got += n) n = fs.readSync(fd, out, got, size + 1 - got, got);
    return got === size ? out.subarray(0, size) : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Name prefix of a server's seed directory; the rest is the creating process's pid and a random tail. */
const PREFIX = 'stream-coordinator-seeds-';
const DIR_NAME = new RegExp(`^${PREFIX}(\\d+)-`);

/**
 * The parent core.seedCacheDir names, or by default /dev/shm where this user may write in it
 * (tmpfs: a hit is a synchronous read, never a disk read), else the OS temporary directory.
 */
export function seedCacheParent(configured: string): string {
  if (configured !== '') return configured;
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // No tmpfs there, or not ours to write.
  }
  return os.tmpdir();
}

/** statfs magic of tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;

/** Whether `dir` is on tmpfs (memory), where a cache hit never waits for a disk. */
export function onTmpfs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * The seed directory a server starts with: made in the parent core.seedCacheDir names
 * ({@link createSeedCacheDir}), or undefined when core.seedCacheBytes turns the cache off.
 */
export function openSeedCacheDir(core: { seedCacheBytes: number; seedCacheDir: string }): string | undefined {
  return core.seedCacheBytes > 0 ? createSeedCacheDir(seedCacheParent(core.seedCacheDir)) : undefined;
}

/**
 * Makes the directory the processes of one server share for seed content (mode 0700, a name
 * no other process can have taken), after removing the directories of servers that no longer
 * run (killed before they could remove their own).
 */
export function createSeedCacheDir(parent: string): string {
  fs.mkdirSync(parent, { recursive: true });
  removeStaleSeedDirs(parent);
  return fs.mkdtempSync(path.join(parent, `${PREFIX}${process.pid}-`));
}

/** Removes a seed directory and what it holds. */
export function removeSeedCacheDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The seed directories in `parent`, each with the pid of the process that made it. */
export function seedCacheDirsIn(parent: string): Array<{ dir: string; pid: number }> {
  const out: Array<{ dir: string; pid: number }> = [];
  for (const name of fs.readdirSync(parent)) {
    const pid = DIR_NAME.exec(name)?.[1];
    if (pid !== undefined) out.push({ dir: path.join(parent, name), pid: Number(pid) });
  }
  return out;
}

/** Removes this user's seed directories whose creating process is gone; never follows a link. */
function removeStaleSeedDirs(parent: string): void {
  const uid = process.getuid?.();
  for (const { dir, pid } of seedCacheDirsIn(parent)) {
    if (pid === process.pid || processRunning(pid)) continue;
    try {
      const st = fs.lstatSync(dir);
      if (st.isDirectory() && (uid === undefined || st.uid === uid)) removeSeedCacheDir(dir);
    } catch {
      // Removed meanwhile by another server starting.
    }
  }
}
