/**
 * Admin API test fixtures: the shared JSON client ({@link ApiClient}, from
 * test-support/admin-api) and helpers that create users, donors, engine keys, targets,
 * streams and committed partitions through the API, with unique names, on a server
 * started by {@link startApiServer}.
 */
import type { Db } from 'mongodb';
import { FileStore } from '../../src/store/files';
import { INDEXES } from '../../src/store/indexes';
import { initDatabase } from '../../src/store/init';
import { pagePartitions } from '../../src/store/commit';
import { commitPartition, writePartition } from '../../src/store/partitions';
import { newToken } from '../../src/auth/tokens';
import { ApiClient } from '../../test-support/admin-api';
import { eventually, startTestServer, type Overrides, type TestServer } from './server';

export { ApiClient, type CallOptions } from '../../test-support/admin-api';

/** A caller with a token. */
export interface Account {
  name: string;
  role: 'admin' | 'manager' | 'donor';
  token: string;
}

let counter = 0;

/** A name unique within this process (and, with the random part, across runs). */
export function uniqueName(prefix = 'x'): string {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A token nobody has: 32 random bytes, base64url (43 characters). */
export function unknownToken(): string {
  return newToken();
}

/** Base64 of a string or bytes, as stream bodies want it. */
export function b64(data: string | Buffer): string {
  return Buffer.from(data).toString('base64');
}

/** Creates things through the API as the given admin (and owners where needed). */
export class Fixtures {
  constructor(readonly api: ApiClient, readonly admin: Account, private readonly db: Db, private readonly inlineMaxBytes: number) {}

  /** A new user (manager by default), created by the admin. */
  async user(role: 'manager' | 'admin' = 'manager', name = uniqueName(role)): Promise<Account> {
    const r = await this.api.expect<{ token: string }>(201, 'POST', '/v1/users', { token: this.admin.token, body: { name, role } });
    return { name, role, token: r.token };
  }

  /** A new manager. */
  manager(name?: string): Promise<Account> {
    return this.user('manager', name);
  }

  /** A new donor, registered by the admin (so the per-address rate limit does not apply). */
  async donor(name = uniqueName('donor'), beta = false): Promise<Account> {
    const r = await this.api.expect<{ token: string }>(201, 'POST', '/v1/donors', { token: this.admin.token, body: { name, beta } });
    return { name, role: 'donor', token: r.token };
  }

  /** A new engine key. */
  engineKey(engine = 'openmm_80_cuda', description = 'test key'): Promise<{ id: string; engine: string; key: string }> {
    return this.api.expect(201, 'POST', '/v1/engine-keys', { token: this.admin.token, body: { engine, description } });
  }

  /** A new target of `owner` (a manager); private unless `stage` says otherwise. */
  async target(owner: Account, body: { engines?: string[]; stage?: string; weight?: number; options?: Record<string, unknown> } = {}): Promise<string> {
    const r = await this.api.expect<{ target_id: string }>(201, 'POST', '/v1/targets', { token: owner.token, body: { engines: ['openmm_80_cuda'], ...body } });
    return r.target_id;
  }

  /** A new stream on a target, created by `as` (its owner or an admin); seed file `state.xml` by default. */
  async stream(as: Account, targetId: string, files: Record<string, string | Buffer> = { 'state.xml': '<State/>' }, tags?: Record<string, string | Buffer>): Promise<string> {
    const enc = (m: Record<string, string | Buffer>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, b64(v)]));
    const body = { files: enc(files), ...(tags ? { tags: enc(tags) } : {}) };
    const r = await this.api.expect<{ stream_id: string }>(201, 'POST', `/v1/targets/${targetId}/streams`, { token: as.token, body });
    return r.stream_id;
  }

  /**
   * Commits partition `n` of a stream directly in MongoDB, as a core's checkpoint would
   * (write the partition, then the conditional stream update that is the commit point),
   * then, with `pageSize`, moves the stream's oldest listed partitions to a page when it
   * lists that many, as the committing session does. `n` must be above the stream's
   * committed frames.
   */
  async commitPartition(streamId: string, n: number, frames: Record<string, string | Buffer>, checkpoint: Record<string, string | Buffer> = {}, pageSize?: number): Promise<void> {
    const named = (m: Record<string, string | Buffer>) => Object.entries(m).map(([name, v]) => ({ name, bytes: Buffer.from(v) }));
    const doc = await writePartition(this.db, new FileStore(this.db, this.inlineMaxBytes), streamId, n, named(frames), named(checkpoint));
    const stream = await this.db.collection<{ _id: string; frames: number }>('streams').findOne({ _id: streamId });
    const landed = stream !== null && stream.frames < n && (await commitPartition(this.db, streamId, stream.frames, doc));
    if (!landed) throw new Error(`could not commit partition ${n} of stream ${streamId}`);
    if (pageSize !== undefined && (await pagePartitions(this.db, streamId, pageSize)) === undefined) throw new Error(`could not page stream ${streamId} at ${n}`);
  }
}

/** A server with an initialized database, its first admin, a client and fixtures. */
export interface ApiServer {
  ts: TestServer;
  api: ApiClient;
  fx: Fixtures;
  admin: Account;
  close(): Promise<void>;
}

/**
 * Starts a test server (donor registrations per hour raised to 1000 unless overridden),
 * initializes its database and returns the first admin.
 */
export async function startApiServer(overrides: Overrides = {}): Promise<ApiServer> {
  const ts = await startTestServer({ 'donors.registrationsPerHour': 1000, ...overrides });
  try {
    const db = ts.server.storage.mongo.db;
    // The server creates missing indexes in the background at start, and initDatabase does
    // too: FerretDB drops the connection on concurrent createIndexes of one collection, so
    // let the server finish first.
    await eventually(async () => {
      for (const [collection, specs] of Object.entries(INDEXES)) {
        const names = new Set((await db.collection(collection).listIndexes().toArray().catch(() => [])).map((i) => i.name as string));
        if (specs.some((s) => !names.has(s.name!))) return false;
      }
      return true;
    }, 15000, 'the server to create its MongoDB indexes');
    const init = await initDatabase(db);
    const admin: Account = { name: init.name, role: 'admin', token: init.token };
    const api = new ApiClient(ts.url, ts.ca, { keepAlive: true });
    return { ts, api, admin, fx: new Fixtures(api, admin, db, ts.settings.storage.inlineMaxBytes), close: () => ts.close() };
  } catch (err) {
    await ts.close();
    throw err;
  }
}
