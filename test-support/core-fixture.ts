/**
 * The core-protocol fixture on a running server, for tests and benchmarks alike (no test
 * framework here): an admin, a manager, an engine key and a donor made through the real
 * admin API, and helpers to make targets, streams and connected clients.
 */
import type { Db } from 'mongodb';
import { CoreClient, type CoreClientOptions } from '../src/client';
import { initDatabase } from '../src/store/init';
import { ApiClient, type Response } from './admin-api';

/** What {@link remoteCoreFixture} made. */
export interface RemoteCoreFixture {
  admin: string;
  manager: string;
  engineKey: string;
  donor: string;
  wsUrl: string;
  /** Calls the admin API; throws on a status other than `expect`. */
  api<T = Record<string, unknown>>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number): Promise<T>;
  /** GET with the manager's token (or `token`), raw: any status, the body as bytes. */
  get(path: string, token?: string): Promise<Response>;
  /** Creates a target and returns its id. */
  target(body?: Record<string, unknown>, token?: string): Promise<string>;
  /** Creates a stream with one seed file and returns its id. */
  stream(targetId: string, seed?: Buffer, token?: string): Promise<string>;
  /** A connected client with the fixture's engine key and donor. */
  client(extra?: Partial<CoreClientOptions>): Promise<CoreClient>;
}

/** Options of {@link remoteCoreFixture}. */
export interface RemoteFixtureOptions {
  /** Options every {@link RemoteCoreFixture.client} gets, under the call's own. */
  clientDefaults?: Partial<CoreClientOptions>;
  /** Called with each new client before it connects (e.g. to attach an `error` listener). */
  beforeConnect?: (c: CoreClient) => void;
}

let managers = 0;

/**
 * Creates the fixture on the server at `url` (https, trusting `ca`) whose database is `db`:
 * the first admin (another one, forced, when the database has users), then a manager, an
 * engine key for `openmm` and a donor through the API.
 */
export async function remoteCoreFixture(url: string, ca: string, db: Db, opts: RemoteFixtureOptions = {}): Promise<RemoteCoreFixture> {
  const admin = (await db.collection('users').countDocuments()) === 0 ? (await initDatabase(db)).token : (await initDatabase(db, { force: true, adminName: `admin${++managers}` })).token;
  const http = new ApiClient(url, ca);
  const api = <T>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number): Promise<T> => http.json<T>(method, path, token, body, expect);
  const mname = `mgr${++managers}`;
  const manager = (await api<{ token: string }>('POST', '/v1/users', admin, { name: mname, role: 'manager' }, 201)).token;
  const engineKey = (await api<{ key: string }>('POST', '/v1/engine-keys', admin, { engine: 'openmm', description: 'tests' }, 201)).key;
  const donor = (await api<{ token: string }>('POST', '/v1/donors', undefined, { name: `donor${managers}` }, 201)).token;
  const wsUrl = `${url.replace(/^http/, 'ws')}/core/v1`;
  return {
    admin,
    manager,
    engineKey,
    donor,
    wsUrl,
    api,
    get: (path, token = manager) => http.call('GET', path, { token }),
    target: async (body = {}, token = manager) => (await api<{ target_id: string }>('POST', '/v1/targets', token, { engines: ['openmm'], stage: 'public', ...body }, 201)).target_id,
    stream: async (targetId, seed = Buffer.from('seed state'), token = manager) =>
      (await api<{ stream_id: string }>('POST', `/v1/targets/${targetId}/streams`, token, { files: { 'state.xml': seed.toString('base64') } }, 201)).stream_id,
    client: async (extra = {}) => {
      const c = new CoreClient({ url: wsUrl, engineKey, donorToken: donor, ca, ...opts.clientDefaults, ...extra });
      opts.beforeConnect?.(c);
      await c.connect();
      return c;
    },
  };
}
