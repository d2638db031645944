/**
 * Authorization matrix of the admin API (PROTOCOL §3): every route × {no token, unknown
 * token, donor, another manager, the owner manager, admin} → the HTTP status, from ONE
 * table. Each cell builds its own fixtures where the call changes state (DELETE, token
 * rotation, stop/start), so every cell is tested independently of the others.
 *
 * Semantics: `public` routes accept no token but reject an unknown one (401); role routes
 * answer 401 without a valid token and 403 to the wrong role; owner routes answer 403 to
 * another manager (and to donors), and admins may act as owners. Creating routes answer
 * 201, DELETE 204. Where a route has no owner (e.g. GET /v1/users), "owner" is simply a
 * manager; on /v1/users/{name} the owner is the user named in the path.
 */
import t from 'tap';
import { openApiFor } from '../src/http/routes';
import { startApiServer, uniqueName, unknownToken, type Account, type ApiServer, type Fixtures } from './helpers/api';
import { stopStack } from '../test-support/stack';

const CALLERS = ['none', 'unknown', 'donor', 'other', 'owner', 'admin'] as const;
type Caller = (typeof CALLERS)[number];
type Statuses = [none: number, unknown: number, donor: number, other: number, owner: number, admin: number];

/** What every cell may use: shared accounts and read-only resources owned by `owner`. */
interface World {
  fx: Fixtures;
  admin: Account;
  owner: Account;
  other: Account;
  donor: Account;
  privateTarget: string;
  publicTarget: string;
  /** A stream on privateTarget with seed `state.xml`, tag `tag.txt` and committed partitions 5 and 12. */
  stream: string;
}

/** One cell's request: a concrete path, a valid body, and who "owner" is when not world.owner. */
interface Call {
  path: string;
  body?: unknown;
  owner?: Account;
}

interface Row {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** The OpenAPI path template. */
  path: string;
  /** Tells apart rows of the same operation. */
  note?: string;
  build(w: World): Promise<Call> | Call;
  expect: Statuses;
}

const ENGINE = 'openmm_80_cuda';
const fresh = {
  user: (w: World) => w.fx.manager(),
  target: (w: World, stage = 'private') => w.fx.target(w.owner, { stage }),
  stream: async (w: World) => w.fx.stream(w.owner, await w.fx.target(w.owner)),
};

