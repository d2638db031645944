/**
 * Bad input of every class gets 400/401/413/415 with a clear message, and a rejected
 * request changes nothing in the database (collections snapshotted before and after).
 */
import crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { BSON, type Db } from 'mongodb';
import { ApiClient, b64, startApiServer, type ApiServer } from './helpers/api';
import type { TestServer } from './helpers/server';
import { stopStack } from '../test-support/stack';

const KIB = 1024;
const MIB = 1024 * KIB;
const MAX_BODY = 256 * KIB;
const MAX_STREAM_BODY = 3 * MIB;
const MAX_FILES = 4;
const MAX_OPTIONS = 1024;
const MAX_LIST = 50;

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json<T = any>(): T;
}

interface CallOptions {
  token?: string;
  /** Serialized as JSON with Content-Type: application/json. */
  json?: unknown;
  /** Sent as is (no Content-Type unless given in headers). */
  raw?: string | Buffer;
  headers?: Record<string, string>;
}

/** One HTTPS request with the path sent exactly as given (no URL normalisation of `..` or `%2e`). */
function call(ts: TestServer, method: string, path: string, opts: CallOptions = {}): Promise<Res> {
  const body = opts.json !== undefined ? Buffer.from(JSON.stringify(opts.json)) : opts.raw;
  const headers = opts.json !== undefined ? { 'content-type': 'application/json', ...opts.headers } : opts.headers;
  return new ApiClient(ts.url, ts.ca).call(method, path, { token: opts.token, body, headers, exactPath: true });
}

/**
 * A request over a raw TLS socket: writes `head` and `body`, then reads until the server
 * closes the connection or `waitMs` passes. Returns what came back and when it started.
 */
function rawExchange(ts: TestServer, head: string, body: Buffer | string, waitMs = 5000): Promise<{ text: string; firstByteMs: number; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port: ts.server.port, servername: 'localhost', ca: ts.ca });
    let text = '';
    let sent = 0;
    let firstByteMs = -1;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, firstByteMs, closed });
    };
    const timer = setTimeout(() => done(false), waitMs);
    sock.once('secureConnect', () => {
      sent = Date.now();
      sock.write(head);
      sock.write(body);
    });
    sock.on('data', (d: Buffer) => {
      if (firstByteMs < 0) firstByteMs = Date.now() - sent;
      text += d.toString('latin1');
    });
    sock.on('end', () => done(true));
    sock.on('close', () => done(true));
    sock.on('error', (err) => (text ? done(true) : reject(err)));
  });
}

const COLLECTIONS = ['users', 'donors', 'engine_keys', 'targets', 'streams', 'files', 'partitions', 'blobs.files', 'blobs.chunks'];

/**
 * Count and content (as a hash of canonical Extended JSON) of every collection the API
 * writes. GridFS chunks are compared without their bytes (they are never updated in place;
 * reading megabytes per snapshot would make this file slow).
 */
async function snapshot(db: Db): Promise<Record<string, { count: number; content: string }>> {
  const out: Record<string, { count: number; content: string }> = {};
  for (const c of COLLECTIONS) {
    const docs = await db
      .collection(c)
      .find({}, c === 'blobs.chunks' ? { projection: { data: 0 } } : {})
      .sort({ _id: 1 })
      .toArray();
    const text = BSON.EJSON.stringify(docs, { relaxed: false });
    out[c] = { count: docs.length, content: crypto.createHash('sha256').update(text).digest('hex') };
  }
  return out;
}

let s: ApiServer;
let ts: TestServer;
let db: Db;
let admin: string;
let mgr: string;
let targetId: string;
let streamId: string;

t.before(async () => {
  s = await startApiServer({
    'http.maxBodyBytes': MAX_BODY,
    'http.maxStreamBodyBytes': MAX_STREAM_BODY,
    'limits.maxFilesPerStream': MAX_FILES,
    'limits.maxOptionsBytes': MAX_OPTIONS,
    'limits.maxListItems': MAX_LIST,
    'donors.leaderboardMax': 100,
  });
  ts = s.ts;
  db = ts.server.storage.mongo.db;
  admin = s.admin.token;
  mgr = (await s.fx.manager('mgr')).token;
  targetId = await s.fx.target({ name: 'mgr', role: 'manager', token: mgr }, { options: { keep: 1 } });
  streamId = await s.fx.stream({ name: 'mgr', role: 'manager', token: mgr }, targetId, { 'a.txt': 'seed' });
  await s.fx.donor('donor1');
  await s.fx.engineKey();
});
t.teardown(async () => {
  await s?.close();
  await stopStack();
});

