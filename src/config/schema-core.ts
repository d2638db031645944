/**
 * The schema sections of the core protocol: the `core` limits and timeouts of sessions,
 * leases and commits, and the process `memory` budget (schema.ts composes the whole schema).
 */
import { KIB, MIB } from './units';

/** `core` and `memory`. */
export const CORE_SCHEMA = {
  core: {
    heartbeatS: {
      doc: 'Seconds between WebSocket pings to cores; a socket silent for twice this is closed (uWS rounds to 4 s steps, and takes at most 960 s of silence: hence at most 480).',
      format: 'heartbeat-seconds',
      default: 30,
      env: 'SC_CORE_HEARTBEAT_S',
    },
    targetCacheMs: {
      doc: 'Milliseconds the hub trusts its cache of targets and managers\' weights without a change event before reading them all again, in the background while assignments go on with what it has (a missed bus message heals within this). A change to one target re-reads just that target, by _id, before the next assignment.',
      format: 'positive-int',
      default: 30000,
      env: 'SC_CORE_TARGET_CACHE_MS',
    },
    maxMessageBytes: {
      doc: 'Largest WebSocket message from a core in bytes; a larger one closes the socket with 1009.',
      format: 'positive-int',
      default: 16 * MIB,
      env: 'SC_CORE_MAX_MESSAGE_BYTES',
    },
    maxHeaderBytes: {
      doc: 'Largest JSON header of a binary core message in bytes (announced as max_header_bytes); larger is bad_request. Headers carry only their defined fields, so this stops padding.',
      format: 'positive-int',
      default: 64 * KIB,
      env: 'SC_CORE_MAX_HEADER_BYTES',
    },
    maxFilesPerMessage: {
      doc: 'Most files one frame or checkpoint message may list (announced as max_files_per_message); more is too_large.',
      format: 'positive-int',
      default: 256,
      env: 'SC_CORE_MAX_FILES_PER_MESSAGE',
    },
    maxFramesPerMessage: {
      doc: 'Most frames one frame message may claim (announced as max_frames_per_message); more is too_large. Bounds donor credit per message.',
      format: 'positive-int',
      default: 100000,
      env: 'SC_CORE_MAX_FRAMES_PER_MESSAGE',
    },
    maxFileNamesPerStream: {
      doc: 'Most distinct frame and checkpoint file names one stream may use over its life (announced as max_file_names_per_stream); a checkpoint adding more is too_large, and so is a frame message that would make more distinct names buffered. Keeps the stream document far from the 16 MiB limit.',
      format: 'positive-int',
      default: 1024,
      env: 'SC_CORE_MAX_FILE_NAMES_PER_STREAM',
    },
    fileNameCacheNames: {
      doc: "Most file names a process caches of the streams that commit through it, all streams together, so a commit whose names the stream already has does not read the stream document (core.maxFileNamesPerStream). Cores choose the names (up to 128 characters each): the bound is by names, each stream counting one more than it has, about 250 bytes each at most, 64 MiB with the default. Least recently committing streams are dropped first; a dropped stream's next commit reads its names again.",
      format: 'positive-int',
      default: 262144,
      env: 'SC_CORE_FILE_NAME_CACHE_NAMES',
    },
    maxSocketsPerAddress: {
      doc: 'Most open core sockets per client address (IPv4, or IPv6 /64) per process; further upgrades get 429 rate_limited. Large NATs may need more.',
      format: 'positive-int',
      default: 256,
      env: 'SC_CORE_MAX_SOCKETS_PER_ADDRESS',
    },
    maxAssignmentsPerKey: {
      doc: 'Most streams held at once by the cores of one engine key, per process, counting those kept for a resume after their socket closed (core.resumeGraceS); an assign or resume past it gets rate_limited. Engine keys ship with volunteer software, so this is a ceiling against a leaked key, not a per-user quota.',
      format: 'positive-int',
      default: 100000,
      env: 'SC_CORE_MAX_ASSIGNMENTS_PER_KEY',
    },
    maxAssignmentsPerDonor: {
      doc: 'Most streams held at once by the cores of one donor, per process, counting those kept for a resume after their socket closed (core.resumeGraceS); an assign or resume past it gets rate_limited.',
      format: 'positive-int',
      default: 256,
      env: 'SC_CORE_MAX_ASSIGNMENTS_PER_DONOR',
    },
    maxIdleAssignmentS: {
      doc: 'Seconds a core may hold a stream without committing; then the stream goes back to the pool and the core gets stop "idle_timeout" (the socket stays open).',
      format: 'positive-int',
      default: 3600,
      env: 'SC_CORE_MAX_IDLE_ASSIGNMENT_S',
    },
    maxBufferBytes: {
      doc: "Most uncommitted frame bytes buffered per stream, each file of a frame message counting 384 bytes more than its size (its record in the heap); a frame that would exceed it gets buffer_full (checkpoint first).",
      format: 'positive-int',
      default: 256 * MIB,
      env: 'SC_CORE_MAX_BUFFER_BYTES',
    },
    memoryBufferBytes: {
      doc: "Bytes of a stream's buffer kept in memory; beyond this the buffer spills to a file under dataDir.",
      format: 'positive-int',
      default: 1 * MIB,
      env: 'SC_CORE_MEMORY_BUFFER_BYTES',
    },
    messagesPerSecond: {
      doc: 'Messages per second a core may send (burst of twice this); more get rate_limited, and a socket that keeps going is closed with 1008.',
      format: 'positive-int',
      default: 200,
      env: 'SC_CORE_MESSAGES_PER_SECOND',
    },
    maxProtocolErrors: {
      doc: 'Bad messages tolerated per socket before it is closed with 1008.',
      format: 'positive-int',
      default: 50,
      env: 'SC_CORE_MAX_PROTOCOL_ERRORS',
    },
    maxStreamErrors: {
      doc: 'Consecutive core-reported errors after which a stream becomes failed and is no longer assigned (max_stream_errors).',
      format: 'positive-int',
      default: 10,
      env: 'SC_CORE_MAX_STREAM_ERRORS',
    },
    resumeGraceS: {
      doc: 'Seconds a dropped core keeps its stream leased so it can resume (resume_grace_s).',
      format: 'positive-int',
      default: 60,
      env: 'SC_CORE_RESUME_GRACE_S',
    },
    leaseTtlS: {
      doc: 'Seconds a stream lease lives without renewal; a node that dies loses its streams to the pool after this.',
      format: 'positive-int',
      default: 30,
      env: 'SC_CORE_LEASE_TTL_S',
    },
    leaseRenewS: {
      doc: 'Seconds between batched lease renewals (one Redis script per 500 sessions); must be well under core.leaseTtlS.',
      format: 'positive-int',
      default: 10,
      env: 'SC_CORE_LEASE_RENEW_S',
    },
    maxConcurrentCommits: {
      doc: 'Checkpoint commits the server runs against MongoDB at once, shared evenly by its worker processes (rounded up, at least 1 each); more wait their turn in order (the store is the ceiling of the commit path, and a store given more writes than it runs at once serves them in no fair order). Each node of a multi-node deployment has its own.',
      format: 'positive-int',
      default: 64,
      env: 'SC_CORE_MAX_CONCURRENT_COMMITS',
    },
    maxConcurrentAssignments: {
      doc: 'Assignments and resumes the server prepares at once (lease, stream and seed files read from MongoDB), shared evenly by its worker processes (rounded up, at least 1 each); more wait their turn in order, and one whose core hangs up while waiting costs nothing. A store given more reads than it runs at once serves them in no fair order, so a few set-ups wait many times longer than the rest. Keep each share below mongodb.maxPoolSize so commits still find connections.',
      format: 'positive-int',
      default: 16,
      env: 'SC_CORE_MAX_CONCURRENT_ASSIGNMENTS',
    },
    seedCacheBytes: {
      doc: "Bytes of seed files each server process indexes by content (SHA-256), so assignments of streams that share seed files (many simulations of one starting structure) read them from core.seedCacheDir instead of MongoDB. The content is held once per server in that directory, shared by its worker processes: 14 workers whose sessions use the same seeds hold one copy, not 14; when each worker's seeds differ, the directory holds up to workers x this. Content is kept as the base64 the assignment carries (4/3 of the file's size, which is what this counts). Only content asked for twice among the last 4,096 misses is kept, so streams whose seeds all differ cost nothing here; the least recently used content goes first; a file whose base64 is over a quarter of this is never kept. 0 turns the cache off.",
      format: 'nat',
      default: 32 * MIB,
      env: 'SC_CORE_SEED_CACHE_BYTES',
    },
    seedCacheDir: {
      doc: "Directory in which a server makes the private directory (mode 0700) its processes share for the seed cache (core.seedCacheBytes), and removes it when it stops; one left by a server that was killed is removed at the next start. Empty: /dev/shm where it exists (tmpfs), else the OS temporary directory. A cache hit reads its file synchronously, so keep it in memory (tmpfs) or on a local disk whose page cache holds it; the bytes there count as the server's memory (docs/performance.md).",
      format: String,
      default: '',
      env: 'SC_CORE_SEED_CACHE_DIR',
    },
    retryAfterS: {
      doc: 'retry_after_s sent with no_streams_available.',
      format: 'positive-int',
      default: 30,
      env: 'SC_CORE_RETRY_AFTER_S',
    },
    maxErrorTextBytes: {
      doc: 'Longest error text a core may report with stop (longer text is cut).',
      format: 'positive-int',
      default: 4096,
      env: 'SC_CORE_MAX_ERROR_TEXT_BYTES',
    },
    assignAttempts: {
      doc: 'Streams one assign request may lease and find stopped or deleted before it answers no_streams_available.',
      format: 'positive-int',
      default: 5,
      env: 'SC_CORE_ASSIGN_ATTEMPTS',
    },
    minBackpressureBytes: {
      doc: 'Bytes of unsent replies a core socket may queue before it is dropped (a core that does not read); the limit used is the larger of this and twice core.maxMessageBytes.',
      format: 'positive-int',
      default: 64 * MIB,
      env: 'SC_CORE_MIN_BACKPRESSURE_BYTES',
    },
    unreadRepliesBytes: {
      doc: "Bytes of its own replies a core socket may leave unread and still be taken for one that reads: more than an honest core has waiting, but an assignment being written. Past it, a core that sends anything while the process holds more than memory.unsentBytes is closed (its answer would only add to them), and any close of such a socket is made at once, without the close handshake it would not read (uWS and ws would otherwise hold the socket and its bytes until the handshake timed out).",
      format: 'positive-int',
      default: 64 * 1024,
      env: 'SC_CORE_UNREAD_REPLIES_BYTES',
    },
    maxUnsentBeforeAssignBytes: {
      doc: 'An assign or resume is refused (rate_limited, retry_after_s 1) while the socket holds more than this many bytes of earlier replies not yet taken by the core: a core that does not read cannot make the node hold assignment after assignment (each carries its seed files) up to core.minBackpressureBytes.',
      format: 'positive-int',
      default: 4 * MIB,
      env: 'SC_CORE_MAX_UNSENT_BEFORE_ASSIGN_BYTES',
    },
  },
  memory: {
    budgetBytes: {
      doc: "Process-wide memory budget in bytes for what clients make a node hold: buffered frames in memory, queued core messages, request bodies being read, replies not yet sent and checkpoints being committed. A core message that does not fit closes its socket with 1013 (try again later), a request body that does not fit gets 429 rate_limited; RSS stays within this plus a fixed overhead.",
      format: 'positive-int',
      default: 1024 * MIB,
      env: 'SC_MEMORY_BUDGET_BYTES',
    },
    spillAtBytes: {
      doc: 'Buffered frame bytes held in memory by all streams of a process together; beyond this every stream spills new frames to disk (each stream also spills past core.memoryBufferBytes).',
      format: 'positive-int',
      default: 256 * MIB,
      env: 'SC_MEMORY_SPILL_AT_BYTES',
    },
    diskBudgetBytes: {
      doc: 'Spilled frame bytes on disk for all streams of a process together; a frame that would exceed it gets buffer_full with retry_after_s.',
      format: 'positive-int',
      default: 32 * 1024 * MIB,
      env: 'SC_MEMORY_DISK_BUDGET_BYTES',
    },
    sessionQueueBytes: {
      doc: "Bytes of messages one core socket may have queued behind its session's current message (e.g. a slow commit); more closes the socket with 1013.",
      format: 'positive-int',
      default: 64 * MIB,
      env: 'SC_MEMORY_SESSION_QUEUE_BYTES',
    },
    bodiesBytes: {
      doc: "Bytes of HTTP request bodies being read, all requests of a process together, within memory.budgetBytes. Counted as the bytes arrive; a body that would pass it gets 429 rate_limited and its connection is closed. Anyone may send a body to a public route (donor registration), so this keeps slow or stalled uploads from taking the budget the cores' messages and frames need.",
      format: 'positive-int',
      default: 256 * MIB,
      env: 'SC_MEMORY_BODIES_BYTES',
    },
    repliesBytes: {
      doc: "Bytes of HTTP replies written but not yet taken by the kernel, all replies of a process together, within memory.budgetBytes. A client that does not read its replies holds what is left of them; a reply that would pass this gets 429 rate_limited instead. Replies served from a shared cache (the anonymous target list) and streamed downloads hold one chunk at a time and are not counted.",
      format: 'positive-int',
      default: 256 * MIB,
      env: 'SC_MEMORY_REPLIES_BYTES',
    },
    partialMessagesBytes: {
      doc: "Bytes of core messages received in part (a message's bytes arrive before the message is whole), all sockets of a process together, within memory.budgetBytes. A socket whose next bytes would pass this is closed with 1013 (try again later; the core resumes), so cores that send most of a large message and stall hold at most this much. The uws transport counts what uWS reserves: a message's whole declared length from its first part. The node transport counts what each socket read since its last whole message, each read with the 512 bytes ws keeps for it (short by at most part of one read). At least core.maxMessageBytes.",
      format: 'positive-int',
      default: 256 * MIB,
      env: 'SC_MEMORY_PARTIAL_MESSAGES_BYTES',
    },
    unsentBytes: {
      doc: "Bytes of messages to cores written but not yet taken by the kernel, all sockets of a process together, within memory.budgetBytes (on uws also what uWS holds of HTTP replies, which are written with backpressure and so seldom held). While more are held, assign and resume get rate_limited (retry_after_s 1): they are what sends a core hundreds of KiB (seed files) or more (checkpoint files). Each socket is also bounded on its own (core.maxUnsentBeforeAssignBytes).",
      format: 'positive-int',
      default: 256 * MIB,
      env: 'SC_MEMORY_UNSENT_BYTES',
    },
  },
};
