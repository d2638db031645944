/**
 * The `donors` and `donor_targets` collections as the API and authentication see them: a
 * donor's registration, its lookup by token hash, the leaderboard and one donor's figures per
 * target. Their running totals (`frames`, `coreSeconds`, and the per-target upserts) are
 * written only by the credit's group commit (store/credit.ts), with each batch of fragments.
 */
import type { Collection, Db } from 'mongodb';
import type { DonorDoc, DonorTargetDoc } from '../model';

function donors(db: Db): Collection<DonorDoc> {
  return db.collection<DonorDoc>('donors');
}

function donorTargets(db: Db): Collection<DonorTargetDoc> {
  return db.collection<DonorTargetDoc>('donor_targets');
}

/** Stores a new donor; throws the driver's duplicate-key error when the name is taken. */
export async function insertDonor(db: Db, d: DonorDoc): Promise<void> {
  await donors(db).insertOne(d);
}

/** One donor by name, without its token hash, or null. */
export function donorByName(db: Db, name: string): Promise<Omit<DonorDoc, 'tokenHash'> | null> {
  return donors(db).findOne({ name }, { projection: { tokenHash: 0 } });
}

/** The donor whose token has this hash (its `_id`, name and beta flag), or null (uses the `tokenHash` unique index). */
export function donorByTokenHash(db: Db, tokenHash: string) {
  return donors(db).findOne({ tokenHash }, { projection: { name: 1, beta: 1 } });
}

/** The top `max` donors by committed frames, ties by name, without their token hashes. */
export function topDonors(db: Db, max: number): Promise<Array<Omit<DonorDoc, 'tokenHash'>>> {
  return donors(db).find({}, { sort: { frames: -1, name: 1 }, limit: max, projection: { tokenHash: 0 } }).toArray();
}

/** A donor's figures per target, most frames first, at most `limit` (limits.maxListItems). */
export function targetsOfDonor(db: Db, donor: string, limit: number): Promise<DonorTargetDoc[]> {
  return donorTargets(db).find({ donor }, { sort: { frames: -1 }, limit }).toArray();
}
