/**
 * The fixed settings of each mode. Nothing in a run's configuration is random: the same mode
 * on the same machine does the same work. Every phase has a count and a time limit.
 */

/** One frame size of the frames benchmark. */
export interface FrameSize {
  label: string;
  bytes: number;
  /**
   * Frames per checkpoint: chosen so every partition holds 1 MiB of frames (inline in
   * MongoDB); 0 for the frame-path variant: one checkpoint after the last frame, with the
   * rate read at the last frame ack (the hot path alone: buffer in memory, ack).
   */
  framesPerCheckpoint: number;
  /** Frames sent in total (spread over the cores). */
  frames: number;
  /**
   * Unanswered messages per core: ≤ 256 KiB in flight per core, except in the "window 16"
   * variant (1 MiB in flight), which checks that pipelining cores are not dropped (the uSockets
   * TLS problem of bench/uws-tls-burst.ts that src/transport/uws-core.ts works around).
   */
  window: number;
}

/** One concurrency level of the commits benchmark. */
export interface CommitLevel {
  streams: number;
  /** Commits in total at this level (spread over the streams). */
  commits: number;
}

/** The frame path of the commits benchmark: frames with a checkpoint every `framesPerCheckpoint`. */
export interface FramePath {
  cores: number;
  frameBytes: number;
  framesPerCheckpoint: number;
  /** Frames sent in total (spread over the cores; a whole number of checkpoints per core). */
  frames: number;
  /** Unanswered messages per core. */
  window: number;
}

/** The scale benchmark: assignments at growing store sizes (bench/scale.ts). */
export interface ScaleSettings {
  /** Streams in the store at each level, measured in this order. */
  levels: number[];
  /** Of each level's streams, this many are new (seed files only) and are the ones assigned; the rest carry a committed history. */
  newStreams: number;
  /** Committed partitions per history stream, and their sizes (bench/lib/populate.ts History). */
  history: { partitions: number; framesPerPartition: number; frameBytes: number; checkpointBytes: number };
  /** Assignments one after the other on fresh sockets (assign → assignment latency, no other load). */
  probe: { count: number };
  /** Set-up rate: `count` sessions from `loadgens` forked load generators, `concurrency` each. */
  rate: { count: number; loadgens: number; concurrency: number; timeoutMs: number; deadlineS: number };
  /**
   * A target of long streams, in a database of its own: `streams` streams of `partitions`
   * committed partitions each (the history's file sizes), for the manager's views whose
   * cost follows a stream's length rather than the store's size.
   */
  long: { streams: number; partitions: number };
}

/**
 * All settings of a mode. Deadlines allow for the recipe's data: every assignment carries
 * 202 KiB of seed files (≈ 270 KiB of JSON), which set-up rates on this machine measured at
 * ≈ 35–50 sessions/s (bench:scale), not the ≈ 350/s of streams without seed files.
 */
export interface ModeSettings {
  sessions: {
    count: number;
    /** At most this many sockets per load-generator process and per server process. */
    perProcess: number;
    /** server.maxConnections of each server process (above perProcess: SO_REUSEPORT spreads unevenly). */
    maxConnections: number;
    /** Sessions being set up at once, per load generator. */
    concurrency: number;
    /** Seconds the servers run with no session before their RSS is read as the baseline (bench/lib/proc.ts settledRssKiB). */
    settleS: number;
    /** Seconds the sessions are held idle before memory is read (full: a multiple of core.leaseRenewS, 10 s, so the idle CPU figure covers whole renewal periods). */
    holdS: number;
    timeoutMs: number;
    /** Seconds to set up every session; `--sessions=N` above `count` scales it by N / count. */
    deadlineS: number;
    /**
     * Times a failed set-up is tried again, as a real core reconnects: after the delay the
     * refusal names (`retry_after_s`, `Retry-After`; no_streams_available says 30 s), else
     * after 1 s, each plus up to as much again; counted and reported.
     */
    retries: number;
  };
  /** count: below server.maxConnections (17,500): each target is one server process, and sessions stay open until the end. */
  setup: { count: number; loadgens: number; concurrency: number; timeoutMs: number; deadlineS: number };
  /** memoryBufferBytes: server core.memoryBufferBytes (the frame-path variant buffers everything in memory). */
  frames: { cores: number; sizes: FrameSize[]; checkpointBytes: number; deadlineS: number; memoryBufferBytes: number };
  /** frameBytes/checkpointBytes: one frame and one checkpoint state per commit (bench/lib/fixtures.ts RECIPE sizes). */
  commits: { levels: CommitLevel[]; frameBytes: number; checkpointBytes: number; deadlineS: number; framePath: FramePath };
  scale: ScaleSettings;
  admin: { connections: number; durationS: number; warmupS: number; streams: number };
  /**
   * The heap benchmark: heap snapshots of one server worker holding `low`, then `high`
   * sessions, taken `settleS` after the last set-up of each: over a minute, so the process's
   * periodic work (the idle-assignment sweep runs once a minute by default, lease renewals
   * every 10 s) has touched every held session, as in the sessions benchmark's 60 s hold.
   */
  heap: { low: number; high: number; concurrency: number; timeoutMs: number; deadlineS: number; settleS: number };
}

