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
  donors: [
    { key: { name: 1 }, name: 'name_unique', unique: true },
    { key: { tokenHash: 1 }, name: 'tokenHash_unique', unique: true },
    // The leaderboard's page read in index order (patch 13).
    { key: { frames: -1, name: 1 }, name: 'frames_name' },
  ],
  engine_keys: [{ key: { keyHash: 1 }, name: 'keyHash_unique', unique: true }],
  targets: [{ key: { owner: 1 }, name: 'owner' }, { key: { stage: 1 }, name: 'stage' }],
  streams: [
    // A target's streams of one status counted from the index alone (patch 5), and, with
    // `_id`, a page of its streams by status read in index order (patch 12).
    { key: { targetId: 1, status: 1, _id: 1 }, name: 'target_status_id' },
    // A page of a target's streams in id order reads only that page (the default list order).
    { key: { targetId: 1, _id: 1 }, name: 'target_id' },
    // A target's committed frames (the target view) summed from the index, without reading
    // the streams: a covered plan on MongoDB, the index alone on the embedded store (patch 6).
    // With `_id`, a page of a target's streams by frames (ties by id) is read in index order
    // (patch 11), however many streams share a count.
    { key: { targetId: 1, frames: 1, _id: 1 }, name: 'target_frames_id' },
    // The streams with the most errors (the dashboard's overview asks every target for its
    // worst three), read in index order as by frames (patch 11).
    { key: { targetId: 1, errorCount: 1, _id: 1 }, name: 'target_errors_id' },
    // A page of a target's streams by creation time, read in index order (patch 12).
    { key: { targetId: 1, createdAt: 1, _id: 1 }, name: 'target_created_id' },
    { key: { status: 1 }, name: 'status' },
  ],
  files: [{ key: { streamId: 1 }, name: 'stream' }],
  // The janitor's window over creations and deletions under way.
  stream_changes: [{ key: { createdAt: 1 }, name: 'createdAt' }],
  partitions: [
    { key: { streamId: 1, n: 1 }, name: 'stream_n' },
    { key: { createdAt: 1 }, name: 'createdAt' },
  ],
  // A stream's pages, removed with it (they are read by `_id`).
  partition_pages: [{ key: { streamId: 1 }, name: 'stream' }],
  stream_errors: [{ key: { streamId: 1, at: -1 }, name: 'stream_at' }],
  donor_targets: [{ key: { donor: 1, frames: -1 }, name: 'donor_frames' }],
  blocks: [{ key: { kind: 1, value: 1 }, name: 'kind_value_unique', unique: true }],
  'blobs.files': [{ key: { 'metadata.streamId': 1 }, name: 'metadata_stream' }],
};

/** Indexes an earlier version made that one of {@link INDEXES} replaces, by collection: dropped where found. */
export const RETIRED_INDEXES: Record<string, string[]> = {
  donors: ['frames'],
  streams: ['target_frames', 'target_status'],
};

/**
 * Creates every missing index, then drops the retired ones it finds; returns both as
 * `collection.name`. Only missing indexes are named: FerretDB v1.24.2 drops the connection
 * when `createIndexes` names only existing ones.
 */
export async function ensureIndexes(db: Db): Promise<{ created: string[]; dropped: string[] }> {
  const created: string[] = [];
  const dropped: string[] = [];
  for (const [collection, specs] of Object.entries(INDEXES)) {
    const existing = new Set((await db.collection(collection).listIndexes().toArray().catch(() => [])).map((i) => i.name as string));
    const missing = specs.filter((s) => !existing.has(s.name!));
    if (missing.length > 0) {
      await db.collection(collection).createIndexes(missing);
      created.push(...missing.map((s) => `${collection}.${s.name}`));
    }
    for (const name of RETIRED_INDEXES[collection] ?? []) {
      if (!existing.has(name)) continue;
      // Another process starting at the same time may have dropped it first.
      const gone = await db.collection(collection).dropIndex(name).then(
        () => true,
        () => false,
      );
      if (gone) dropped.push(`${collection}.${name}`);
    }
  }
  return { created, dropped };
}
