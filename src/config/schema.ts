/**
 * The configuration schema: every key with its doc, default, format and environment
 * variable, and the `Settings` type derived from it. The listener and connection sections
 * are in schema-connections.ts, the core protocol's in schema-core.ts, the custom formats in
 * formats.ts; loading (files, environment, flags, secrets from files) is in settings.ts.
 */
import './formats';
import { CONNECTION_SCHEMA } from './schema-connections';
import { CORE_SCHEMA } from './schema-core';
import { KIB, MIB } from './units';

/** The schema: every key with doc, format, default and environment variable. */
export const schema = {
  env: {
    doc: 'Deployment environment; selects conf/<env>.json when present.',
    format: ['production', 'development', 'test'],
    default: 'production',
    env: 'NODE_ENV',
  },
  dataDir: {
    doc: 'Directory for local working files (spilled frame buffers). Created if missing.',
    format: String,
    default: './data',
    env: 'SC_DATA_DIR',
    arg: 'data-dir',
  },
  ...CONNECTION_SCHEMA,
  http: {
    maxBodyBytes: {
      doc: 'Largest JSON request body in bytes (all routes but stream creation); larger bodies get 413 without being buffered.',
      format: 'positive-int',
      default: 1 * MIB,
      env: 'SC_HTTP_MAX_BODY_BYTES',
    },
    maxConnections: {
      doc: 'Most open connections per process that are not core sockets (HTTP connections, and upgrades not yet done), from all addresses and trusted proxies together. A connection past it is closed as it is accepted, before its TLS handshake, so clients holding many addresses cannot take the file descriptors the process needs for its store, Redis and files. Preflight counts it in the open-files limit.',
      format: 'positive-int',
      default: 1024,
      env: 'SC_HTTP_MAX_CONNECTIONS',
    },
    maxConnectionsPerAddress: {
      doc: "Most open connections per client address (IPv4, or IPv6 /64; the TCP peer) per process that are not core sockets: HTTP connections, and upgrades not yet done. A connection past it is closed as it is accepted, before its TLS handshake, so one host cannot take a process's file descriptors. Core sockets count against core.maxSocketsPerAddress instead. Peers in server.trustProxy are not counted: cap connections per client on the proxy.",
      format: 'positive-int',
      default: 256,
      env: 'SC_HTTP_MAX_CONNECTIONS_PER_ADDRESS',
    },
    idleTimeoutS: {
      doc: "Seconds a connection on the node transport may take to complete its TLS handshake, and then its request head (request line and headers), and may go without taking any of a reply it has asked for (each 64 KiB chunk, and the end); past it the connection is closed, so clients that connect and send nothing, send headers a byte at a time or read no reply hold no socket, and no reply's memory (memory.repliesBytes), for long. A refused core upgrade is closed once its answer is written, or after this long if the client does not take it; one whose decision (the store's key lookups) takes over three times this long is closed. The uws transport closes such connections after a fixed 10 s (uWebSockets.js; 12–16 s in practice, as its timers tick every 4 s).",
      format: 'positive-int',
      default: 10,
      env: 'SC_HTTP_IDLE_TIMEOUT_S',
    },
    bodyGraceS: {
      doc: 'Seconds a request body has, from when its route lets it be read (after authentication, which the server may take its time over), before its pace counts (http.minBodyBytesPerSecond). A body still arriving when it falls behind gets 408 request_timeout and its connection is closed, on both transports: a client that drips a body (anyone may send one to donor registration) holds neither a connection nor body memory (memory.bodiesBytes) for long.',
      format: 'positive-int',
      default: 10,
      env: 'SC_HTTP_BODY_GRACE_S',
    },
    minBodyBytesPerSecond: {
      doc: 'Bytes per second a request body must average after http.bodyGraceS: each byte received gives it 1/this seconds more. The default lets a 64 MiB stream upload (http.maxStreamBodyBytes) take over an hour, and makes a client that keeps many slow bodies open spend bandwidth for each.',
      format: 'positive-int',
      default: 16384,
      env: 'SC_HTTP_MIN_BODY_BYTES_PER_SECOND',
    },
    targetCacheMs: {
      doc: 'Milliseconds GET /v1/targets/:id may serve a target and its stream counts from a per-process cache (changes to the target drop it at once; stream counts may lag by this much).',
      format: 'positive-int',
      default: 1000,
      env: 'SC_HTTP_TARGET_CACHE_MS',
    },
    maxStreamBodyBytes: {
      doc: 'Largest body of POST /v1/targets/:id/streams in bytes (seed and tag files, base64 in JSON).',
      format: 'positive-int',
      default: 64 * MIB,
      env: 'SC_HTTP_MAX_STREAM_BODY_BYTES',
    },
    streamTotalCacheMs: {
      doc: "Milliseconds the stream list's `total` (GET /v1/targets/:id/streams) may come from a per-process cache. Creating or deleting a stream drops it at once through the bus, so it lags only when a bus message is missed or a deletion fails half-way (the janitor finishes it).",
      format: 'positive-int',
      default: 30000,
      env: 'SC_HTTP_STREAM_TOTAL_CACHE_MS',
    },
    targetCacheMaxEntries: {
      doc: 'Most targets the GET /v1/targets/:id cache (http.targetCacheMs) and the stream-total cache (http.streamTotalCacheMs) each hold per process; past it the oldest entry is dropped.',
      format: 'positive-int',
      default: 10000,
      env: 'SC_HTTP_TARGET_CACHE_MAX_ENTRIES',
    },
    activeCoresCacheMs: {
      doc: 'Milliseconds GET /v1/active-cores, which anyone may ask, serves one answer from a per-process cache. Computing it reads the registry entry of every live process from Redis (the counts themselves move only at each heartbeat, server.nodeHeartbeatS), so without the cache each anonymous request would cost Redis one command per process.',
      format: 'positive-int',
      default: 1000,
      env: 'SC_HTTP_ACTIVE_CORES_CACHE_MS',
    },
    activeStreamsCacheMs: {
      doc: "Milliseconds GET /v1/active-streams serves its records and per-target progress counts from one per-process read (each caller still sees only its own targets' streams). The read is one Redis HGETALL per target in the pool, every record of every open session, so without it each poll of a dashboard would cost Redis and the process that much; buffered and committed counts may lag by this much.",
      format: 'positive-int',
      default: 1000,
      env: 'SC_HTTP_ACTIVE_STREAMS_CACHE_MS',
    },
    leaderboardCacheMs: {
      doc: 'Milliseconds GET /v1/donors (the leaderboard, which anyone may ask) is served from one per-process read of the top donors.leaderboardMax donors; each answer is a prefix of it. The read sorts every donor (71–114 ms at 100,000 donors on the embedded store), so without it each anonymous request would cost that; credit shows on the leaderboard this much later.',
      format: 'positive-int',
      default: 5000,
      env: 'SC_HTTP_LEADERBOARD_CACHE_MS',
    },
    publicTargetsCacheMs: {
      doc: 'Milliseconds the anonymous GET /v1/targets (the public targets, with their options) is served from one per-process answer, kept as bytes and sent a chunk at a time. Any change to a target drops it at once through the bus. Without it each anonymous request would read and serialize every public target (up to limits.maxListItems, each with up to limits.maxOptionsBytes of options).',
      format: 'positive-int',
      default: 1000,
      env: 'SC_HTTP_PUBLIC_TARGETS_CACHE_MS',
    },
    targetUpdateAttempts: {
      doc: 'Times PATCH /v1/targets/:id re-reads and retries when the target changed under it (optimistic concurrency) before answering 409 conflict.',
      format: 'positive-int',
      default: 5,
      env: 'SC_HTTP_TARGET_UPDATE_ATTEMPTS',
    },
  },
  ...CORE_SCHEMA,
  cors: {
    allowedOrigins: {
      doc: 'Origins (e.g. https://dashboard.example.org) whose browsers may call the admin API; "*" allows any. Empty: no CORS headers.',
      format: Array,
      default: [] as string[],
      env: 'SC_CORS_ALLOWED_ORIGINS',
    },
  },
  auth: {
    cacheTtlS: {
      doc: 'Seconds a token lookup is cached per process. Rotation and revocation are pushed to every process at once through Redis, so this only bounds staleness while Redis is down.',
      format: 'positive-int',
      default: 10,
      env: 'SC_AUTH_CACHE_TTL_S',
    },
    cacheMaxEntries: {
      doc: 'Most token and engine-key lookups cached per process, and most client addresses whose failed authentications it tracks (auth.failuresPerMinute; the least recently failing address is forgotten first).',
      format: 'positive-int',
      default: 100000,
      env: 'SC_AUTH_CACHE_MAX_ENTRIES',
    },
    failuresPerMinute: {
      doc: 'Failed authentications (unknown tokens or engine keys) allowed per client address (IPv4, or IPv6 /64) per minute, per process; past it HTTP requests and core upgrades get 429 rate_limited before any lookup, except with credentials the process already holds as valid (no lookup needed).',
      format: 'positive-int',
      default: 30,
      env: 'SC_AUTH_FAILURES_PER_MINUTE',
    },
  },
  donors: {
    openRegistration: {
      doc: 'Whether anyone may register a donor (POST /v1/donors); when false only admins can.',
      format: Boolean,
      default: true,
      env: 'SC_DONORS_OPEN_REGISTRATION',
    },
    registrationsPerHour: {
      doc: 'Donor registrations allowed per client address per hour (shared by all processes through Redis).',
      format: 'positive-int',
      default: 10,
      env: 'SC_DONORS_REGISTRATIONS_PER_HOUR',
    },
    registrationsPerHourTotal: {
      doc: 'Donor registrations allowed per hour from all addresses together (shared by all processes through Redis): the per-address limit counts an IPv6 /64, and one /48 holds 65,536 of them, so this is what bounds the donors collection. Admins register past it.',
      format: 'positive-int',
      default: 10000,
      env: 'SC_DONORS_REGISTRATIONS_PER_HOUR_TOTAL',
    },
    leaderboardMax: {
      doc: 'Largest `top` of GET /v1/donors.',
      format: 'positive-int',
      default: 1000,
      env: 'SC_DONORS_LEADERBOARD_MAX',
    },
    creditBatchMax: {
      doc: 'Most fragments (ended activations) a process writes to the store in one batch, with their donors\' credit. Fragments that end while a batch is being written wait for the next one.',
      format: 'positive-int',
      default: 256,
      env: 'SC_DONORS_CREDIT_BATCH_MAX',
    },
    creditMaxQueued: {
      doc: 'Most fragments a process holds waiting for the store (about 300 bytes each); past it an ended activation is logged and its credit not recorded. Committed frames are not affected.',
      format: 'positive-int',
      default: 100000,
      env: 'SC_DONORS_CREDIT_MAX_QUEUED',
    },
  },
  storage: {
    inlineMaxBytes: {
      doc: 'Files up to this size in bytes are stored inline in their MongoDB document; larger ones go to GridFS.',
      format: 'positive-int',
      default: 1 * MIB,
      env: 'SC_STORAGE_INLINE_MAX_BYTES',
    },
    janitorIntervalS: {
      doc: 'Seconds between janitor passes, which remove uncommitted partitions and finish interrupted stream creations and deletions. The processes of a deployment take turns (a Redis key): one pass per interval in all.',
      format: 'positive-int',
      default: 60,
      env: 'SC_STORAGE_JANITOR_INTERVAL_S',
    },
    janitorPageSize: {
      doc: 'Documents the janitor reads per query (a pass reads up to storage.janitorMaxPerPass partitions and as many stream change records, a page at a time). The embedded store (FerretDB) reads whole documents whatever the projection, inline frames included, so this bounds its memory per query: a page of 100 partitions with 1 MiB of inline frames each is 100 MiB.',
      format: 'positive-int',
      default: 100,
      env: 'SC_STORAGE_JANITOR_PAGE_SIZE',
    },
    janitorMaxPerPass: {
      doc: 'Most partitions, and most stream change records, one janitor pass reads (committed ones included: every commit writes one). A deployment that commits more than this many per storage.janitorIntervalS falls behind and leaves abandoned partitions on disk ever longer; the default keeps up with about 330 commits a second at the default interval.',
      format: 'positive-int',
      default: 20000,
      env: 'SC_STORAGE_JANITOR_MAX_PER_PASS',
    },
    janitorLagS: {
      doc: 'Seconds a partition or a stream change record must exist before the janitor may act on it: longer than any commit or stream creation takes.',
      format: 'positive-int',
      default: 120,
      env: 'SC_STORAGE_JANITOR_LAG_S',
    },
    poolSweepS: {
      doc: 'Seconds between sweeps of the stream pool (expired leases back to the pool, rebuild checks).',
      format: 'positive-int',
      default: 5,
      env: 'SC_STORAGE_POOL_SWEEP_S',
    },
    poolReturnS: {
      doc: 'Seconds a sweep has to put the streams of expired leases it claimed back in the pool; a claim still open after that (its process died, or the store read outlasted it) is taken again by a later sweep of any process, so no stream is left neither leased nor ready.',
      format: 'positive-int',
      default: 60,
      env: 'SC_STORAGE_POOL_RETURN_S',
    },
    partitionsPerPage: {
      doc: "Committed partitions a stream's document lists itself before they move to a page of their own (collection partition_pages). Keeps the commit point's update small: the embedded store rewrites the whole stream document on each commit (measured: 24 ms per commit at 1,000 listed partitions, against 2.1–2.5 ms at up to 64).",
      format: 'positive-int',
      default: 64,
      env: 'SC_STORAGE_PARTITIONS_PER_PAGE',
    },
    maxInlineBytesPerDocument: {
      doc: "Most inline file bytes in one partition document; further files of the checkpoint go to GridFS. Keeps partitions far below MongoDB's 16 MiB document limit.",
      format: 'positive-int',
      default: 8 * MIB,
      env: 'SC_STORAGE_MAX_INLINE_BYTES_PER_DOCUMENT',
    },
  },
  limits: {
    maxFilesPerStream: {
      doc: 'Most seed files, and most tag files, in one stream creation request.',
      format: 'positive-int',
      default: 64,
      env: 'SC_LIMITS_MAX_FILES_PER_STREAM',
    },
    maxOptionsBytes: {
      doc: "Largest size in bytes of a target's options (as JSON).",
      format: 'positive-int',
      default: 64 * KIB,
      env: 'SC_LIMITS_MAX_OPTIONS_BYTES',
    },
    maxOptionsKeys: {
      doc: "Most top-level keys in a target's options.",
      format: 'positive-int',
      default: 256,
      env: 'SC_LIMITS_MAX_OPTIONS_KEYS',
    },
    maxTargetsPerManager: {
      doc: "Most targets one manager may have, disabled ones included; POST /v1/targets past it gets 409 conflict. Every process keeps every target that is not disabled in memory, with its options (up to limits.maxOptionsBytes each), for assignments.",
      format: 'positive-int',
      default: 1000,
      env: 'SC_LIMITS_MAX_TARGETS_PER_MANAGER',
    },
    maxOptionsDepth: {
      doc: "Deepest nesting of objects and arrays in a target's options (the options object itself is depth 1). Deeper values get 400: a value nested thousands deep would overflow the stack of whatever walks it.",
      format: 'positive-int',
      default: 32,
      env: 'SC_LIMITS_MAX_OPTIONS_DEPTH',
    },
    maxTargetEngines: {
      doc: 'Most engines one target may accept.',
      format: 'positive-int',
      default: 64,
      env: 'SC_LIMITS_MAX_TARGET_ENGINES',
    },
    maxDescriptionLength: {
      doc: 'Longest description of an engine key, in characters.',
      format: 'positive-int',
      default: 1000,
      env: 'SC_LIMITS_MAX_DESCRIPTION_LENGTH',
    },
    maxListItems: {
      doc: 'Most items one list request returns (streams of a target, errors of a stream); `limit` may ask for fewer.',
      format: 'positive-int',
      default: 10000,
      env: 'SC_LIMITS_MAX_LIST_ITEMS',
    },
  },
  health: {
    timeoutMs: {
      doc: 'Milliseconds /readyz and preflight wait for MongoDB and Redis to answer a ping.',
      format: 'positive-int',
      default: 2000,
      env: 'SC_HEALTH_TIMEOUT_MS',
    },
  },
  reliability: {
    windowS: {
      doc: 'Seconds of the sliding window over which reliability records (assignments, commits, stream and protocol errors per donor and per client address) are counted; kept in Redis as six buckets that expire.',
      format: 'positive-int',
      default: 3600,
      env: 'SC_RELIABILITY_WINDOW_S',
    },
    errorRatePercent: {
      doc: 'Error rate, in percent of (assignments + protocol errors), above which a donor or client address gets no assignments for reliability.coolingOffS.',
      format: 'positive-int',
      default: 50,
      env: 'SC_RELIABILITY_ERROR_RATE_PERCENT',
    },
    minSample: {
      doc: 'Fewest events (assignments + protocol errors) in the window before a record is judged at all; fewer never cools off.',
      format: 'positive-int',
      default: 10,
      env: 'SC_RELIABILITY_MIN_SAMPLE',
    },
    coolingOffS: {
      doc: 'Seconds a donor or client address past reliability.errorRatePercent gets no assignments (rate_limited with retry_after_s); its record then starts afresh.',
      format: 'positive-int',
      default: 900,
      env: 'SC_RELIABILITY_COOLING_OFF_S',
    },
    refreshMs: {
      doc: 'Milliseconds between the background passes that write this process\'s batched counts to Redis and re-judge the records of its connected donors and addresses (assign decides from this cache).',
      format: 'positive-int',
      default: 1000,
      env: 'SC_RELIABILITY_REFRESH_MS',
    },
  },
  log: {
    level: {
      doc: 'Minimum level of log lines written.',
      format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      env: 'SC_LOG_LEVEL',
      arg: 'log-level',
    },
    pretty: {
      doc: 'Human-readable coloured logs (development) instead of JSON lines. Needs the pino-pretty package.',
      format: Boolean,
      default: false,
      env: 'SC_LOG_PRETTY',
    },
    clientLinesPerSecond: {
      doc: 'Log lines clients cause (one per request, per core connection, assignment and refusal) a process writes per second at most, for HTTP requests, refused upgrades and cores each; the rest are counted by message in coordinator_log_lines_skipped_total and in one warn line at the end of the second. Lines about the server itself and errors are not limited.',
      format: 'positive-int',
      default: 1000,
      env: 'SC_LOG_CLIENT_LINES_PER_SECOND',
    },
  },
  metrics: {
    key: {
      doc: 'When set, GET /metrics requires `Authorization: Bearer <key>`.',
      format: String,
      default: '',
      env: 'SC_METRICS_KEY',
      sensitive: true,
    },
  },
  preflight: {
    mode: {
      doc: 'What start-up does when a preflight check fails: "enforce" refuses to start, "warn" logs and starts anyway.',
      format: ['enforce', 'warn'],
      default: 'enforce',
      env: 'SC_PREFLIGHT_MODE',
      arg: 'preflight-mode',
    },
    fdReserve: {
      doc: 'File descriptors needed beyond server.maxConnections and http.maxConnections: storage and Redis connections, spill and seed files.',
      format: 'positive-int',
      default: 1024,
      env: 'SC_PREFLIGHT_FD_RESERVE',
    },
  },
};

type SchemaOf<T> = { [K in keyof T]: T[K] extends { default: infer D } ? D : SchemaOf<T[K]> };
/** The loaded settings, typed from the schema. */
export type Settings = SchemaOf<typeof schema>;
