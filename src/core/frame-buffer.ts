/**
 * The uncommitted frames of one assignment: appended file by file, kept in memory up to
 * `core.memoryBufferBytes`, then spilled to a private file under the data directory so
 * thousands of sessions never hold large buffers in RAM. Drained at checkpoint, discarded
 * on stop or disconnect.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { NamedBytes } from '../store/partitions';
import type { Logger } from '../telemetry/log';
import type { MemoryBudget } from './memory-budget';

/** A frame message that the process's disk budget cannot take (nothing of it was buffered). */
export class SpillBudgetExceeded extends Error {}

interface Segment {
  name: string;
  /** In memory… */
  bytes?: Buffer;
  /** …or at this offset of the spill file. */
  offset?: number;
  length: number;
}

/**
 * What one buffered file costs beyond its bytes: its record, name and buffer view in the heap
 * (1,024,000 empty files with 120-character names held 370 MiB). Counted against `core.maxBufferBytes` and the
 * memory budget, so frame messages of many small or empty files cannot hold more heap than
 * their byte counts say.
 */
export const FILE_OVERHEAD_BYTES = 384;

/** The segments of an empty buffer: shared, so an idle assignment's buffer holds no array of its own. */
const NO_SEGMENTS: readonly Segment[] = Object.freeze([]);

/** One assignment's buffer. Not safe for concurrent use: callers serialize per session. */
export class FrameBuffer {
  private segments: readonly Segment[] = NO_SEGMENTS;
  private memory = 0;
  private spillFile: string | undefined;
  private spillFd: fsp.FileHandle | undefined;
  private spillSize = 0;
  /** Total buffered bytes. */
  bytes = 0;
  /** Distinct file names buffered (at most core.maxFileNamesPerStream: the session checks {@link newNames} first). */
  private readonly names = new Set<string>();
  /** Total buffered frames. */
  frames = 0;

  /**
   * @param dir where spill files go (dataDir/spill)
   * @param memoryLimit bytes kept in memory before spilling
   * @param budget the process's memory budget: in-memory bytes count as `frames` and spill
   *   once its global threshold is reached; spilled bytes count against its disk budget
   */
  constructor(
    private readonly dir: string,
    private readonly memoryLimit: number,
    private readonly id: string,
    private readonly log?: Logger,
    private readonly budget?: MemoryBudget,
  ) {}

  /**
   * Appends one frame message's files. Their bytes must not be reused by the caller
   * afterwards. Throws {@link SpillBudgetExceeded} (buffering nothing) when the bytes that
   * must spill do not fit the disk budget.
   */
  async append(files: NamedBytes[], frames: number): Promise<void> {
    // Decide every file's place first, so a refusal leaves the buffer as it was. A file's
    // record stays in the heap wherever its bytes go.
    const overhead = files.length * FILE_OVERHEAD_BYTES;
    if (this.budget && !this.budget.tryKeepFrames(overhead)) throw new SpillBudgetExceeded(`The node's memory budget cannot take ${files.length} more buffered files`);
    const keep: boolean[] = [];
    let kept = 0;
    let spilled = 0;
    for (const f of files) {
      const n = f.bytes.length;
      const inMemory = this.memory + kept + n <= this.memoryLimit && (this.budget?.tryKeepFrames(n) ?? true);
      keep.push(inMemory);
      if (inMemory) kept += n;
      else spilled += n;
    }
    if (spilled > 0 && this.budget && !this.budget.tryTakeDisk(spilled)) {
      this.budget.give('frames', kept + overhead);
      throw new SpillBudgetExceeded(`The node's spill budget cannot take ${spilled} more bytes`);
    }
    const segments = this.segments === NO_SEGMENTS ? [] : (this.segments as Segment[]);
    this.segments = segments;
    for (const [i, f] of files.entries()) {
      if (keep[i]) {
        segments.push({ name: f.name, bytes: owned(f.bytes), length: f.bytes.length });
        this.memory += f.bytes.length;
      } else {
        await this.openSpill();
        await this.spillFd!.write(f.bytes, 0, f.bytes.length, this.spillSize);
        segments.push({ name: f.name, offset: this.spillSize, length: f.bytes.length });
        this.spillSize += f.bytes.length;
      }
      this.bytes += f.bytes.length;
      this.names.add(f.name);
    }
    this.frames += frames;
  }

  /** What the buffer holds as counted against core.maxBufferBytes: its bytes and {@link FILE_OVERHEAD_BYTES} per file. */
  get held(): number {
    return this.bytes + this.overhead;
  }

  /** The records of the buffered files, one segment each, as counted ({@link FILE_OVERHEAD_BYTES}). */
  private get overhead(): number {
    return this.segments.length * FILE_OVERHEAD_BYTES;
  }

  /** Distinct file names buffered. */
  get nameCount(): number {
    return this.names.size;
  }

  /** How many of `files`' names the buffer does not hold yet. */
  newNames(files: NamedBytes[]): number {
    let n = 0;
    for (const f of files) if (!this.names.has(f.name)) n++;
    return n;
  }

  /** Bytes held on disk (read into memory by {@link drain}). */
  get spilledBytes(): number {
    return this.spillSize;
  }

  /** The buffered bytes per file name, each the concatenation of its appends in order. */
  async drain(): Promise<NamedBytes[]> {
    const byName = new Map<string, Buffer[]>();
    for (const s of this.segments) {
      let b = s.bytes;
      if (!b) {
        b = Buffer.allocUnsafe(s.length);
        await this.spillFd!.read(b, 0, s.length, s.offset!);
      }
      const list = byName.get(s.name) ?? [];
      list.push(b);
      byName.set(s.name, list);
    }
    return [...byName].map(([name, parts]) => ({ name, bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts) }));
  }

  /**
   * Forgets everything and removes the spill file. Never rejects (it runs on close paths
   * nobody awaits): a spill file that cannot be removed is logged and left for the start-up
   * sweep of the spill directory.
   */
  async clear(): Promise<void> {
    // One segment per buffered file: its record was counted with its bytes.
    this.budget?.give('frames', this.memory + this.overhead);
    this.budget?.giveDisk(this.spillSize);
    this.segments = NO_SEGMENTS;
    this.memory = 0;
    this.names.clear();
    this.bytes = 0;
    this.frames = 0;
    this.spillSize = 0;
    const fd = this.spillFd;
    const file = this.spillFile;
    this.spillFd = undefined;
    this.spillFile = undefined;
    await fd?.close().catch(() => undefined);
    if (file) await fsp.rm(file, { force: true }).catch((err: Error) => this.log?.warn({ err: err.message, file }, 'could not remove a spill file; the next start removes it'));
  }

  private async openSpill(): Promise<void> {
    if (this.spillFd) return;
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.spillFile = path.join(this.dir, `${this.id}.spill`);
    this.spillFd = await fsp.open(this.spillFile, 'w+', 0o600);
  }
}

/**
 * The bytes to keep: the view itself when it covers at least half of the memory behind it
 * (the usual one-file message), else a copy, so a small file never keeps its whole message
 * (header, other files) alive and the memory held stays within twice the bytes counted.
 */
export function owned(bytes: Buffer): Buffer {
  return bytes.length * 2 >= bytes.buffer.byteLength ? bytes : Buffer.from(bytes);
}

/** Removes spill files left by a previous run (their frames were never committed). */
export function clearSpillDir(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.spill')) fs.rmSync(path.join(dir, f), { force: true });
}
