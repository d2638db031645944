/**
 * Every MongoDB index the service relies on. `init` creates them; start-up checks they
 * exist and creates any that are missing (index builds are idempotent).
 */
import type { Db, IndexDescription } from 'mongodb';

/** Indexes by collection. */
export const INDEXES: Record<string, IndexDescription[]> = {
  users: [
    { key: { name: 1 }, name: 'name_unique', unique: true },
    { key: { tokenHash: 1 }, name: 'tokenHash_unique', unique: true },
  ],
};

/** Creates every missing index; returns the names it created. */
export async function ensureIndexes(db: Db): Promise<string[]> {
  const created: string[] = [];
  for (const [collection, specs] of Object.entries(INDEXES)) {
    const existing = new Set((await db.collection(collection).listIndexes().toArray().catch(() => [])).map((i) => i.name as string));
    const missing = specs.filter((s) => !existing.has(s.name!));
    if (missing.length === 0) continue;
    await db.collection(collection).createIndexes(missing);
    created.push(...missing.map((s) => `${collection}.${s.name}`));
  }
  return created;
}