//            none unknown donor other owner admin
const ROWS: Row[] = [
  // users
  { method: 'GET', path: '/v1/me', expect: [401, 401, 200, 200, 200, 200], build: () => ({ path: '/v1/me' }) },
  { method: 'POST', path: '/v1/users', expect: [401, 401, 403, 403, 403, 201], build: () => ({ path: '/v1/users', body: { name: uniqueName('new'), role: 'manager', weight: 2 } }) },
  { method: 'GET', path: '/v1/users', expect: [401, 401, 403, 403, 403, 200], build: () => ({ path: '/v1/users' }) },
  {
    method: 'PATCH',
    path: '/v1/users/{name}',
    expect: [401, 401, 403, 403, 403, 200],
    build: async (w) => {
      const u = await fresh.user(w);
      return { path: `/v1/users/${u.name}`, body: { weight: 3 }, owner: u };
    },
  },
  {
    method: 'DELETE',
    path: '/v1/users/{name}',
    expect: [401, 401, 403, 403, 403, 204],
    build: async (w) => {
      const u = await fresh.user(w);
      return { path: `/v1/users/${u.name}`, owner: u };
    },
  },
  {
    method: 'POST',
    path: '/v1/users/{name}/token',
    expect: [401, 401, 403, 403, 200, 200],
    build: async (w) => {
      const u = await fresh.user(w);
      return { path: `/v1/users/${u.name}/token`, owner: u };
    },
  },
  // donors
  { method: 'POST', path: '/v1/donors', expect: [201, 401, 201, 201, 201, 201], build: () => ({ path: '/v1/donors', body: { name: uniqueName('d'), beta: true } }) },
  { method: 'GET', path: '/v1/donors', expect: [200, 401, 200, 200, 200, 200], build: () => ({ path: '/v1/donors?top=5' }) },
  { method: 'GET', path: '/v1/donors/{name}', expect: [200, 401, 200, 200, 200, 200], build: (w) => ({ path: `/v1/donors/${w.donor.name}` }) },
  // engine keys
  { method: 'POST', path: '/v1/engine-keys', expect: [401, 401, 403, 403, 403, 201], build: () => ({ path: '/v1/engine-keys', body: { engine: ENGINE, description: 'authz' } }) },
  { method: 'GET', path: '/v1/engine-keys', expect: [401, 401, 403, 403, 403, 200], build: () => ({ path: '/v1/engine-keys' }) },
  {
    method: 'DELETE',
    path: '/v1/engine-keys/{id}',
    expect: [401, 401, 403, 403, 403, 204],
    build: async (w) => ({ path: `/v1/engine-keys/${(await w.fx.engineKey()).id}` }),
  },
  // reliability and blocks (blocks of donors nobody uses harm no cell)
  { method: 'POST', path: '/v1/blocks', expect: [401, 401, 403, 403, 403, 201], build: () => ({ path: '/v1/blocks', body: { kind: 'donor', value: uniqueName('blk') } }) },
  { method: 'GET', path: '/v1/blocks', expect: [401, 401, 403, 403, 403, 200], build: () => ({ path: '/v1/blocks' }) },
  {
    method: 'DELETE',
    path: '/v1/blocks/{id}',
    expect: [401, 401, 403, 403, 403, 204],
    build: async (w) => {
      const b = await w.fx.api.expect<{ id: string }>(201, 'POST', '/v1/blocks', { token: w.admin.token, body: { kind: 'donor', value: uniqueName('blk') } });
      return { path: `/v1/blocks/${b.id}` };
    },
  },
  { method: 'GET', path: '/v1/reliability', expect: [401, 401, 403, 403, 403, 200], build: (w) => ({ path: `/v1/reliability?donor=${w.donor.name}` }) },
  // targets
  { method: 'POST', path: '/v1/targets', expect: [401, 401, 403, 201, 201, 403], build: () => ({ path: '/v1/targets', body: { engines: [ENGINE], weight: 2, options: { a: 1 } } }) },
  { method: 'GET', path: '/v1/targets', expect: [200, 401, 200, 200, 200, 200], build: () => ({ path: '/v1/targets' }) },
  { method: 'GET', path: '/v1/targets/{id}', note: 'private', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/targets/${w.privateTarget}` }) },
  { method: 'GET', path: '/v1/targets/{id}', note: 'public', expect: [200, 401, 200, 200, 200, 200], build: (w) => ({ path: `/v1/targets/${w.publicTarget}` }) },
  {
    method: 'PATCH',
    path: '/v1/targets/{id}',
    expect: [401, 401, 403, 403, 200, 200],
    build: async (w) => ({ path: `/v1/targets/${await fresh.target(w)}`, body: { weight: 5, stage: 'beta', options: { b: 2 } } }),
  },
  { method: 'DELETE', path: '/v1/targets/{id}', expect: [401, 401, 403, 403, 204, 204], build: async (w) => ({ path: `/v1/targets/${await fresh.target(w)}` }) },
  // streams
  {
    method: 'POST',
    path: '/v1/targets/{id}/streams',
    expect: [401, 401, 403, 403, 201, 201],
    build: async (w) => ({ path: `/v1/targets/${await fresh.target(w)}/streams`, body: { files: { 'state.xml': Buffer.from('<State/>').toString('base64') } } }),
  },
  { method: 'GET', path: '/v1/targets/{id}/streams', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/targets/${w.privateTarget}/streams?limit=10` }) },
  { method: 'GET', path: '/v1/streams/{id}', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/streams/${w.stream}` }) },
  { method: 'DELETE', path: '/v1/streams/{id}', expect: [401, 401, 403, 403, 204, 204], build: async (w) => ({ path: `/v1/streams/${await fresh.stream(w)}` }) },
  {
    method: 'POST',
    path: '/v1/streams/{id}/start',
    expect: [401, 401, 403, 403, 200, 200],
    build: async (w) => {
      const id = await fresh.stream(w);
      await w.fx.api.expect(200, 'POST', `/v1/streams/${id}/stop`, { token: w.owner.token });
      return { path: `/v1/streams/${id}/start` };
    },
  },
  { method: 'POST', path: '/v1/streams/{id}/stop', expect: [401, 401, 403, 403, 200, 200], build: async (w) => ({ path: `/v1/streams/${await fresh.stream(w)}/stop` }) },
  { method: 'GET', path: '/v1/streams/{id}/partitions', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/streams/${w.stream}/partitions` }) },
  { method: 'GET', path: '/v1/streams/{id}/files/{name}', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/streams/${w.stream}/files/state.xml` }) },
  { method: 'GET', path: '/v1/streams/{id}/partitions/{n}/{name}', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/streams/${w.stream}/partitions/5/traj.dcd` }) },
  {
    method: 'GET',
    path: '/v1/streams/{id}/partitions/{n}/checkpoint/{name}',
    expect: [401, 401, 403, 403, 200, 200],
    build: (w) => ({ path: `/v1/streams/${w.stream}/partitions/12/checkpoint/state.xml` }),
  },
  { method: 'GET', path: '/v1/streams/{id}/frames/{name}', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/streams/${w.stream}/frames/traj.dcd` }) },
  { method: 'GET', path: '/v1/streams/{id}/errors', expect: [401, 401, 403, 403, 200, 200], build: (w) => ({ path: `/v1/streams/${w.stream}/errors` }) },
  // live
  { method: 'GET', path: '/v1/active-streams', expect: [401, 401, 403, 200, 200, 200], build: () => ({ path: '/v1/active-streams' }) },
  { method: 'GET', path: '/v1/active-cores', expect: [200, 401, 200, 200, 200, 200], build: () => ({ path: '/v1/active-cores' }) },
  { method: 'GET', path: '/v1/nodes', expect: [401, 401, 403, 403, 403, 200], build: () => ({ path: '/v1/nodes' }) },
];

/** Routes outside the admin API proper. */
const SYSTEM_PATHS = new Set(['/', '/healthz', '/readyz', '/metrics', '/openapi.json']);

const ERROR_CODES: Record<number, string> = { 401: 'unauthorized', 403: 'forbidden' };

let srv: ApiServer;
let world: World;

t.before(async () => {
  srv = await startApiServer();
  const { fx, admin } = srv;
  const [owner, other, donor] = await Promise.all([fx.manager(uniqueName('owner')), fx.manager(uniqueName('other')), fx.donor()]);
  const [privateTarget, publicTarget] = await Promise.all([fx.target(owner), fx.target(owner, { stage: 'public' })]);
  const stream = await fx.stream(owner, privateTarget, { 'state.xml': '<State/>' }, { 'tag.txt': 'tag' });
  await fx.commitPartition(stream, 5, { 'traj.dcd': 'frames 1-5' }, { 'state.xml': '<State step="5"/>' });
  await fx.commitPartition(stream, 12, { 'traj.dcd': 'frames 6-12' }, { 'state.xml': '<State step="12"/>' });
  world = { fx, admin, owner, other, donor, privateTarget, publicTarget, stream };
});

t.teardown(async () => {
  await srv?.close();
  await stopStack();
});

function tokenOf(caller: Caller, w: World, call: Call): string | undefined {
  switch (caller) {
    case 'none':
      return undefined;
    case 'unknown':
      return unknownToken();
    case 'donor':
      return w.donor.token;
    case 'other':
      return w.other.token;
    case 'owner':
      return (call.owner ?? w.owner).token;
    case 'admin':
      return w.admin.token;
  }
}

const rowName = (r: Row) => `${r.method} ${r.path}${r.note ? ` (${r.note})` : ''}`;

for (const row of ROWS) {
  t.test(rowName(row), async (t) => {
    // The six cells run concurrently; each builds its own fixtures.
    const results = await Promise.all(
      CALLERS.map(async (caller) => {
        const call = await row.build(world);
        const res = await world.fx.api.call(row.method, call.path, { token: tokenOf(caller, world, call), body: call.body });
        return { caller, call, res };
      }),
    );
    for (const [i, { caller, call, res }] of results.entries()) {
      const want = row.expect[i]!;
      const text = res.body.toString().slice(0, 300);
      t.equal(res.status, want, `${caller}: ${row.method} ${call.path} → ${want}`, { body: text });
      if (res.status === want && ERROR_CODES[want]) {
        t.equal(res.json<{ error: { code: string } }>().error.code, ERROR_CODES[want], `${caller}: error code ${ERROR_CODES[want]}`);
        if (want === 401) t.match(res.headers['www-authenticate'], /^Bearer/, `${caller}: WWW-Authenticate on 401`);
      }
    }
  });
}

t.test('rotated, deleted and re-roled tokens take effect at once (despite the auth cache)', async (t) => {
  const { api, fx } = srv;
  const me = (token: string) => api.call('GET', '/v1/me', { token }).then((r) => r.status);
  const users = (token: string) => api.call('GET', '/v1/users', { token }).then((r) => r.status);

  const rotated = await fx.manager();
  t.equal(await me(rotated.token), 200, 'cached before rotation');
  const { token: newToken } = await api.expect<{ token: string }>(200, 'POST', `/v1/users/${rotated.name}/token`, { token: rotated.token });
  t.equal(await me(rotated.token), 401, 'old token: 401 after rotation');
  t.equal(await me(newToken), 200, 'new token works');

  const deleted = await fx.manager();
  t.equal(await me(deleted.token), 200, 'cached before deletion');
  await api.expect(204, 'DELETE', `/v1/users/${deleted.name}`, { token: srv.admin.token });
  t.equal(await me(deleted.token), 401, 'deleted user: 401');

  const promoted = await fx.manager();
  t.equal(await users(promoted.token), 403, 'manager: 403 on an admin route');
  await api.expect(200, 'PATCH', `/v1/users/${promoted.name}`, { token: srv.admin.token, body: { role: 'admin' } });
  t.equal(await users(promoted.token), 200, 'promoted to admin: 200 at once');
  await api.expect(200, 'PATCH', `/v1/users/${promoted.name}`, { token: srv.admin.token, body: { role: 'manager' } });
  t.equal(await users(promoted.token), 403, 'demoted to manager: 403 at once');
});

t.test('the table covers every operation of the OpenAPI document', async (t) => {
  const doc = openApiFor(srv.ts.settings) as { paths: Record<string, Record<string, unknown>> };
  const documented = Object.entries(doc.paths)
    .filter(([path]) => !SYSTEM_PATHS.has(path))
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
  const tabled = [...new Set(ROWS.map((r) => `${r.method} ${r.path}`))].sort();
  t.same(
    documented.filter((op) => !tabled.includes(op)),
    [],
    'every documented operation has a row',
  );
  t.same(
    tabled.filter((op) => !documented.includes(op)),
    [],
    'every row is a documented operation',
  );
  for (const path of SYSTEM_PATHS) t.ok(doc.paths[path], `system path ${path} is still documented (so its exclusion means something)`);
});

t.test('the table agrees with the declared access of each route', async (t) => {
  // public routes (security [{}, ...]) never answer 401 to no token except for a non-public
  // target; role routes (x-roles) answer 401, 401 and 403 to roles they do not name.
  const doc = openApiFor(srv.ts.settings) as { paths: Record<string, Record<string, { security?: unknown[]; 'x-roles'?: string[] }>> };
  for (const row of ROWS) {
    const op = doc.paths[row.path]?.[row.method.toLowerCase()];
    if (!op) continue; // reported by the coverage test
    const roles = op['x-roles'];
    const [none, unknown, donor, other, owner, admin] = row.expect;
    t.equal(unknown, 401, `${rowName(row)}: unknown token → 401`);
    if (roles) {
      t.equal(none, 401, `${rowName(row)}: no token → 401`);
      if (!roles.includes('donor')) t.equal(donor, 403, `${rowName(row)}: donor → 403`);
      if (!roles.includes('manager')) t.ok(other === 403 && owner === 403, `${rowName(row)}: managers → 403`);
      if (!roles.includes('admin')) t.equal(admin, 403, `${rowName(row)}: admin → 403`);
    } else if (op.security?.some((s) => Object.keys(s as object).length === 0)) {
      if (row.note !== 'private') t.ok(none < 400, `${rowName(row)}: public route accepts no token`);
    } else {
      t.equal(none, 401, `${rowName(row)}: token route → 401 without one`);
    }
  }
});
