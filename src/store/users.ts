/**
 * The `users` collection: admins and managers, with their token hashes and managers' weights.
 * No other module names the collection: the user routes (http/routes/users.ts), token
 * authentication (auth/principals.ts), the assignment's target cache (managers' weights) and the
 * dev stack's first admin read and write it here.
 */
import type { Collection, Db } from 'mongodb';
import type { UserDoc } from '../model';

const USERS = 'users';

function collection(db: Db): Collection<UserDoc> {
  return db.collection<UserDoc>(USERS);
}

/** One user by name, or null. */
export function userByName(db: Db, name: string): Promise<UserDoc | null> {
  return collection(db).findOne({ name });
}

/** Name and role of the user whose token has this hash, or null (uses the `tokenHash` unique index). */
export function userByTokenHash(db: Db, tokenHash: string): Promise<Pick<UserDoc, 'name' | 'role'> | null> {
  return collection(db).findOne({ tokenHash }, { projection: { _id: 0, name: 1, role: 1 } });
}

/** Users by name, at most `limit` (limits.maxListItems). */
export function listUsers(db: Db, limit: number): Promise<UserDoc[]> {
  return collection(db).find({}, { sort: { name: 1 }, limit }).toArray();
}

/** Whether any user exists (the dev stack makes the first admin once). */
export async function anyUser(db: Db): Promise<boolean> {
  return (await countUsers(db, 1)) > 0;
}

/** How many users exist, counting up to `limit`. */
export function countUsers(db: Db, limit: number): Promise<number> {
  return collection(db).countDocuments({}, { limit });
}

/** Whether an admin other than `name` exists (the last admin may not go). */
export async function anotherAdmin(db: Db, name: string): Promise<boolean> {
  return (await collection(db).countDocuments({ role: 'admin', name: { $ne: name } }, { limit: 1 })) > 0;
}

/** Every manager's weight by name (the fair share's first level; a manager without one counts 1). */
export async function managerWeights(db: Db): Promise<Map<string, number>> {
  const managers = await collection(db).find({ role: 'manager' }, { projection: { name: 1, weight: 1 } }).toArray();
  return new Map(managers.map((m) => [m.name, m.weight ?? 1]));
}

/** Stores a new user; throws the driver's duplicate-key error when the name is taken. */
export async function insertUser(db: Db, u: UserDoc): Promise<void> {
  await collection(db).insertOne(u);
}

/** Sets fields of a user; returns it after, or null when there is none. */
export function updateUser(db: Db, name: string, set: Partial<Pick<UserDoc, 'weight' | 'role'>>): Promise<UserDoc | null> {
  return collection(db).findOneAndUpdate({ name }, { $set: set }, { returnDocument: 'after' });
}

/** Gives a user a new token hash; returns the user as it was (with the old hash), or null. */
export function replaceUserToken(db: Db, name: string, tokenHash: string): Promise<UserDoc | null> {
  return collection(db).findOneAndUpdate({ name }, { $set: { tokenHash } });
}

/** Removes a user. */
export async function deleteUser(db: Db, name: string): Promise<void> {
  await collection(db).deleteOne({ name });
}
