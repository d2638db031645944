/**
 * Donor credit: the `fragments` collection and the totals it feeds (`donors`, `donor_targets`:
 * this module is the only writer of those totals; their documents are registered and read
 * through store/donors.ts).
 *
 * Each activation of a stream ends with a fragment (stream, target, engine, donor, start,
 * end, frames), and its donor's totals are `$inc`ed by the same amounts, so they equal the
 * sum of the donor's fragments (DESIGN "Data and the commit point").
 *
 * Fragments are written by group commit ({@link CreditWriter}): the first fragment goes to
 * the store at once, and those that arrive while a write is in flight go together in the
 * next one — one `insert` of the fragments, then one `$inc` per donor and one upsert per
 * donor and target, each list in one command. A quiet node writes each fragment as it comes;
 * a crowd of cores hanging up at once (a node draining, a network blip) costs a few commands
 * per batch instead of three per core. Store writes of one fragment cost about 1 ms on the
 * embedded store, so one at a time a drain of 200,000 sessions kept it busy for minutes.
 */
import { MongoBulkWriteError, type Db, type ObjectId, type UpdateOneModel, type WriteError } from 'mongodb';
import { AppError } from '../errors';

/** One activation of a stream by one core. */
export interface Fragment {
  streamId: string;
  targetId: string;
  engine: string;
  donor?: string;
  /** The donor document's `_id` (credited by primary key); without it the donor is found by name. */
  donorId?: ObjectId;
  start: Date;
  end: Date;
  /** Frames committed during the activation. */
  frames: number;
}

/** Limits of a {@link CreditWriter} (config `donors.creditBatchMax`, `donors.creditMaxQueued`). */
export interface CreditOptions {
  /** Most fragments written in one batch. */
  batchMax: number;
  /** Most fragments waiting for a batch; past it {@link CreditWriter.record} refuses (`unavailable`). */
  maxQueued: number;
  /** Told the number waiting whenever it changes (a metrics gauge). */
  onQueued?: (n: number) => void;
}

interface Pending {
  fragment: Fragment;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Writes the fragments of one process by group commit; one batch is in flight at a time. */
export class CreditWriter {
  private queue: Pending[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly opts: CreditOptions,
  ) {}

  /** Fragments waiting for a batch (not counting the one in flight). */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Records `fragment` and credits its donor; resolves once both are written, rejects with
   * the store's error (the fragment, or its donor's credit, was not written) or `unavailable`
   * when `maxQueued` fragments are already waiting.
   */
  record(fragment: Fragment): Promise<void> {
    if (this.queue.length >= this.opts.maxQueued) {
      return Promise.reject(new AppError('unavailable', `${this.queue.length} fragments already wait for the store`));
    }
    const done = new Promise<void>((resolve, reject) => this.queue.push({ fragment, resolve, reject }));
    this.opts.onQueued?.(this.queue.length);
    this.running ??= this.run();
    return done;
  }

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.opts.batchMax);
        this.opts.onQueued?.(this.queue.length);
        let errors: Array<Error | undefined>;
        try {
          errors = await writeFragments(this.db, batch.map((p) => p.fragment));
        } catch (err) {
          errors = batch.map(() => err as Error);
        }
        batch.forEach((p, i) => {
          const err = errors[i];
          if (err) p.reject(err);
          else p.resolve();
        });
      }
    } finally {
      // Synchronously after the loop saw an empty queue: the next record starts a new run.
      this.running = undefined;
    }
  }
}

/** An update of the bulk write and the fragments (by index in the batch) it credits. */
interface Credit {
  op: { updateOne: UpdateOneModel };
  /** The `$inc` of `op`, summed over its members. */
  sum: Totals;
  members: number[];
}

/** What a fragment adds to its donor's totals. */
type Totals = { frames: number; coreSeconds: number };

/** The statements that failed, when `err` is a bulk write's report of them; otherwise undefined (the outcome is unknown). */
function writeErrorsOf(err: unknown): WriteError[] | undefined {
  if (!(err instanceof MongoBulkWriteError)) return undefined;
  const list = [err.writeErrors].flat();
  return list.length > 0 ? list : undefined;
}

