/**
 * The one decision whether an error means a store is unreachable (answered `unavailable`,
 * retried by clients) rather than a bug, and which store it was (for the storage-errors metric).
 */

/** Error class names the MongoDB driver and ioredis use for "cannot reach the server". */
const MONGO_DOWN = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MongoOperationTimeoutError',
]);
const REDIS_DOWN = new Set(['MaxRetriesPerRequestError']);

/** ioredis reports a lost connection only in its messages. */
const REDIS_DOWN_TEXT = /Connection is closed|Stream isn't writeable|Command timed out/;
/** Redis Cluster or Sentinel in the middle of a failover (slots moving, no master yet, replica catching up). */
const REDIS_FAILOVER_TEXT = /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN|READONLY|LOADING|MASTERDOWN) |Too many Cluster redirections|Failed to refresh slots cache|All sentinels are unreachable/;
/** Our own deadline on a store call (store/mongo.ts `withTimeout`). */
const DEADLINE_TEXT = /did not answer within/;

/** Which store an outage error comes from, or undefined when the error is not an outage. */
export function outageBackend(err: unknown): 'mongodb' | 'redis' | undefined {
  if (!(err instanceof Error)) return undefined;
  if (MONGO_DOWN.has(err.name)) return 'mongodb';
  if (REDIS_DOWN.has(err.name) || REDIS_DOWN_TEXT.test(err.message) || REDIS_FAILOVER_TEXT.test(err.message)) return 'redis';
  if (DEADLINE_TEXT.test(err.message)) return /redis/i.test(err.message) ? 'redis' : 'mongodb';
  return undefined;
}

/** Whether an error means MongoDB or Redis is unreachable (rather than a bug). */
export function isStorageOutage(err: unknown): boolean {
  return outageBackend(err) !== undefined;
}
