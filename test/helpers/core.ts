/**
 * Fixtures for core-protocol tests: an admin, a manager with a target and streams, an
 * engine key and a donor, made through the real admin API.
 */
import { CoreClient, type CoreClientOptions } from '../../src/client';
import { initDatabase } from '../../src/store/init';
import { request, startTestServer, type Overrides, type TestServer } from './server';

/** What {@link coreFixture} made. */
export interface CoreFixture {
  ts: TestServer;
  admin: string;
  manager: string;
  engineKey: string;
  donor: string;
  wsUrl: string;
  /** Calls the admin API; throws on a status other than `expect`. */
  api<T = Record<string, unknown>>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number): Promise<T>;
  /** Creates a target and returns its id. */
  target(body?: Record<string, unknown>, token?: string): Promise<string>;
  /** Creates a stream with one seed file and returns its id. */
  stream(targetId: string, seed?: Buffer, token?: string): Promise<string>;
  /** A connected client with the fixture's engine key and donor. */
  client(extra?: Partial<CoreClientOptions>): Promise<CoreClient>;
}

let managers = 0;

/** Starts a server and creates the fixture. */
export async function coreFixture(overrides: Overrides = {}, existing?: TestServer): Promise<CoreFixture> {
  const ts = existing ?? (await startTestServer({ 'donors.registrationsPerHour': 1000, ...overrides }));
  const db = ts.server.storage.mongo.db;
  const admin = (await db.collection('users').countDocuments()) === 0 ? (await initDatabase(db)).token : (await initDatabase(db, { force: true, adminName: `admin${++managers}` })).token;
  const api = async <T>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number): Promise<T> => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const r = await request(`${ts.url}${path}`, { ca: ts.ca, method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (expect !== undefined && r.status !== expect) throw new Error(`${method} ${path}: expected ${expect}, got ${r.status} ${r.body.toString()}`);
    return (r.body.length ? JSON.parse(r.body.toString()) : {}) as T;
  };
  const mname = `mgr${++managers}`;
  const manager = (await api<{ token: string }>('POST', '/v1/users', admin, { name: mname, role: 'manager' }, 201)).token;
  const engineKey = (await api<{ key: string }>('POST', '/v1/engine-keys', admin, { engine: 'openmm', description: 'tests' }, 201)).key;
  const donor = (await api<{ token: string }>('POST', '/v1/donors', undefined, { name: `donor${managers}` }, 201)).token;
  const wsUrl = `${ts.url.replace(/^http/, 'ws')}/core/v1`;
  return {
    ts,
    admin,
    manager,
    engineKey,
    donor,
    wsUrl,
    api,
    target: async (body = {}, token = manager) => (await api<{ target_id: string }>('POST', '/v1/targets', token, { engines: ['openmm'], stage: 'public', ...body }, 201)).target_id,
    stream: async (targetId, seed = Buffer.from('seed state'), token = manager) =>
      (await api<{ stream_id: string }>('POST', `/v1/targets/${targetId}/streams`, token, { files: { 'state.xml': seed.toString('base64') } }, 201)).stream_id,
    client: async (extra = {}) => {
      const c = new CoreClient({ url: wsUrl, engineKey, donorToken: donor, ca: ts.ca, ...extra });
      await c.connect();
      return c;
    },
  };
}