/**
 * One rejected request: the status, the error code, a message naming the problem, and an
 * untouched database. `extra` goes to every assertion (e.g. `{ todo: 'known bug …' }`).
 */
async function rejects(t: Test, what: string, send: () => Promise<Res>, status: number, code: string, message: RegExp, extra: Record<string, unknown> = {}): Promise<Res> {
  const before = await snapshot(db);
  const res = await send();
  t.equal(res.status, status, `${what}: ${status} (${res.body.toString().slice(0, 200)})`, extra);
  let body: unknown;
  try {
    body = res.json();
  } catch {
    body = res.body.toString();
  }
  t.match(body, { error: { code, message } }, `${what}: ${code}, message ${message}`, extra);
  t.match(String(res.headers['content-type']), /^application\/json/, `${what}: JSON error body`, extra);
  t.same(await snapshot(db), before, `${what}: database unchanged`, extra);
  return res;
}

t.test('malformed JSON, wrong content type, empty body', async (t) => {
  const user = { name: 'newbie', role: 'manager' };
  await rejects(t, 'malformed JSON', () => call(ts, 'POST', '/v1/users', { token: admin, raw: '{"name": "newbie",', headers: { 'content-type': 'application/json' } }), 400, 'bad_request', /Malformed JSON/);
  await rejects(t, 'trailing garbage', () => call(ts, 'POST', '/v1/users', { token: admin, raw: `${JSON.stringify(user)}x`, headers: { 'content-type': 'application/json' } }), 400, 'bad_request', /Malformed JSON/);
  await rejects(t, 'text/plain', () => call(ts, 'POST', '/v1/users', { token: admin, raw: JSON.stringify(user), headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type', /application\/json/);
  await rejects(t, 'no content type', () => call(ts, 'POST', '/v1/users', { token: admin, raw: JSON.stringify(user) }), 415, 'unsupported_media_type', /application\/json/);
  await rejects(
    t,
    'form encoding',
    () => call(ts, 'POST', '/v1/targets', { token: mgr, raw: 'engines=openmm', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    415,
    'unsupported_media_type',
    /application\/json/,
  );
  await rejects(t, 'empty body', () => call(ts, 'POST', '/v1/users', { token: admin, headers: { 'content-type': 'application/json', 'content-length': '0' } }), 400, 'bad_request', /empty/);
  await rejects(t, 'JSON null', () => call(ts, 'POST', '/v1/targets', { token: mgr, json: null }), 400, 'bad_request', /body: must be object/);
  await rejects(t, 'JSON array', () => call(ts, 'POST', '/v1/users', { token: admin, json: [user] }), 400, 'bad_request', /body: must be object/);
  await rejects(t, 'empty PATCH', () => call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: mgr, json: {} }), 400, 'bad_request', /body: must NOT have fewer than 1 properties/);
  t.equal((await call(ts, 'POST', '/v1/users', { token: admin, raw: JSON.stringify(user), headers: { 'content-type': 'Application/JSON; charset=utf-8' } })).status, 201, 'media type is case-insensitive, parameters allowed');
});

t.test('unknown fields, top level and nested', async (t) => {
  await rejects(t, 'unknown user field', () => call(ts, 'POST', '/v1/users', { token: admin, json: { name: 'u1', role: 'manager', admin: true } }), 400, 'bad_request', /body: unknown field "admin"/);
  await rejects(t, 'tokenHash in a user', () => call(ts, 'POST', '/v1/users', { token: admin, json: { name: 'u1', role: 'manager', tokenHash: 'x' } }), 400, 'bad_request', /unknown field "tokenHash"/);
  await rejects(t, '__proto__ in a user', () => call(ts, 'POST', '/v1/users', { token: admin, raw: '{"name":"u1","role":"manager","__proto__":{"role":"admin"}}', headers: { 'content-type': 'application/json' } }), 400, 'bad_request', /unknown field "__proto__"/);
  await rejects(t, 'owner in a target', () => call(ts, 'POST', '/v1/targets', { token: mgr, json: { engines: ['openmm_80_cuda'], owner: 'someone' } }), 400, 'bad_request', /unknown field "owner"/);
  await rejects(t, 'unknown PATCH field', () => call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: mgr, json: { weight: 2, version: 9 } }), 400, 'bad_request', /unknown field "version"/);
  await rejects(t, 'unknown user PATCH field', () => call(ts, 'PATCH', '/v1/users/mgr', { token: admin, json: { weight: 2, name: 'boss' } }), 400, 'bad_request', /unknown field "name"/);
  await rejects(t, 'unknown donor field', () => call(ts, 'POST', '/v1/donors', { json: { name: 'd9', frames: 1e9 } }), 400, 'bad_request', /unknown field "frames"/);
  await rejects(t, 'unknown engine-key field', () => call(ts, 'POST', '/v1/engine-keys', { token: admin, json: { engine: 'openmm_80_cuda', key: 'mine' } }), 400, 'bad_request', /unknown field "key"/);
  await rejects(t, 'a misspelt required field', () => call(ts, 'POST', '/v1/targets', { token: mgr, json: { engine: ['openmm_80_cuda'] } }), 400, 'bad_request', /body: missing required field "engines" \(unknown: "engine"\)/);
  await rejects(t, 'a value outside an enum', () => call(ts, 'POST', '/v1/targets', { token: mgr, json: { engines: ['openmm_80_cuda'], stage: 'Public' } }), 400, 'bad_request', /body\.stage: must be one of "public", "beta", "private", "disabled"/);
  await rejects(t, 'unknown stream field', () => call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: mgr, json: { files: { 'a.txt': b64('x') }, status: 'ok' } }), 400, 'bad_request', /unknown field "status"/);
  // Nested: file maps hold only file names mapped to base64 strings.
  await rejects(t, 'object in a file map', () => call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: mgr, json: { files: { 'a.txt': { data: b64('x') } } } }), 400, 'bad_request', /body\.files\.a\.txt: must be string/);
  await rejects(t, 'nested option with $', () => call(ts, 'POST', '/v1/targets', { token: mgr, json: { engines: ['openmm_80_cuda'], options: { $where: 'x' } } }), 400, 'bad_request', /body\.options: key "\$where"/);
  await rejects(t, 'option key with a dot', () => call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: mgr, json: { options: { 'a.b': 1 } } }), 400, 'bad_request', /body\.options: key "a\.b"/);
  await rejects(t, 'unknown query parameter', () => call(ts, 'GET', '/v1/me?debug=1', { token: admin }), 400, 'bad_request', /query: unknown field "debug"/);
});

