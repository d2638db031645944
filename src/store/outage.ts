/**
 * The one decision whether an error means a store is unreachable (answered `unavailable`,
 * retried by clients) rather than a bug, and which store it was (for the storage-errors metric);
 * and our own deadline on a store call ({@link withTimeout}).
 */

/** A store call that did not answer within our own deadline. */
export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';

  constructor(
    /** The store that did not answer. */
    readonly backend: 'mongodb' | 'redis',
    /** What was asked, for the message. */
    what: string,
    ms: number,
  ) {
    super(`${what} did not answer within ${ms} ms`);
  }
}

/**
 * `p`, or a {@link DeadlineError} of `backend` when it takes longer than `ms` (the call itself
 * is not cancelled). `what` names the call in the message (default: the store's name).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, backend: 'mongodb' | 'redis', what = backend === 'redis' ? 'Redis' : 'MongoDB'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(backend, what, ms)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Error class names the MongoDB driver and ioredis use for "cannot reach the server". */
const MONGO_DOWN = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MongoOperationTimeoutError',
  // Ours, from fromMongo below.
  'MongoConnectionLost',
]);
const REDIS_DOWN = new Set(['MaxRetriesPerRequestError']);
/** MongoDB's error code for a command that ran out of its `maxTimeMS`. */
const MAX_TIME_MS_EXPIRED = 50;
/** Node's codes for a connection refused, reset or cut. */
const NETWORK_CODES = new Set(['EPIPE', 'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * MongoDB's connection lost, as Node itself reported it: the driver lets some such errors
 * through unwrapped (a large write waiting for the socket to drain when the connection is
 * reset: ECONNRESET; a command written after the server closed its side: EPIPE).
 */
export class MongoConnectionLost extends Error {
  override readonly name = 'MongoConnectionLost';

  constructor(cause: Error) {
    super(`MongoDB connection lost: ${cause.message}`, { cause });
  }
}

/**
 * `p`, for a call that talks to MongoDB alone: a raw network error it fails with is MongoDB's
 * outage ({@link MongoConnectionLost}). Nothing else can tell which connection such an error
 * came from, so only such calls are wrapped (the commit, the MongoDB steps of a stream's creation).
 */
export async function fromMongo<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof Error && !MONGO_DOWN.has(err.name) && NETWORK_CODES.has((err as NodeJS.ErrnoException).code ?? '')) throw new MongoConnectionLost(err);
    throw err;
  }
}

/** ioredis reports a lost connection only in its messages. */
const REDIS_DOWN_TEXT = /Connection is closed|Stream isn't writeable|Command timed out/;
/** Redis Cluster or Sentinel in the middle of a failover (slots moving, no master yet, replica catching up). */
const REDIS_FAILOVER_TEXT = /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN|READONLY|LOADING|MASTERDOWN) |Too many Cluster redirections|Failed to refresh slots cache|All sentinels are unreachable/;

/** Which store an outage error comes from, or undefined when the error is not an outage. */
export function outageBackend(err: unknown): 'mongodb' | 'redis' | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err instanceof DeadlineError) return err.backend;
  if (MONGO_DOWN.has(err.name)) return 'mongodb';
  // MaxTimeMSExpired: MongoDB did not finish within the time limit we gave it. Too slow to
  // answer is unavailable, as our own deadline is (whether a write applied all the same, a
  // commit asks before its next attempt: store/commit.ts).
  if (err.name === 'MongoServerError' && (err as { code?: unknown }).code === MAX_TIME_MS_EXPIRED) return 'mongodb';
  // A bulk write (insertMany) that lost its connection reports it inside its own error.
  if (err.name === 'MongoBulkWriteError' && outageBackend((err as { errorResponse?: unknown }).errorResponse) === 'mongodb') return 'mongodb';
  if (REDIS_DOWN.has(err.name) || REDIS_DOWN_TEXT.test(err.message) || REDIS_FAILOVER_TEXT.test(err.message)) return 'redis';
  return undefined;
}

/** Whether an error means MongoDB or Redis is unreachable (rather than a bug). */
export function isStorageOutage(err: unknown): boolean {
  return outageBackend(err) !== undefined;
}
