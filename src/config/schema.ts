/**
 * The configuration schema: every key with its doc, default, format and environment
 * variable, the custom formats they use, and the `Settings` type derived from it.
 * Loading (files, environment, flags, secrets from files) is in settings.ts.
 */
import net from 'node:net';
import convict from 'convict';
import { ERRORS } from '../errors';

function isIpOrCidr(value: string): boolean {
  const [addr, bits, extra] = value.split('/');
  if (extra !== undefined || !addr || net.isIP(addr) === 0) return false;
  if (bits === undefined) return true;
  const max = net.isIPv4(addr) ? 32 : 128;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}

function commaList(value: unknown): unknown {
  return typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
}

convict.addFormat({
  name: 'workers',
  validate(value: unknown) {
    if (value === 'auto') return;
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 256) {
      throw new Error('must be "auto" or an integer from 1 to 256');
    }
  },
  coerce: (value: string) => (value === 'auto' ? value : Number(value)),
});

convict.addFormat({
  name: 'ip-list',
  validate(value: unknown) {
    if (!Array.isArray(value)) throw new Error('must be a list of IP addresses or CIDR ranges');
    for (const v of value) {
      if (typeof v !== 'string' || !isIpOrCidr(v)) throw new Error(`"${String(v)}" is not an IP address or CIDR range`);
    }
  },
  coerce: commaList,
});

convict.addFormat({
  name: 'host-port-list',
  validate(value: unknown) {
    if (!Array.isArray(value)) throw new Error('must be a list of host:port');
    for (const v of value) {
      if (typeof v !== 'string' || !/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(v)) {
        throw new Error(`"${String(v)}" is not host:port`);
      }
    }
  },
  coerce: commaList,
});

convict.addFormat({
  name: 'positive-int',
  validate(value: unknown) {
    if (!Number.isInteger(value) || (value as number) < 1) throw new Error('must be an integer ≥ 1');
  },
  coerce: Number,
});

convict.addFormat({
  name: 'write-concern',
  validate(value: unknown) {
    if (value !== 'majority' && !(typeof value === 'string' && /^\d{1,2}$/.test(value))) throw new Error('must be "majority" or a number of members');
  },
});

const KIB = 1024;
const MIB = 1024 * KIB;