t.test('wrong types and values', async (t) => {
  const cases: Array<[string, string, string, unknown, string, RegExp]> = [
    ['name as number', 'POST', '/v1/users', { name: 123, role: 'manager' }, admin, /body\.name: must be string/],
    ['unknown role', 'POST', '/v1/users', { name: 'u2', role: 'root' }, admin, /body\.role: must be one of "manager", "admin"/],
    ['missing role', 'POST', '/v1/users', { name: 'u2' }, admin, /missing required field "role"/],
    ['weight as string', 'POST', '/v1/users', { name: 'u2', role: 'manager', weight: '2' }, admin, /body\.weight: must be number/],
    ['weight zero', 'PATCH', '/v1/users/mgr', { weight: 0 }, admin, /body\.weight: must be > 0/],
    ['engines as string', 'POST', '/v1/targets', { engines: 'openmm_80_cuda' }, mgr, /body\.engines: must be array/],
    ['no engines', 'POST', '/v1/targets', { engines: [] }, mgr, /body\.engines: must NOT have fewer than 1 items/],
    ['duplicate engines', 'POST', '/v1/targets', { engines: ['a', 'a'] }, mgr, /body\.engines: must NOT have duplicate items/],
    ['bad engine name', 'POST', '/v1/targets', { engines: ['OpenMM CUDA'] }, mgr, /body\.engines\.0: must match pattern/],
    ['unknown stage', 'PATCH', `/v1/targets/${targetId}`, { stage: 'secret' }, mgr, /body\.stage: must be one of "public", "beta", "private", "disabled"/],
    ['negative weight', 'PATCH', `/v1/targets/${targetId}`, { weight: -1 }, mgr, /body\.weight: must be > 0/],
    ['huge weight', 'PATCH', `/v1/targets/${targetId}`, { weight: 1e9 }, mgr, /body\.weight: must be <= 1000000/],
    ['options as array', 'PATCH', `/v1/targets/${targetId}`, { options: [1] }, mgr, /body\.options: must be object/],
    ['beta as string', 'POST', '/v1/donors', { name: 'd2', beta: 'yes' }, '', /body\.beta: must be boolean/],
    ['files as array', 'POST', `/v1/targets/${targetId}/streams`, { files: [b64('x')] }, mgr, /body\.files: must be object/],
    ['file as number', 'POST', `/v1/targets/${targetId}/streams`, { files: { 'a.txt': 12 } }, mgr, /body\.files\.a\.txt: must be string/],
    ['no files', 'POST', `/v1/targets/${targetId}/streams`, { files: {} }, mgr, /body\.files: must NOT have fewer than 1 properties/],
    ['description as object', 'POST', '/v1/engine-keys', { engine: 'openmm_80_cuda', description: {} }, admin, /body\.description: must be string/],
  ];
  for (const [what, method, path, body, token, message] of cases) {
    await rejects(t, what, () => call(ts, method, path, { token: token || undefined, json: body }), 400, 'bad_request', message);
  }
});