/**
 * Writes `fragments` and credits their donors, in three commands whatever their number:
 * the fragments, the donors' totals and the per-target totals (the last two at once).
 * Returns, per fragment, the error that kept it or its credit from being written (none
 * when both were). Never throws.
 */
export async function writeFragments(db: Db, fragments: Fragment[]): Promise<Array<Error | undefined>> {
  const errors: Array<Error | undefined> = fragments.map(() => undefined);
  // The donor is stored by name; its `_id` only finds it for the credit.
  const docs = fragments.map(({ donorId: _donorId, ...f }) => ({ ...f, coreSeconds: coreSecondsOf(f) }));
  try {
    await db.collection('fragments').insertMany(docs, { ordered: false });
  } catch (err) {
    // Unordered: the rest were inserted. Any other failure leaves each fragment unknown, so
    // none is credited (a retry could count one twice).
    const failed = writeErrorsOf(err);
    if (!failed) return errors.map(() => err as Error);
    for (const e of failed) errors[e.index] = new Error(e.errmsg ?? 'fragment not written');
  }
  const donors = new Map<string, Credit>();
  const perTarget = new Map<string, Credit>();
  fragments.forEach((f, i) => {
    if (!f.donor || errors[i]) return;
    const inc = { frames: f.frames, coreSeconds: docs[i]!.coreSeconds };
    const key = f.donorId ? `id:${f.donorId.toHexString()}` : `name:${f.donor}`;
    add(donors, key, i, inc, (sum) => ({ filter: f.donorId ? { _id: f.donorId } : { name: f.donor }, update: { $inc: sum } }));
    const id = `${f.donor}:${f.targetId}`;
    add(perTarget, id, i, inc, (sum) => ({ filter: { _id: id as never }, update: { $inc: sum, $setOnInsert: { donor: f.donor, targetId: f.targetId } }, upsert: true }));
  });
  await Promise.all([credit(db, 'donors', [...donors.values()], errors), credit(db, 'donor_targets', [...perTarget.values()], errors)]);
  return errors;
}

/** Core-seconds of an activation (0 when the clock went back). */
function coreSecondsOf(f: Fragment): number {
  return Math.max(0, (f.end.getTime() - f.start.getTime()) / 1000);
}

/** Adds fragment `i`'s `inc` to the credit under `key`; `make` writes its update around the running sum on first use. */
function add(into: Map<string, Credit>, key: string, i: number, inc: Totals, make: (sum: Totals) => UpdateOneModel): void {
  const c = into.get(key);
  if (!c) {
    const sum = { ...inc };
    into.set(key, { op: { updateOne: make(sum) }, sum, members: [i] });
    return;
  }
  c.sum.frames += inc.frames;
  c.sum.coreSeconds += inc.coreSeconds;
  c.members.push(i);
}

/**
 * Applies `credits` in one unordered bulk write; marks the members of each that failed in
 * `errors`. An upsert that lost an insert race (E11000: two upserts of one new `_id` both
 * found nothing and both inserted) is run again alone, and then finds the winner's document.
 */
async function credit(db: Db, collection: string, credits: Credit[], errors: Array<Error | undefined>): Promise<void> {
  if (credits.length === 0) return;
  const fail = (c: Credit, err: Error): void => c.members.forEach((i) => (errors[i] ??= err));
  try {
    await db.collection(collection).bulkWrite(credits.map((c) => c.op), { ordered: false });
  } catch (err) {
    const failed = writeErrorsOf(err);
    if (!failed) {
      credits.forEach((c) => fail(c, err as Error));
      return;
    }
    await Promise.all(
      failed.map(async (e) => {
        const c = credits[e.index]!;
        if (e.code !== 11000) return fail(c, new Error(e.errmsg ?? `${collection} not credited`));
        const { filter, update, upsert } = c.op.updateOne;
        try {
          await retryDuplicateKey(() => db.collection(collection).updateOne(filter, update, { upsert }));
        } catch (again) {
          fail(c, again as Error);
        }
      }),
    );
  }
}

/** Runs `op` again (up to `attempts` in all) while it fails with a duplicate key (E11000). */
async function retryDuplicateKey<T>(op: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await op();
    } catch (err) {
      if ((err as { code?: number }).code !== 11000 || i >= attempts) throw err;
    }
  }
}