const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * The committed history of the scale benchmark's bulk streams: 10 partitions each (1M at
 * 100k streams), with frame and checkpoint files far smaller than the recipe's so a million
 * partitions fit this machine's disk and an afternoon's load (bench/README.md says why).
 */
const HISTORY = { partitions: 10, framesPerPartition: 100, frameBytes: 2 * KIB, checkpointBytes: 2 * KIB };

export const MODES: Record<'quick' | 'full', ModeSettings> = {
  quick: {
    sessions: { count: 3000, perProcess: 15000, maxConnections: 17500, concurrency: 64, settleS: 30, holdS: 5, timeoutMs: 30_000, deadlineS: 240, retries: 3 },
    heap: { low: 1000, high: 3000, concurrency: 64, timeoutMs: 30_000, deadlineS: 240, settleS: 65 },
    setup: { count: 1500, loadgens: 2, concurrency: 16, timeoutMs: 20_000, deadlineS: 120 },
    frames: {
      cores: 4,
      checkpointBytes: 200 * KIB,
      memoryBufferBytes: 16 * MIB,
      deadlineS: 15,
      sizes: [
        { label: '1 KiB', bytes: KIB, framesPerCheckpoint: 1024, frames: 32_768, window: 64 },
        { label: '1 KiB, checkpoint at the end', bytes: KIB, framesPerCheckpoint: 0, frames: 49_152, window: 64 },
        { label: '64 KiB', bytes: 64 * KIB, framesPerCheckpoint: 16, frames: 768, window: 4 },
        { label: '1 MiB', bytes: MIB, framesPerCheckpoint: 1, frames: 32, window: 1 },
        { label: '64 KiB, window 16', bytes: 64 * KIB, framesPerCheckpoint: 16, frames: 512, window: 16 },
      ],
    },
    commits: {
      frameBytes: 256 * KIB,
      checkpointBytes: 200 * KIB,
      deadlineS: 40,
      levels: [
        { streams: 1, commits: 60 },
        { streams: 20, commits: 300 },
        { streams: 200, commits: 200 },
      ],
      framePath: { cores: 2, frameBytes: 64 * KIB, framesPerCheckpoint: 1024, frames: 2048, window: 16 },
    },
    admin: { connections: 32, durationS: 2, warmupS: 1, streams: 10 },
    scale: {
      levels: [1000, 10_000],
      newStreams: 500,
      history: HISTORY,
      probe: { count: 200 },
      rate: { count: 500, loadgens: 1, concurrency: 16, timeoutMs: 30_000, deadlineS: 60 },
      long: { streams: 100, partitions: 1000 },
    },
  },
  full: {
    sessions: { count: 100_000, perProcess: 15000, maxConnections: 17500, concurrency: 64, settleS: 30, holdS: 60, timeoutMs: 60_000, deadlineS: 3600, retries: 3 },
    heap: { low: 3000, high: 9000, concurrency: 64, timeoutMs: 60_000, deadlineS: 600, settleS: 65 },
    setup: { count: 15_000, loadgens: 2, concurrency: 16, timeoutMs: 30_000, deadlineS: 600 },
    frames: {
      cores: 8,
      checkpointBytes: 200 * KIB,
      memoryBufferBytes: 16 * MIB,
      deadlineS: 60,
      sizes: [
        { label: '1 KiB', bytes: KIB, framesPerCheckpoint: 1024, frames: 409_600, window: 64 },
        { label: '1 KiB, checkpoint at the end', bytes: KIB, framesPerCheckpoint: 0, frames: 131_072, window: 64 },
        { label: '64 KiB', bytes: 64 * KIB, framesPerCheckpoint: 16, frames: 8192, window: 4 },
        { label: '1 MiB', bytes: MIB, framesPerCheckpoint: 1, frames: 512, window: 1 },
        { label: '64 KiB, window 16', bytes: 64 * KIB, framesPerCheckpoint: 16, frames: 4096, window: 16 },
      ],
    },
    commits: {
      frameBytes: 256 * KIB,
      checkpointBytes: 200 * KIB,
      deadlineS: 120,
      levels: [
        { streams: 1, commits: 500 },
        { streams: 20, commits: 3000 },
        { streams: 200, commits: 4000 },
      ],
      framePath: { cores: 4, frameBytes: 64 * KIB, framesPerCheckpoint: 1024, frames: 16_384, window: 16 },
    },
    admin: { connections: 32, durationS: 15, warmupS: 2, streams: 10 },
    scale: {
      levels: [1000, 10_000, 100_000],
      newStreams: 500,
      history: HISTORY,
      probe: { count: 500 },
      rate: { count: 500, loadgens: 1, concurrency: 16, timeoutMs: 60_000, deadlineS: 120 },
      long: { streams: 100, partitions: 1000 },
    },
  },
};