t.test('names: too long, path-like, NUL, leading dot', async (t) => {
  const long = 'a'.repeat(65);
  t.equal((await call(ts, 'GET', `/v1/donors/${'d'.repeat(64)}`)).status, 404, '64 characters is a valid (unknown) name');
  await rejects(t, '65-character user name', () => call(ts, 'POST', '/v1/users', { token: admin, json: { name: long, role: 'manager' } }), 400, 'bad_request', /body\.name: must NOT have more than 64 characters/);
  await rejects(t, '65-character donor name', () => call(ts, 'POST', '/v1/donors', { json: { name: long } }), 400, 'bad_request', /body\.name: must NOT have more than 64 characters/);
  await rejects(t, '65-character name in the path', () => call(ts, 'GET', `/v1/donors/${long}`), 400, 'bad_request', /path\.name: must NOT have more than 64 characters/);
  await rejects(t, '65-character name in a DELETE path', () => call(ts, 'DELETE', `/v1/users/${long}`, { token: admin }), 400, 'bad_request', /path\.name/);
  await rejects(t, '129-character file name', () => call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: mgr, json: { files: { ['f'.repeat(129)]: b64('x') } } }), 400, 'bad_request', /body\.files/);

  for (const bad of ['..', 'a/b', '.hidden', 'a\u0000b', '', 'a b', 'é']) {
    await rejects(t, `user name ${JSON.stringify(bad)}`, () => call(ts, 'POST', '/v1/users', { token: admin, json: { name: bad, role: 'manager' } }), 400, 'bad_request', /body\.name: must (match pattern|NOT have fewer)/);
  }
  for (const bad of ['..', '%2e%2e', '%2E%2E', '.%2e', 'a%2Fb', '..%2Fx', '%2e%2e%2fusers', 'a%00b', '%00', '.hidden', '%2ehidden', 'a%20b']) {
    await rejects(t, `user name ${bad} in a DELETE path`, () => call(ts, 'DELETE', `/v1/users/${bad}`, { token: admin }), 400, 'bad_request', /path\.name: must match pattern/);
    await rejects(t, `donor name ${bad} in a GET path`, () => call(ts, 'GET', `/v1/donors/${bad}`), 400, 'bad_request', /path\.name: must match pattern/);
  }
  await rejects(t, 'malformed percent-encoding', () => call(ts, 'DELETE', '/v1/users/%zz', { token: admin }), 400, 'bad_request', /percent-encoding/);
  await rejects(t, 'truncated percent-encoding', () => call(ts, 'GET', '/v1/donors/a%2'), 400, 'bad_request', /percent-encoding/);
});

