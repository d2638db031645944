/**
 * The schema sections of what a node listens on and connects to: the server listener and its
 * workers, TLS, MongoDB and Redis (schema.ts composes the whole schema).
 */
import { ERRORS } from '../errors';

/** `server`, `tls`, `mongodb` and `redis`. */
export const CONNECTION_SCHEMA = {
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
    mallocMmapThresholdBytes: {
      doc: 'Bytes: the fixed glibc malloc mmap threshold (MALLOC_MMAP_THRESHOLD_) the primary gives the workers it forks when they run on glibc (server.mallocLibrary), unless the environment sets one; 0 keeps glibc\'s sliding threshold. With it, each freed buffer at least this large (an assignment carries hundreds of KiB of seed files) goes back to the OS; with the sliding threshold they stay in the heap and fragment it, which costs about 4 KiB of RSS per idle session (docs/performance.md). A single process (server.workers 1) cannot set it for itself: put the variable in its environment (docs/deploy.md).',
      format: 'nat',
      default: 131072,
      env: 'SC_MALLOC_MMAP_THRESHOLD_BYTES',
    },
    mallocTrimIntervalS: {
      doc: 'Seconds between two malloc_trim(0) calls in each server process; 0 turns them off. glibc returns memory freed inside its heaps to the system only at their top, so the pages that set-ups allocate and free (TLS handshakes, upgrade requests, assignment copies) stay resident between the held sessions\' small allocations; malloc_trim hands every whole free page back. A call blocked the process 0.55 ms on average with 15,000 idle sessions, 5.2 ms while 14 workers set up 200,000 (docs/performance.md). Needs glibc on linux x64 (vendor/malloc-trim); elsewhere it is off and the start-up log says so. A process on a preloaded malloc (server.mallocLibrary: jemalloc where installed) does not trim: that library returns its own pages.',
      format: 'nat',
      default: 10,
      env: 'SC_MALLOC_TRIM_INTERVAL_S',
    },
    mallocLibrary: {
      doc: 'The malloc the server runs on: "auto" (jemalloc when installed at a usual path, else glibc), "glibc", or the absolute path of a malloc library to preload. The primary preloads it into the workers it forks (LD_PRELOAD; for jemalloc also MALLOC_CONF background_thread:true,narenas:2 unless the environment sets MALLOC_CONF); an operator\'s own LD_PRELOAD wins. A single process (server.workers 1) cannot load it into itself: set LD_PRELOAD in its environment (deploy/stream-coordinator.service; preflight says what it found; a path with no file there fails it, and in preflight.mode "warn" the workers then start on glibc). With jemalloc, server.mallocMmapThresholdBytes and server.mallocTrimIntervalS do nothing. Measured: about a fifth less server CPU per set-up than glibc, and about the same memory per held session (docs/performance.md).',
      format: 'malloc-library',
      default: 'auto',
      env: 'SC_MALLOC_LIBRARY',
    },
    maxSemiSpaceMiB: {
      doc: 'MiB: the V8 young-generation semi-space (--max-semi-space-size) of the workers the primary forks, unless node is started with that flag (command line or NODE_OPTIONS); 0 keeps Node\'s default (up to 16 MiB per semi-space). An idle session is a few hundred bytes of JavaScript, but setting one up makes hundreds of KiB of short-lived garbage; a large young generation then holds tens of MiB per process that the held sessions never need, and lets the buffers it points to live longer (about 0.6 KiB of RSS per idle session at 15,000 per process, and about a third less CPU per set-up with 270 KiB assignments; it costs about a sixth of the admin API peak request rate: docs/performance.md). A single process (server.workers 1) cannot set it for itself: put the flag in NODE_OPTIONS (docs/deploy.md).',
      format: 'nat',
      default: 1,
      env: 'SC_MAX_SEMI_SPACE_MIB',
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
    expiryWarningDays: {
      doc: 'Days before tls.cert expires from which the running server logs a warning, judged at start and twice a day (an error once it has expired: clients then refuse every connection). Let\'s Encrypt renews 30 days ahead, so a warning means renewals have failed for over two weeks. The expiry is also the gauge coordinator_tls_certificate_expiry_timestamp_seconds.',
      format: 'positive-int',
      default: 14,
      env: 'SC_TLS_EXPIRY_WARNING_DAYS',
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
      doc: 'Server-side time limit (maxTimeMS) of commit-path operations: a slow write fails instead of landing minutes later (after the janitor judged its partition abandoned). Also bounds the sweeps that read engine-key revocations and admin blocks.',
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
};
