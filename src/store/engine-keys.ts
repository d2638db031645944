/**
 * The `engine_keys` collection: creation, the upgrade-time lookup by key hash, the admin
 * list, revocation and the revocation sweep's check. No other module names the collection
 * (auth/engine-keys.ts caches lookups, http/routes/engine-keys.ts serves the API,
 * core/revocations.ts closes sockets). Keys are stored only as their SHA-256 hash.
 */
import type { Collection, Db } from 'mongodb';
import type { EngineKeyDoc } from '../model';

const ENGINE_KEYS = 'engine_keys';

function collection(db: Db): Collection<EngineKeyDoc> {
  return db.collection<EngineKeyDoc>(ENGINE_KEYS);
}

/** Stores a new key (its hash; `revokedAt` null). */
export async function insertEngineKey(db: Db, doc: EngineKeyDoc): Promise<void> {
  await collection(db).insertOne(doc);
}

/** The unrevoked key with this hash (id and engine only), or null. Uses the `keyHash` unique index. */
export function findLiveEngineKey(db: Db, keyHash: string): Promise<Pick<EngineKeyDoc, '_id' | 'engine'> | null> {
  return collection(db).findOne({ keyHash, revokedAt: null }, { projection: { _id: 1, engine: 1 } });
}

/** Keys for the admin list, oldest first, at most `limit` (limits.maxListItems), without their hashes. */
export function listEngineKeys(db: Db, limit: number): Promise<Array<Omit<EngineKeyDoc, 'keyHash'>>> {
  return collection(db).find({}, { projection: { keyHash: 0 }, sort: { createdAt: 1 }, limit }).toArray();
}

/**
 * Marks a key revoked (now) unless it already is, and returns it as it was before — or the
 * already-revoked key, so that a retry can announce it again; null when there is no such key.
 */
export async function revokeEngineKey(db: Db, id: string): Promise<EngineKeyDoc | null> {
  return (await collection(db).findOneAndUpdate({ _id: id, revokedAt: null }, { $set: { revokedAt: new Date() } })) ?? (await collection(db).findOne({ _id: id }));
}

/** Which of `ids` are revoked (one query, bounded by `maxTimeMS`: mongodb.opTimeoutMs). */
export async function revokedEngineKeys(db: Db, ids: string[], maxTimeMS: number): Promise<string[]> {
  if (ids.length === 0) return [];
  const gone = await collection(db).find({ _id: { $in: ids }, revokedAt: { $ne: null } }, { projection: { _id: 1 }, maxTimeMS }).toArray();
  return gone.map((k) => k._id);
}