t.test('stream files: bad base64, path traversal, too many files', async (t) => {
  const post = (body: unknown) => () => call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: mgr, json: body });
  await rejects(t, 'not base64', post({ files: { 'a.txt': 'not base64!' } }), 400, 'bad_request', /body\.files\.a\.txt: not valid base64/);
  await rejects(t, 'base64 of wrong length', post({ files: { 'a.txt': 'abc' } }), 400, 'bad_request', /body\.files\.a\.txt: not valid base64/);
  await rejects(t, 'base64url alphabet', post({ files: { 'a.txt': 'ab-_' } }), 400, 'bad_request', /not valid base64/);
  await rejects(t, 'padding in the middle', post({ files: { 'a.txt': 'ab==abcd' } }), 400, 'bad_request', /not valid base64/);
  await rejects(t, 'bad base64 in a later file', post({ files: { 'a.txt': b64('fine'), 'b.txt': b64(crypto.randomBytes(200 * KIB)), 'c.txt': '!!!!' } }), 400, 'bad_request', /body\.files\.c\.txt/);
  await rejects(t, 'bad base64 in a tag', post({ files: { 'a.txt': b64('fine') }, tags: { 't.txt': 'a b c d' } }), 400, 'bad_request', /body\.tags\.t\.txt: not valid base64/);
  await rejects(t, 'tag named like a seed file', post({ files: { 'a.txt': b64('x') }, tags: { 'a.txt': b64('y') } }), 400, 'bad_request', /body\.tags\.a\.txt: a seed file has the same name/);
  for (const bad of ['../x', 'a/b', '..', '.hidden', '/etc/passwd', 'a\\b', 'a\u0000b', '']) {
    await rejects(t, `seed file name ${JSON.stringify(bad)}`, post({ files: { [bad]: b64('x') } }), 400, 'bad_request', /body\.files: property name must be valid|body\.files/);
    await rejects(t, `tag file name ${JSON.stringify(bad)}`, post({ files: { 'a.txt': b64('x') }, tags: { [bad]: b64('x') } }), 400, 'bad_request', /body\.tags/);
  }
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}.txt`, b64(`file ${i}`)]));
  await rejects(t, `${MAX_FILES + 1} seed files`, post({ files: many(MAX_FILES + 1) }), 400, 'bad_request', new RegExp(`body\\.files: must NOT have more than ${MAX_FILES} properties`));
  await rejects(t, `${MAX_FILES + 1} tag files`, post({ files: { 'a.txt': b64('x') }, tags: many(MAX_FILES + 1) }), 400, 'bad_request', new RegExp(`body\\.tags: must NOT have more than ${MAX_FILES} properties`));
  const okRes = await call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: mgr, json: { files: many(MAX_FILES), tags: { 'n.txt': '' } } });
  t.equal(okRes.status, 201, `${MAX_FILES} files (and an empty tag file) are fine`);
});

t.test('a bad file name in a file map is named in the message', async (t) => {
  const post = (body: unknown) => () => call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: mgr, json: body });
  await rejects(t, 'seed ../x', post({ files: { 'ok.txt': b64('x'), '../x': b64('x') } }), 400, 'bad_request', /\.\.\/x/);
  await rejects(t, 'tag .hidden', post({ files: { 'ok.txt': b64('x') }, tags: { '.hidden': b64('x') } }), 400, 'bad_request', /\.hidden/);
  await rejects(t, '129-character name', post({ files: { ['f'.repeat(129)]: b64('x') } }), 400, 'bad_request', /f{129}|file name/);
});

t.test('download paths: traversal and bad names', async (t) => {
  const base = `/v1/streams/${streamId}`;
  t.equal((await call(ts, 'GET', `${base}/files/a.txt`, { token: mgr })).body.toString(), 'seed', 'the good path works');
  for (const bad of ['..%2Fx', '..%2F..%2Fusers', '%2e%2e', '%2E%2e', '.%2E', 'a%2Fb', 'a%00b', '.hidden', '%2e.txt', 'a%5Cb']) {
    await rejects(t, `files/${bad}`, () => call(ts, 'GET', `${base}/files/${bad}`, { token: mgr }), 400, 'bad_request', /path\.name: must match pattern/);
    await rejects(t, `partitions/1/${bad}`, () => call(ts, 'GET', `${base}/partitions/1/${bad}`, { token: mgr }), 400, 'bad_request', /path\.name: must match pattern/);
    await rejects(t, `partitions/1/checkpoint/${bad}`, () => call(ts, 'GET', `${base}/partitions/1/checkpoint/${bad}`, { token: mgr }), 400, 'bad_request', /path\.name: must match pattern/);
    await rejects(t, `frames/${bad}`, () => call(ts, 'GET', `${base}/frames/${bad}`, { token: mgr }), 400, 'bad_request', /path\.name: must match pattern/);
  }
  // Literal dot segments are not resolved by the server: they only fail to match a route.
  for (const path of [`${base}/files/../partitions`, `${base}/files/../../../users`, `${base}/files/./a.txt`]) {
    const res = await call(ts, 'GET', path, { token: mgr });
    t.equal(res.status, 404, `${path}: no route`);
    t.match(res.json(), { error: { code: 'not_found' } });
  }
  for (const n of ['0', '01', 'abc', '-1', '1.5', '12345678901234567', '%2d1']) {
    await rejects(t, `partition number ${n}`, () => call(ts, 'GET', `${base}/partitions/${n}/traj.dcd`, { token: mgr }), 400, 'bad_request', /path\.n: must match pattern/);
  }
});

t.test('ids in paths and query parameters', async (t) => {
  for (const [what, id] of [
    ['short', 'abc'],
    ['21 characters', 'A'.repeat(21)],
    ['23 characters', 'A'.repeat(23)],
    ['22 characters with a dot', `${'A'.repeat(21)}.`],
    ['encoded slash', `${'A'.repeat(19)}%2F..`],
  ] as const) {
    await rejects(t, `stream id ${what}`, () => call(ts, 'GET', `/v1/streams/${id}`, { token: mgr }), 400, 'bad_request', /path\.id: must (match pattern|NOT have more than 22 characters)/);
    await rejects(t, `DELETE target id ${what}`, () => call(ts, 'DELETE', `/v1/targets/${id}`, { token: mgr }), 400, 'bad_request', /path\.id/);
    await rejects(t, `DELETE stream id ${what}`, () => call(ts, 'DELETE', `/v1/streams/${id}`, { token: mgr }), 400, 'bad_request', /path\.id/);
    await rejects(t, `DELETE engine key id ${what}`, () => call(ts, 'DELETE', `/v1/engine-keys/${id}`, { token: admin }), 400, 'bad_request', /path\.id/);
  }
  await rejects(t, 'top=0', () => call(ts, 'GET', '/v1/donors?top=0'), 400, 'bad_request', /query\.top: must be >= 1/);
  await rejects(t, 'top=abc', () => call(ts, 'GET', '/v1/donors?top=abc'), 400, 'bad_request', /query\.top: must be integer/);
  await rejects(t, 'top=1.5', () => call(ts, 'GET', '/v1/donors?top=1.5'), 400, 'bad_request', /query\.top: must be integer/);
  await rejects(t, 'top over leaderboardMax', () => call(ts, 'GET', '/v1/donors?top=101'), 400, 'bad_request', /query\.top: must be <= 100/);
  t.equal((await call(ts, 'GET', '/v1/donors?top=100')).status, 200, 'top=leaderboardMax is fine');
  const streams = `/v1/targets/${targetId}/streams`;
  await rejects(t, 'limit over maxListItems', () => call(ts, 'GET', `${streams}?limit=${MAX_LIST + 1}`, { token: mgr }), 400, 'bad_request', new RegExp(`query\\.limit: must be <= ${MAX_LIST}`));
  await rejects(t, 'limit=0', () => call(ts, 'GET', `${streams}?limit=0`, { token: mgr }), 400, 'bad_request', /query\.limit: must be >= 1/);
  await rejects(t, 'limit=-5', () => call(ts, 'GET', `${streams}?limit=-5`, { token: mgr }), 400, 'bad_request', /query\.limit/);
  await rejects(t, 'after not an id', () => call(ts, 'GET', `${streams}?after=xyz`, { token: mgr }), 400, 'bad_request', /query\.after: must match pattern/);
  await rejects(t, 'unknown query parameter', () => call(ts, 'GET', `${streams}?status=ok`, { token: mgr }), 400, 'bad_request', /query: unknown field "status"/);
  t.equal((await call(ts, 'GET', `${streams}?limit=${MAX_LIST}`, { token: mgr })).status, 200, 'limit=maxListItems is fine');
});

t.test('option keys below the top level, and NUL in keys', async (t) => {
  const create = (options: unknown) => () => call(ts, 'POST', '/v1/targets', { token: mgr, json: { engines: ['openmm_80_cuda'], options } });
  const patch = (options: unknown) => () => call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: mgr, json: { options } });
  await rejects(t, 'nested key with $', create({ a: { $x: 1 } }), 400, 'bad_request', /body\.options/);
  await rejects(t, 'nested key with a dot', create({ a: { 'b.c': 1 } }), 400, 'bad_request', /body\.options/);
  await rejects(t, 'NUL in a top-level key', create({ 'a\u0000b': 1 }), 400, 'bad_request', /body\.options/);
  await rejects(t, 'NUL in a nested key', create({ a: { 'x\u0000': 1 } }), 400, 'bad_request', /body\.options/);
  await rejects(t, 'PATCH: nested key with $', patch({ q: { $set: 1 } }), 400, 'bad_request', /body\.options/);
  await rejects(t, 'PATCH: NUL in a key', patch({ 'q\u0000': 1 }), 400, 'bad_request', /body\.options/);
});

t.test('option values the store or a walk cannot take are 400, not 500', async (t) => {
  const raw = (text: string) => () => call(ts, 'POST', '/v1/targets', { token: mgr, raw: `{"engines":["openmm_80_cuda"],"options":${text}}`, headers: { 'content-type': 'application/json' } });
  const deep = `{"a":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`;
  await rejects(t, 'nested 20,000 deep', raw(deep), 400, 'bad_request', /nested deeper than limits\.maxOptionsDepth \(32\)/);
  await rejects(t, 'arrays nested 20,000 deep', raw(`{"a":${'[{"b":'.repeat(20_000)}1${'}]'.repeat(20_000)}}`), 400, 'bad_request', /limits\.maxOptionsDepth/);
  await rejects(t, 'Infinity', raw('{"x":1e400}'), 400, 'bad_request', /body\.options\.x: numbers must be finite/);
  await rejects(t, 'an array in an array', raw('{"m":[[1,2],[3,4]]}'), 400, 'bad_request', /body\.options\.m\[0\]: arrays directly inside arrays/);
  // options (1), a (2), 28 more objects (3–30), the array (31), its object (32).
  const ok = `{"a":${'{"a":'.repeat(28)}[{"b":1}]${'}'.repeat(28)}}`;
  t.equal((await raw(ok)()).status, 201, 'depth 32, arrays of objects included, is fine');
});

t.test('options over limits.maxOptionsBytes', async (t) => {
  const big = { blob: 'x'.repeat(MAX_OPTIONS) };
  await rejects(t, 'create with big options', () => call(ts, 'POST', '/v1/targets', { token: mgr, json: { engines: ['openmm_80_cuda'], options: big } }), 400, 'bad_request', new RegExp(`body\\.options: \\d+ bytes as JSON, over the limit of ${MAX_OPTIONS}`));
  await rejects(t, 'PATCH with big options', () => call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: mgr, json: { options: big, weight: 7 } }), 400, 'bad_request', /over the limit/);
  // Each half fits; merged they do not.
  const half = (k: string) => ({ [k]: 'y'.repeat(MAX_OPTIONS / 2) });
  t.equal((await call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: mgr, json: { options: half('h1') } })).status, 200, 'half the limit fits');
  await rejects(t, 'PATCH whose merge goes over', () => call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: mgr, json: { options: half('h2') } }), 400, 'bad_request', /over the limit/);
  const target = (await call(ts, 'GET', `/v1/targets/${targetId}`, { token: mgr })).json();
  t.same(Object.keys(target.options).sort(), ['h1', 'keep'], 'options unchanged by the refused PATCH');
  const tooMany = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`k${i}`, 1]));
  await rejects(t, '257 option keys', () => call(ts, 'POST', '/v1/targets', { token: mgr, json: { engines: ['openmm_80_cuda'], options: tooMany } }), 400, 'bad_request', /body\.options: must NOT have more than 256 properties/);
});

t.test('body size limits', async (t) => {
  const auth = `Authorization: Bearer ${admin}\r\n`;
  await t.test('Content-Length over http.maxBodyBytes: 413 at once, nothing buffered', async (t) => {
    const before = await snapshot(db);
    const head = `POST /v1/users HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: ${10 * MIB}\r\n\r\n`;
    const r = await rawExchange(ts, head, '{"name":"x');
    t.match(r.text, /^HTTP\/1\.1 413 /, 'status 413');
    t.ok(r.firstByteMs >= 0 && r.firstByteMs < 1000, `answered in ${r.firstByteMs} ms, without waiting for the body`);
    t.match(r.text, /\r\nconnection: close\r\n/i, 'and the connection is closed');
    t.ok(r.closed, 'closed by the server');
    t.match(r.text, /"code":"too_large"/);
    t.match(r.text, new RegExp(`over the limit of ${MAX_BODY} bytes`));
    t.same(await snapshot(db), before, 'database unchanged');
  });

  await t.test('maxBodyBytes + 1 on an ordinary route, body sent', async (t) => {
    const before = await snapshot(db);
    const body = Buffer.alloc(MAX_BODY + 1, 0x20);
    const head = `POST /v1/engine-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const r = await rawExchange(ts, head, body);
    t.match(r.text, /^HTTP\/1\.1 413 /);
    t.same(await snapshot(db), before, 'database unchanged');
    const atLimit = Buffer.from(JSON.stringify({ engine: 'openmm_80_cuda', description: 'z'.repeat(900) }).padEnd(MAX_BODY, ' '));
    t.equal((await call(ts, 'POST', '/v1/engine-keys', { token: admin, raw: atLimit, headers: { 'content-type': 'application/json' } })).status, 201, 'exactly maxBodyBytes is accepted');
  });

  await t.test('a chunked body that grows past the limit is cut off', async (t) => {
    const before = await snapshot(db);
    const chunk = Buffer.alloc(64 * KIB, 0x20);
    const chunks = Array.from({ length: 6 }, () => `${chunk.length.toString(16)}\r\n${chunk.toString()}\r\n`).join('');
    const head = `POST /v1/users HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const r = await rawExchange(ts, head, chunks);
    t.match(r.text, /^HTTP\/1\.1 413 /, '413 once past the limit');
    t.match(r.text, /"code":"too_large"/);
    t.same(await snapshot(db), before, 'database unchanged');
  });

  await t.test('stream creation accepts up to http.maxStreamBodyBytes', async (t) => {
    // A body of exactly `size` bytes: one seed file, padded with JSON whitespace.
    const streamBody = (size: number): Buffer => {
      const overhead = JSON.stringify({ files: { 'big.bin': '' } }).length;
      const b64len = Math.floor((size - overhead) / 4) * 4;
      const json = JSON.stringify({ files: { 'big.bin': b64(crypto.randomBytes((b64len / 4) * 3)) } });
      return Buffer.from(json.padEnd(size, ' '));
    };
    const path = `/v1/targets/${targetId}/streams`;
    const under = streamBody(MAX_STREAM_BODY);
    t.equal(under.length, MAX_STREAM_BODY);
    t.ok(under.length > MAX_BODY, 'far over the ordinary limit');
    const ok = await call(ts, 'POST', path, { token: mgr, raw: under, headers: { 'content-type': 'application/json' } });
    t.equal(ok.status, 201, `a body of exactly ${MAX_STREAM_BODY} bytes is accepted`);

    const before = await snapshot(db);
    const head = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${mgr}\r\nContent-Type: application/json\r\nContent-Length: ${MAX_STREAM_BODY + 1}\r\n\r\n`;
    const r = await rawExchange(ts, head, streamBody(MAX_STREAM_BODY + 1).subarray(0, 1000));
    t.match(r.text, /^HTTP\/1\.1 413 /, 'one byte over: 413');
    t.ok(r.firstByteMs < 1000, `at once (${r.firstByteMs} ms)`);
    t.match(r.text, new RegExp(`over the limit of ${MAX_STREAM_BODY} bytes`));
    const huge = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${mgr}\r\nContent-Type: application/json\r\nContent-Length: ${64 * MIB}\r\n\r\n`;
    t.match((await rawExchange(ts, huge, '{')).text, /^HTTP\/1\.1 413 /, 'the default 64 MiB claimed against a 3 MiB limit: 413');
    t.same(await snapshot(db), before, 'database unchanged');
  });

  t.equal((await call(ts, 'GET', '/healthz')).status, 200, 'still serving');
});

t.test('tokens: unknown or malformed on public routes is 401', async (t) => {
  const unknown = crypto.randomBytes(32).toString('base64url');
  for (const [method, path, body] of [
    ['GET', '/v1/targets', undefined],
    ['GET', '/v1/donors', undefined],
    ['GET', '/v1/donors/donor1', undefined],
    ['GET', '/v1/active-cores', undefined],
    ['POST', '/v1/donors', { name: 'sneaky' }],
  ] as const) {
    const res = await rejects(t, `${method} ${path} with an unknown token`, () => call(ts, method, path, { token: unknown, json: body }), 401, 'unauthorized', /Unknown or revoked token/);
    t.equal(res.headers['www-authenticate'], 'Bearer');
  }
  await rejects(t, 'Basic auth', () => call(ts, 'GET', '/v1/targets', { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } }), 401, 'unauthorized', /Bearer <token>/);
  await rejects(t, 'Bearer without a token', () => call(ts, 'GET', '/v1/donors', { headers: { authorization: 'Bearer ' } }), 401, 'unauthorized', /Bearer <token>/);
  await rejects(t, 'an unknown token with a bad body', () => call(ts, 'POST', '/v1/users', { token: unknown, raw: '{', headers: { 'content-type': 'application/json' } }), 401, 'unauthorized', /Unknown or revoked/);
  t.equal((await call(ts, 'GET', '/v1/targets')).status, 200, 'no token at all is fine on a public route');
});
