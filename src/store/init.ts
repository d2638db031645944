/**
 * `stream-coordinator init`: prepares a database (indexes) and creates the first admin,
 * whose token is returned once and stored only as a hash.
 */
import { countUsers, insertUser, userByName } from './users';
import type { Db } from 'mongodb';
import { ensureIndexes } from './indexes';
import { hashToken, newToken } from '../auth/tokens';

/** Raised when init would touch a database that already has users and `force` is not set. */
export class InitRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InitRefused';
  }
}

/** Options of {@link initDatabase}. */
export interface InitOptions {
  /** Name of the admin to create. Default `admin`. */
  adminName?: string;
  /** Proceed even though the database already has users. */
  force?: boolean;
}

/** Result of {@link initDatabase}: the admin's token is shown here and never again. */
export interface InitResult {
  name: string;
  token: string;
  indexesCreated: string[];
  /** Indexes of an earlier version dropped (RETIRED_INDEXES), as `collection.name`. */
  indexesDropped: string[];
  existingUsers: number;
}

/** Creates indexes and the first admin. Throws {@link InitRefused} on a database with users unless forced. */
export async function initDatabase(db: Db, opts: InitOptions = {}): Promise<InitResult> {
  const name = opts.adminName ?? 'admin';
  const existingUsers = await countUsers(db, 1000);
  if (existingUsers > 0 && !opts.force) {
    throw new InitRefused(
      `database "${db.databaseName}" already has ${existingUsers} user(s): init would add another admin to a live database. ` +
        'Nothing was changed. Re-run with --force if that is really what you want.',
    );
  }
  const { created: indexesCreated, dropped: indexesDropped } = await ensureIndexes(db);
  if (await userByName(db, name)) {
    throw new InitRefused(`a user named "${name}" already exists; choose another with --name`);
  }
  const token = newToken();
  await insertUser(db, { name, role: 'admin', weight: 1, tokenHash: hashToken(token), createdAt: new Date() });
  return { name, token, indexesCreated, indexesDropped, existingUsers };
}