/** The schema: every key with doc, format, default and environment variable. */
export const schema = {
  env: {
    doc: 'Deployment environment; selects conf/<env>.json when present.',
    format: ['production', 'development', 'test'],
    default: 'production',
    env: 'NODE_ENV',
  },
  dataDir: {
    doc: 'Directory for local working files (spilled frame buffers, the TLS chain file). Created if missing.',
    format: String,
    default: './data',
    env: 'SC_DATA_DIR',
    arg: 'data-dir',
  },
  server: {
    host: {
      doc: 'Address to listen on ("0.0.0.0" all IPv4, "::" all IPv4 and IPv6).',
      format: String,
      default: '0.0.0.0',
      env: 'SC_HOST',
      arg: 'host',
    },
    port: {
      doc: 'TCP port of the one listener (HTTPS admin API, /metrics, health, core WebSockets).',
      format: 'port',
      default: 8443,
      env: 'SC_PORT',
      arg: 'port',
    },
    transport: {
      doc: 'Network stack: "uws" (uWebSockets.js, the default) or "node" (node:https + ws: the benchmark baseline, and the fallback where the uWS binary cannot load).',
      format: ['uws', 'node'],
      default: 'uws',
      env: 'SC_TRANSPORT',
      arg: 'transport',
    },
    workers: {
      doc: 'Worker processes sharing the port (SO_REUSEPORT): an integer, or "auto" for one per CPU.',
      format: 'workers',
      default: 1 as number | 'auto',
      env: 'SC_WORKERS',
      arg: 'workers',
    },
    maxConnections: {
      doc: 'Maximum concurrent core WebSocket sessions per process; further upgrades get 503 server_busy. Preflight checks the open-files limit against it.',
      format: 'positive-int',
      default: 16384,
      env: 'SC_MAX_CONNECTIONS',
    },
    busyRetryAfterS: {
      doc: 'Seconds a core refused with 503 server_busy is told to wait before connecting again (Retry-After).',
      format: 'positive-int',
      default: ERRORS.server_busy.retryAfterS as number,
      env: 'SC_SERVER_BUSY_RETRY_AFTER_S',
    },
    nodeHeartbeatS: {
      doc: 'Seconds between a process\'s heartbeats in the shared node registry (/v1/nodes); a process missing three is listed no more. Keep it equal on all nodes.',
      format: 'positive-int',
      default: 5,
      env: 'SC_SERVER_NODE_HEARTBEAT_S',
    },
    shutdownTimeoutS: {
      doc: 'Seconds a graceful shutdown (SIGTERM/SIGINT) may take before remaining work is abandoned and the process exits.',
      format: 'positive-int',
      default: 30,
      env: 'SC_SHUTDOWN_TIMEOUT_S',
    },
    trustProxy: {
      doc: 'Peer addresses or CIDR ranges (e.g. 127.0.0.1, 10.0.0.0/8) whose X-Forwarded-For header is believed. Empty: the header is ignored.',
      format: 'ip-list',
      default: [] as string[],
      env: 'SC_TRUST_PROXY',
    },
  },
  tls: {
    cert: {
      doc: 'Server certificate (PEM). TLS is on when cert, key and ca are all set; off only when all three are empty.',
      format: String,
      default: '',
      env: 'SC_TLS_CERT',
    },
    key: {
      doc: 'Private key (PEM) of tls.cert.',
      format: String,
      default: '',
      env: 'SC_TLS_KEY',
    },
    ca: {
      doc: 'CA chain (PEM): the intermediates (and optionally the root) served after the certificate.',
      format: String,
      default: '',
      env: 'SC_TLS_CA',
    },
    ciphers: {
      doc: 'TLS 1.2 cipher suites (OpenSSL list) with the TLS 1.3 suites; empty uses the built-in policy: forward-secret AEAD only (ECDHE with AES-GCM or ChaCha20-Poly1305). TLS 1.0 and 1.1 are always refused.',
      format: String,
      default: '',
      env: 'SC_TLS_CIPHERS',
    },
    passphrase: {
      doc: 'Passphrase of an encrypted tls.key.',
      format: String,
      default: '',
      env: 'SC_TLS_PASSPHRASE',
      sensitive: true,
    },
  },
  mongodb: {
    uri: {
      doc: 'MongoDB connection string. Must use TLS: tls=true (or ssl=true) or a mongodb+srv:// URI.',
      format: String,
      default: 'mongodb://127.0.0.1:27017/?tls=true',
      env: 'SC_MONGODB_URI',
      sensitive: true,
    },
    database: {
      doc: 'Database name.',
      format: String,
      default: 'stream_coordinator',
      env: 'SC_MONGODB_DATABASE',
    },
    tlsCAFile: {
      doc: "CA file (PEM) to verify MongoDB's certificate; empty uses the system CAs.",
      format: String,
      default: '',
      env: 'SC_MONGODB_TLS_CA_FILE',
    },
    tlsCertificateKeyFile: {
      doc: 'Client certificate and key (one PEM) for MongoDB X.509 or mutual TLS; empty for none.',
      format: String,
      default: '',
      env: 'SC_MONGODB_TLS_CERT_KEY_FILE',
    },
    tlsCertificateKeyFilePassword: {
      doc: 'Passphrase of the client key in mongodb.tlsCertificateKeyFile.',
      format: String,
      default: '',
      env: 'SC_MONGODB_TLS_CERT_KEY_PASSWORD',
      sensitive: true,
    },
    serverSelectionTimeoutMs: {
      doc: 'Milliseconds an operation waits for a reachable MongoDB server before failing with `unavailable`.',
      format: 'positive-int',
      default: 5000,
      env: 'SC_MONGODB_SERVER_SELECTION_TIMEOUT_MS',
    },
    maxPoolSize: {
      doc: 'Maximum MongoDB connections per process.',
      format: 'positive-int',
      default: 20,
      env: 'SC_MONGODB_MAX_POOL_SIZE',
    },
    commitWriteConcern: {
      doc: 'Write concern `w` of the commit path (partition documents, their GridFS uploads, the commit point): "majority" so an acknowledged commit survives a failover, or a member count such as "1".',
      format: 'write-concern',
      default: 'majority',
      env: 'SC_MONGODB_COMMIT_WRITE_CONCERN',
    },
    commitJournal: {
      doc: 'Whether commit-path writes wait for the journal (j: true) before they are acknowledged.',
      format: Boolean,
      default: true,
      env: 'SC_MONGODB_COMMIT_JOURNAL',
    },
    opTimeoutMs: {
      doc: 'Server-side time limit (maxTimeMS) of commit-path operations: a slow write fails instead of landing minutes later (after the janitor judged its partition abandoned).',
      format: 'positive-int',
      default: 20000,
      env: 'SC_MONGODB_OP_TIMEOUT_MS',
    },
    readPreference: {
      doc: 'Which replica-set members reads go to. `primary` (the default) is the only one that always sees the latest commit; the others may lag and suit read-heavy admin dashboards only. See docs/scaling.md.',
      format: ['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest'],
      default: 'primary',
      env: 'SC_MONGODB_READ_PREFERENCE',
    },
    retryWrites: {
      doc: 'Retry a write once after a replica-set failover or a lost connection (MongoDB retryable writes; ignored by standalone servers). Keep on so a commit survives a primary election.',
      format: Boolean,
      default: true,
      env: 'SC_MONGODB_RETRY_WRITES',
    },
  },
  redis: {
    url: {
      doc: 'Redis URL (redis:// or rediss:// for TLS). Ignored when redis.sentinels or redis.cluster is set.',
      format: String,
      default: 'redis://127.0.0.1:6379',
      env: 'SC_REDIS_URL',
      sensitive: true,
    },
    sentinels: {
      doc: 'Redis Sentinel addresses (host:port list); when set, the master named redis.sentinelName is used.',
      format: 'host-port-list',
      default: [] as string[],
      env: 'SC_REDIS_SENTINELS',
    },
    sentinelName: {
      doc: 'Master name monitored by the Sentinels.',
      format: String,
      default: 'mymaster',
      env: 'SC_REDIS_SENTINEL_NAME',
    },
    cluster: {
      doc: 'Redis Cluster seed nodes (host:port list); when set, Redis is used in cluster mode.',
      format: 'host-port-list',
      default: [] as string[],
      env: 'SC_REDIS_CLUSTER',
    },
    password: {
      doc: 'Redis password (for Sentinel and Cluster modes; in URL mode put it in the URL).',
      format: String,
      default: '',
      env: 'SC_REDIS_PASSWORD',
      sensitive: true,
    },
    tlsCAFile: {
      doc: "CA file (PEM) to verify Redis's certificate when using TLS (rediss://).",
      format: String,
      default: '',
      env: 'SC_REDIS_TLS_CA_FILE',
    },
    keyPrefix: {
      doc: 'Prefix of every Redis key and channel, so several deployments can share one Redis. No braces: on Redis Cluster each target gets its own hash tag after the prefix (docs/scaling.md).',
      format: String,
      default: 'sc:',
      env: 'SC_REDIS_KEY_PREFIX',
    },
    connectTimeoutMs: {
      doc: 'Milliseconds to wait for a Redis connection before retrying.',
      format: 'positive-int',
      default: 5000,
      env: 'SC_REDIS_CONNECT_TIMEOUT_MS',
    },
    commandTimeoutMs: {
      doc: 'Milliseconds a Redis command may take before it fails (a hung Redis must not hang requests).',
      format: 'positive-int',
      default: 3000,
      env: 'SC_REDIS_COMMAND_TIMEOUT_MS',
    },
    autoPipelining: {
      doc: 'Send the Redis commands issued in one turn of the event loop as one pipeline (one socket write instead of one per command); set false to debug command by command. Not used with redis.cluster (see docs/scaling.md).',
      format: Boolean,
      default: true,
      env: 'SC_REDIS_AUTO_PIPELINING',
    },
  },
  http: {
    maxBodyBytes: {
      doc: 'Largest JSON request body in bytes (all routes but stream creation); larger bodies get 413 without being buffered.',
      format: 'positive-int',
      default: 1 * MIB,
      env: 'SC_HTTP_MAX_BODY_BYTES',
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
    targetCacheMaxEntries: {
      doc: 'Most targets the GET /v1/targets/:id cache (http.targetCacheMs) holds per process; past it the oldest entry is dropped.',
      format: 'positive-int',
      default: 10000,
      env: 'SC_HTTP_TARGET_CACHE_MAX_ENTRIES',
    },
    targetUpdateAttempts: {
      doc: 'Times PATCH /v1/targets/:id re-reads and retries when the target changed under it (optimistic concurrency) before answering 409 conflict.',
      format: 'positive-int',
      default: 5,
      env: 'SC_HTTP_TARGET_UPDATE_ATTEMPTS',
    },
  },
  core: {
    heartbeatS: {
      doc: 'Seconds between WebSocket pings to cores; a socket silent for twice this is closed (uWS rounds to 4 s steps).',
      format: 'positive-int',
      default: 30,
      env: 'SC_CORE_HEARTBEAT_S',
    },
    targetCacheMs: {
      doc: 'Milliseconds the hub trusts its cache of targets and managers\' weights without a change event before reloading it (a missed bus message heals within this).',
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
      doc: 'Most distinct frame and checkpoint file names one stream may use over its life (announced as max_file_names_per_stream); a checkpoint adding more is too_large. Keeps the stream document far from the 16 MiB limit.',
      format: 'positive-int',
      default: 1024,
      env: 'SC_CORE_MAX_FILE_NAMES_PER_STREAM',
    },
    maxSocketsPerAddress: {
      doc: 'Most open core sockets per client address (IPv4, or IPv6 /64) per process; further upgrades get 429 rate_limited. Large NATs may need more.',
      format: 'positive-int',
      default: 256,
      env: 'SC_CORE_MAX_SOCKETS_PER_ADDRESS',
    },
    maxAssignmentsPerKey: {
      doc: 'Most streams held at once by the cores of one engine key, per process; an assign past it gets rate_limited. Engine keys ship with volunteer software, so this is a ceiling against a leaked key, not a per-user quota.',
      format: 'positive-int',
      default: 100000,
      env: 'SC_CORE_MAX_ASSIGNMENTS_PER_KEY',
    },
    maxAssignmentsPerDonor: {
      doc: 'Most streams held at once by the cores of one donor, per process; an assign past it gets rate_limited.',
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
      doc: "Most uncommitted frame bytes buffered per stream; a frame that would exceed it gets buffer_full (checkpoint first).",
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
      doc: 'Checkpoint commits one process runs against MongoDB at once; more wait their turn (the store is the ceiling of the commit path).',
      format: 'positive-int',
      default: 64,
      env: 'SC_CORE_MAX_CONCURRENT_COMMITS',
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
  },
  memory: {
    budgetBytes: {
      doc: "Process-wide memory budget in bytes for what clients make a node hold: buffered frames in memory, queued core messages, request bodies being read and checkpoints being committed. A core message that does not fit closes its socket with 1013 (try again later), a request body that does not fit gets 429 rate_limited; RSS stays within this plus a fixed overhead.",
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
  },
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
      doc: 'Most token lookups cached per process.',
      format: 'positive-int',
      default: 100000,
      env: 'SC_AUTH_CACHE_MAX_ENTRIES',
    },
    failuresPerMinute: {
      doc: 'Failed authentications (unknown tokens or engine keys) allowed per client address (IPv4, or IPv6 /64) per minute, per process; past it HTTP requests and core upgrades get 429 rate_limited before any lookup.',
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
    leaderboardMax: {
      doc: 'Largest `top` of GET /v1/donors.',
      format: 'positive-int',
      default: 1000,
      env: 'SC_DONORS_LEADERBOARD_MAX',
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
      doc: 'Seconds between janitor passes, which remove uncommitted partitions and orphaned files.',
      format: 'positive-int',
      default: 60,
      env: 'SC_STORAGE_JANITOR_INTERVAL_S',
    },
    janitorLagS: {
      doc: 'Seconds a partition or file must exist before the janitor may remove it: longer than any commit or stream creation takes.',
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
      doc: 'File descriptors needed beyond server.maxConnections (storage connections, files, HTTP clients).',
      format: 'positive-int',
      default: 1024,
      env: 'SC_PREFLIGHT_FD_RESERVE',
    },
  },
};

type SchemaOf<T> = { [K in keyof T]: T[K] extends { default: infer D } ? D : SchemaOf<T[K]> };
/** The loaded settings, typed from the schema. */
export type Settings = SchemaOf<typeof schema>;
