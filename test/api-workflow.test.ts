/**
 * The manager workflow end to end over HTTPS against a real stack: users, targets, streams
 * with seed and tag files (inline and GridFS), downloads, committed and uncommitted
 * partitions (written as a checkpoint commit would), deletion, donors, token rotation and
 * engine keys.
 */
import crypto from 'node:crypto';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import t from 'tap';
import type { Db } from 'mongodb';
import { FileStore } from '../src/store/files';
import { commitPartition, writePartition, type NamedBytes, type WrittenPartition } from '../src/store/partitions';
import { hashToken } from '../src/auth/tokens';
import { ApiClient, startApiServer } from './helpers/api';
import { eventually, startTestServer, type TestServer } from './helpers/server';
import { stopStack } from '../test-support/stack';

const KIB = 1024;
const MIB = 1024 * KIB;
const INLINE_MAX = 64 * KIB;
/** Partition size of the large download. */
const PART = 300 * KIB;

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json<T = any>(): T;
}

interface CallOptions {
  token?: string;
  json?: unknown;
  headers?: Record<string, string>;
}

/** One HTTPS request with a raw (not normalised) path. */
function call(ts: TestServer, method: string, path: string, opts: CallOptions = {}): Promise<Res> {
  const body = opts.json !== undefined ? JSON.stringify(opts.json) : undefined;
  const headers = opts.json !== undefined ? { ...opts.headers, 'content-type': 'application/json' } : opts.headers;
  return new ApiClient(ts.url, ts.ca).call(method, path, { token: opts.token, body, headers, exactPath: true });
}

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
const b64 = (b: Buffer): string => b.toString('base64');

/** Step 2 of a checkpoint commit: the conditional stream update (the commit point). */
async function commitPoint(db: Db, streamId: string, previous: number, doc: WrittenPartition): Promise<boolean> {
  return commitPartition(db, streamId, previous, doc);
}

/** A started server with its first admin's token. */
async function serverWithAdmin(overrides: Record<string, unknown>): Promise<{ ts: TestServer; admin: string }> {
  const s = await startApiServer(overrides);
  return { ts: s.ts, admin: s.admin.token };
}

let ts: TestServer;
let db: Db;
let store: FileStore;
let adminToken: string;

t.before(async () => {
  ({ ts, admin: adminToken } = await serverWithAdmin({ 'storage.inlineMaxBytes': INLINE_MAX }));
  db = ts.server.storage.mongo.db;
  store = new FileStore(db, ts.settings.storage.inlineMaxBytes);
});
t.teardown(async () => {
  await ts?.close();
  await stopStack();
});

t.test('manager workflow: targets, streams, files, partitions, deletion', async (t) => {
  // --- admin creates a manager ---
  const mk = await call(ts, 'POST', '/v1/users', { token: adminToken, json: { name: 'alice', role: 'manager', weight: 2 } });
  t.equal(mk.status, 201, mk.body.toString());
  t.match(mk.json(), { name: 'alice', role: 'manager', token: /^[A-Za-z0-9_-]{43}$/ });
  const alice = mk.json().token as string;
  t.same((await call(ts, 'GET', '/v1/me', { token: alice })).json(), { name: 'alice', role: 'manager' });
  t.equal((await call(ts, 'POST', '/v1/users', { token: adminToken, json: { name: 'alice', role: 'manager' } })).status, 409, 'duplicate user name');

  // --- manager creates a target ---
  const ct = await call(ts, 'POST', '/v1/targets', {
    token: alice,
    json: { engines: ['openmm_80_cuda', 'openmm_80_opencl'], stage: 'beta', weight: 3, options: { steps: 100, temperature: 300, nested: { a: 1 } } },
  });
  t.equal(ct.status, 201, ct.body.toString());
  const targetId = ct.json().target_id as string;
  t.match(targetId, /^[A-Za-z0-9_-]{22}$/);
  const got = await call(ts, 'GET', `/v1/targets/${targetId}`, { token: alice });
  t.equal(got.status, 200);
  t.match(got.json(), {
    id: targetId,
    owner: 'alice',
    engines: ['openmm_80_cuda', 'openmm_80_opencl'],
    stage: 'beta',
    weight: 3,
    options: { steps: 100, temperature: 300, nested: { a: 1 } },
    streams: { ok: 0, stopped: 0, failed: 0, frames: 0 },
  });
  t.equal((await call(ts, 'GET', `/v1/targets/${targetId}`)).status, 401, 'a beta target is not visible anonymously');
  t.same((await call(ts, 'GET', '/v1/targets')).json(), { targets: [] }, 'anonymous list: no public targets yet');

  // --- PATCH: options merged key by key, null removes, stage change ---
  const patched = await call(ts, 'PATCH', `/v1/targets/${targetId}`, {
    token: alice,
    json: { stage: 'public', options: { temperature: null, pressure: 1, nested: { b: 2 } } },
  });
  t.equal(patched.status, 200, patched.body.toString());
  t.same(patched.json().options, { steps: 100, pressure: 1, nested: { b: 2 } }, 'merged key by key; null removed temperature; nested replaced as a value');
  t.equal(patched.json().stage, 'public');
  t.equal(patched.json().weight, 3, 'weight unchanged');
  t.same(patched.json().engines, ['openmm_80_cuda', 'openmm_80_opencl'], 'engines unchanged');
  const again = await call(ts, 'PATCH', `/v1/targets/${targetId}`, { token: alice, json: { weight: 0.5, engines: ['openmm_80_cuda'] } });
  t.equal(again.status, 200);
  t.same(again.json().options, { steps: 100, pressure: 1, nested: { b: 2 } }, 'options untouched when not sent');
  t.match(again.json(), { weight: 0.5, engines: ['openmm_80_cuda'], stage: 'public' });
  const anonList = (await call(ts, 'GET', '/v1/targets')).json();
  t.same(anonList.targets.map((x: { id: string }) => x.id), [targetId], 'public now: listed anonymously');
  t.equal((await call(ts, 'GET', `/v1/targets/${targetId}`)).status, 200, 'public target readable anonymously');

  // --- streams with seed and tag files: one inline, one through GridFS ---
  const small = crypto.randomBytes(3000);
  const big = crypto.randomBytes(MIB + 123); // over storage.inlineMaxBytes (64 KiB)
  const tag = Buffer.from('tag: equilibration run 1\n');
  const cs = await call(ts, 'POST', `/v1/targets/${targetId}/streams`, {
    token: alice,
    json: { files: { 'system.xml': b64(small), 'state.xml': b64(big) }, tags: { 'note.txt': b64(tag) } },
  });
  t.equal(cs.status, 201, cs.body.toString());
  const s1 = cs.json().stream_id as string;
  const cs2 = await call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: alice, json: { files: { 'system.xml': b64(small) } } });
  t.equal(cs2.status, 201);
  const s2 = cs2.json().stream_id as string;

  const files = db.collection('files');
  const smallDoc = await files.findOne({ streamId: s1, kind: 'seed', name: 'system.xml' });
  t.ok(smallDoc?.data, 'small seed file stored inline (data set)');
  t.notOk(smallDoc?.gridfsId, 'small seed file has no GridFS blob');
  t.equal(smallDoc?.size, small.length);
  const bigDoc = await files.findOne({ streamId: s1, kind: 'seed', name: 'state.xml' });
  t.ok(bigDoc?.gridfsId, 'big seed file stored in GridFS (gridfsId set)');
  t.notOk(bigDoc?.data, 'big seed file not inline');
  t.equal(bigDoc?.size, big.length);
  const blob = await db.collection('blobs.files').findOne({ _id: bigDoc!.gridfsId });
  t.equal(blob?.length, big.length, 'GridFS blob has the file length');
  t.match(blob?.metadata, { streamId: s1, kind: 'seed' });
  t.ok((await files.findOne({ streamId: s1, kind: 'tag', name: 'note.txt' }))?.data, 'tag file inline');

  // --- list, get, stop, start ---
  const list = await call(ts, 'GET', `/v1/targets/${targetId}/streams`, { token: alice });
  t.equal(list.status, 200);
  t.same(list.json().streams.map((s: { id: string }) => s.id).sort(), [s1, s2].sort());
  for (const s of list.json().streams) t.match(s, { target_id: targetId, status: 'ok', frames: 0, error_count: 0, active: false, created_at: /Z$/ });
  const page1 = (await call(ts, 'GET', `/v1/targets/${targetId}/streams?limit=1`, { token: alice })).json().streams;
  t.equal(page1.length, 1, 'limit=1');
  const page2 = (await call(ts, 'GET', `/v1/targets/${targetId}/streams?limit=1&after=${page1[0].id}`, { token: alice })).json().streams;
  t.equal(page2.length, 1, 'next page');
  t.not(page2[0].id, page1[0].id);

  const one = await call(ts, 'GET', `/v1/streams/${s1}`, { token: alice });
  t.equal(one.status, 200);
  t.match(one.json(), { id: s1, target_id: targetId, status: 'ok', frames: 0, error_count: 0, active: false });
  t.notOk('engine' in one.json(), 'no engine while inactive');

  const stop = await call(ts, 'POST', `/v1/streams/${s1}/stop`, { token: alice });
  t.equal(stop.status, 200);
  t.equal(stop.json().status, 'stopped');
  t.equal((await call(ts, 'POST', `/v1/streams/${s1}/stop`, { token: alice })).json().status, 'stopped', 'stop is idempotent');
  t.same((await call(ts, 'GET', `/v1/targets/${targetId}`, { token: alice })).json().streams, { ok: 1, stopped: 1, failed: 0, frames: 0 });
  const start = await call(ts, 'POST', `/v1/streams/${s1}/start`, { token: alice });
  t.equal(start.status, 200);
  t.equal(start.json().status, 'ok');
  t.same((await call(ts, 'GET', `/v1/targets/${targetId}`, { token: alice })).json().streams, { ok: 2, stopped: 0, failed: 0, frames: 0 });

  // --- seed and tag downloads, byte-identical ---
  for (const [name, bytes] of [
    ['system.xml', small],
    ['state.xml', big],
    ['note.txt', tag],
  ] as const) {
    const dl = await call(ts, 'GET', `/v1/streams/${s1}/files/${name}`, { token: alice });
    t.equal(dl.status, 200, name);
    t.equal(dl.headers['content-type'], 'application/octet-stream');
    t.equal(dl.headers['content-length'], String(bytes.length), `${name} Content-Length`);
    t.equal(sha256(dl.body), sha256(bytes), `${name} byte-identical`);
  }
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/files/missing.xml`, { token: alice })).status, 404);
  const head = await call(ts, 'HEAD', `/v1/streams/${s1}/files/state.xml`, { token: alice });
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], String(big.length), 'HEAD gives the length without the body');

  const parts0 = await call(ts, 'GET', `/v1/streams/${s1}/partitions`, { token: alice });
  t.equal(parts0.status, 200);
  t.same(parts0.json(), { partitions: [], seed_files: ['system.xml', 'state.xml'], tag_files: ['note.txt'], frame_files: [], checkpoint_files: [] });

  // --- partitions, committed as a checkpoint commit would (write, then the conditional update) ---
  const traj: Record<number, Buffer> = { 5: crypto.randomBytes(10 * KIB), 12: crypto.randomBytes(100 * KIB), 20: crypto.randomBytes(7 * KIB) };
  const logs: Record<number, Buffer> = { 5: Buffer.from('log 1-5\n'), 20: Buffer.from('log 13-20\n') };
  const ckpt: Record<number, Buffer> = { 5: crypto.randomBytes(2 * KIB), 12: crypto.randomBytes(200 * KIB), 20: crypto.randomBytes(3 * KIB) };
  let committed = 0;
  for (const p of [5, 12, 20]) {
    const frames: NamedBytes[] = [{ name: 'traj.dcd', bytes: traj[p]! }];
    if (logs[p]) frames.push({ name: 'log.txt', bytes: logs[p]! });
    const doc = await writePartition(db, store, s1, p, frames, [{ name: 'state.xml', bytes: ckpt[p]! }]);
    t.ok(await commitPoint(db, s1, committed, doc), `partition ${p} committed`);
    committed = p;
  }
  const gridPart = await db.collection('partitions').findOne({ streamId: s1, n: 12 });
  t.ok(gridPart?.frames[0].gridfsId, 'a 100 KiB frame file goes through GridFS');
  t.ok((await db.collection('partitions').findOne({ streamId: s1, n: 5 }))?.frames[0].data, 'a 10 KiB frame file is inline');
  // Partition 33 is written (step 1) but never committed: an uncommitted leftover.
  const leftover = crypto.randomBytes(20 * KIB);
  const leftoverDoc = await writePartition(db, store, s1, 33, [{ name: 'traj.dcd', bytes: leftover }, { name: 'extra.dcd', bytes: leftover }], [{ name: 'state.xml', bytes: leftover }]);
  t.notOk(await commitPoint(db, s1, 12, leftoverDoc), 'a commit on a stale frame count does not land');

  const parts = await call(ts, 'GET', `/v1/streams/${s1}/partitions`, { token: alice });
  t.same(parts.json(), { partitions: [5, 12, 20], seed_files: ['system.xml', 'state.xml'], tag_files: ['note.txt'], frame_files: ['traj.dcd', 'log.txt'], checkpoint_files: ['state.xml'] });
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}`, { token: alice })).json().frames, 20);
  // The target view is cached for http.targetCacheMs; commits do not drop it.
  const counted = await eventually(async () => {
    const counts = (await call(ts, 'GET', `/v1/targets/${targetId}`, { token: alice })).json().streams;
    return counts.frames === 20 ? counts : undefined;
  }, 10_000, "the target's committed frames");
  t.same(counted, { ok: 2, stopped: 0, failed: 0, frames: 20 }, "the target counts the committed frames of its streams");

  const whole = Buffer.concat([traj[5]!, traj[12]!, traj[20]!]);
  const fr = await call(ts, 'GET', `/v1/streams/${s1}/frames/traj.dcd`, { token: alice });
  t.equal(fr.status, 200);
  t.equal(fr.headers['content-length'], String(whole.length), 'Content-Length is the sum of committed partitions');
  t.equal(fr.body.length, whole.length);
  t.equal(sha256(fr.body), sha256(whole), 'committed partitions concatenated in order, without the uncommitted one');
  const lg = await call(ts, 'GET', `/v1/streams/${s1}/frames/log.txt`, { token: alice });
  t.equal(lg.body.toString(), 'log 1-5\nlog 13-20\n', 'a frame file absent from a partition is skipped');
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/frames/extra.dcd`, { token: alice })).status, 404, 'a frame file only in an uncommitted partition is not there');
  const frHead = await call(ts, 'HEAD', `/v1/streams/${s1}/frames/traj.dcd`, { token: alice });
  t.equal(frHead.headers['content-length'], String(whole.length), 'HEAD of a frame file');

  for (const p of [5, 12, 20]) {
    const one = await call(ts, 'GET', `/v1/streams/${s1}/partitions/${p}/traj.dcd`, { token: alice });
    t.equal(one.status, 200, `partition ${p} frame file`);
    t.equal(sha256(one.body), sha256(traj[p]!));
    const ck = await call(ts, 'GET', `/v1/streams/${s1}/partitions/${p}/checkpoint/state.xml`, { token: alice });
    t.equal(ck.status, 200, `partition ${p} checkpoint file`);
    t.equal(ck.headers['content-length'], String(ckpt[p]!.length));
    t.equal(sha256(ck.body), sha256(ckpt[p]!));
  }
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/partitions/12/log.txt`, { token: alice })).status, 404, 'no log.txt in partition 12');
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/partitions/33/traj.dcd`, { token: alice })).status, 404, 'uncommitted partition: 404');
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/partitions/33/checkpoint/state.xml`, { token: alice })).status, 404, 'uncommitted checkpoint: 404');
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/partitions/7/traj.dcd`, { token: alice })).status, 404, 'no such partition');
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/partitions/0/traj.dcd`, { token: alice })).status, 400, 'partition 0 is not a partition number');

  // --- a large frame file: 20 partitions × 300 KiB, all through GridFS (two chunks each) ---
  // (6 MiB rather than more: FerretDB answers GridFS chunk queries with full collection
  // scans, so reads slow down with the square of the data held.)
  const cs3 = await call(ts, 'POST', `/v1/targets/${targetId}/streams`, { token: alice, json: { files: { 'system.xml': b64(small) } } });
  const s3 = cs3.json().stream_id as string;
  const chunks: Buffer[] = [];
  let prev = 0;
  for (let i = 1; i <= 20; i++) {
    const bytes = crypto.randomBytes(PART);
    chunks.push(bytes);
    const doc = await writePartition(db, store, s3, i * 10, [{ name: 'traj.dcd', bytes }], []);
    t.ok(await commitPoint(db, s3, prev, doc), `large stream partition ${i * 10}`);
    prev = i * 10;
  }
  const bigWhole = Buffer.concat(chunks);
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': s3 }), 20, '20 GridFS blobs');
  const bigDl = await call(ts, 'GET', `/v1/streams/${s3}/frames/traj.dcd`, { token: alice });
  t.equal(bigDl.status, 200);
  t.equal(bigDl.headers['content-length'], String(20 * PART));
  t.equal(sha256(bigDl.body), sha256(bigWhole), '6 MiB frame file from 20 partitions intact');

  // A client that goes away mid-download does not disturb the server.
  const cut = await new Promise<number>((resolve, reject) => {
    let received = 0;
    const req = https.request(
      { host: '127.0.0.1', port: ts.server.port, path: `/v1/streams/${s3}/frames/traj.dcd`, headers: { authorization: `Bearer ${alice}` }, ca: ts.ca, servername: 'localhost', agent: false },
      (res) => {
        res.on('data', (c: Buffer) => {
          received += c.length;
          if (received > MIB) {
            req.destroy();
            resolve(received);
          }
        });
        res.on('end', () => reject(new Error('download completed; expected to cut it')));
      },
    );
    req.on('error', () => undefined);
    req.end();
  });
  t.ok(cut < 20 * PART, `disconnected after ${cut} bytes`);
  await eventually(
    async () => ts.logLines().some((l) => l.route === '/v1/streams/:id/frames/:name' && l.aborted === true),
    5000,
    'the aborted download to be logged',
  );
  t.equal((await call(ts, 'GET', '/healthz')).status, 200, 'server still serving');
  const again2 = await call(ts, 'GET', `/v1/streams/${s1}/frames/traj.dcd`, { token: alice });
  t.equal(sha256(again2.body), sha256(whole), 'next download intact');

  // --- deletion ---
  const del409 = await call(ts, 'DELETE', `/v1/targets/${targetId}`, { token: alice });
  t.equal(del409.status, 409, 'target with streams cannot be deleted');
  t.match(del409.json(), { error: { code: 'conflict', message: /streams/ } });

  const blobIds = (await db.collection('blobs.files').find({ 'metadata.streamId': s1 }).toArray()).map((b) => b._id);
  t.ok(blobIds.length >= 3, `stream 1 has GridFS blobs (${blobIds.length}: seed, partition 12 frame and checkpoint, leftover)`);
  t.ok((await db.collection('blobs.chunks').countDocuments({ files_id: { $in: blobIds } })) > 0);
  for (const s of [s1, s2, s3]) {
    const del = await call(ts, 'DELETE', `/v1/streams/${s}`, { token: alice });
    t.equal(del.status, 204, `stream ${s} deleted`);
    t.equal(await db.collection('streams').countDocuments({ _id: s as never }), 0);
    t.equal(await db.collection('files').countDocuments({ streamId: s }), 0, 'its files are gone');
    t.equal(await db.collection('partitions').countDocuments({ streamId: s }), 0, 'its partitions (committed and not) are gone');
    t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': s }), 0, 'its GridFS blobs are gone');
  }
  t.equal(await db.collection('blobs.chunks').countDocuments({ files_id: { $in: blobIds } }), 0, 'and their chunks');
  t.equal(await db.collection('blobs.files').countDocuments({}), 0, 'no GridFS blob left at all');
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}`, { token: alice })).status, 404);
  t.equal((await call(ts, 'GET', `/v1/streams/${s1}/files/system.xml`, { token: alice })).status, 404);
  t.equal((await call(ts, 'DELETE', `/v1/streams/${s1}`, { token: alice })).status, 404, 'deleting twice: 404');

  t.equal((await call(ts, 'DELETE', `/v1/targets/${targetId}`, { token: alice })).status, 204, 'empty target deleted');
  t.equal((await call(ts, 'GET', `/v1/targets/${targetId}`, { token: alice })).status, 404);
  t.same((await call(ts, 'GET', '/v1/targets', { token: alice })).json(), { targets: [] });
});

t.test('donors: register, leaderboard, one donor', async (t) => {
  const reg = await call(ts, 'POST', '/v1/donors', { json: { name: 'dana', beta: true } });
  t.equal(reg.status, 201, reg.body.toString());
  t.match(reg.json(), { name: 'dana', token: /^[A-Za-z0-9_-]{43}$/ });
  const dana = reg.json().token as string;
  t.same((await call(ts, 'GET', '/v1/me', { token: dana })).json(), { name: 'dana', role: 'donor' });
  t.equal((await call(ts, 'POST', '/v1/donors', { json: { name: 'dana' } })).status, 409, 'name taken');
  const erin = await call(ts, 'POST', '/v1/donors', { json: { name: 'erin' } });
  t.equal(erin.status, 201);
  const stored = await db.collection('donors').findOne({ name: 'dana' });
  t.equal(stored?.tokenHash, hashToken(dana), 'only the hash is stored');
  t.notOk(JSON.stringify(stored).includes(dana), 'not the token');

  // Totals as fragments would have credited them.
  await db.collection('donors').updateOne({ name: 'erin' }, { $inc: { frames: 40, coreSeconds: 120.5 } });
  await db.collection('donors').updateOne({ name: 'dana' }, { $inc: { frames: 7, coreSeconds: 30 } });
  await db.collection('donor_targets').insertOne({ _id: 'dana:tgt' as never, donor: 'dana', targetId: 'AAAAAAAAAAAAAAAAAAAAAA', frames: 7, coreSeconds: 30 });
  // Per-target figures are listed for targets the caller may see: this one is public.
  await db.collection('targets').insertOne({ _id: 'AAAAAAAAAAAAAAAAAAAAAA' as never, owner: 'someone', stage: 'public', engines: ['openmm'], weight: 1, options: {}, version: 0, createdAt: new Date(), updatedAt: new Date() });

  const board = await call(ts, 'GET', '/v1/donors');
  t.equal(board.status, 200);
  t.same(board.json().donors.map((d: { name: string }) => d.name), ['erin', 'dana'], 'by frames, descending');
  t.match(board.json().donors[0], { name: 'erin', frames: 40, core_seconds: 120.5, created_at: /Z$/ });
  t.notOk(board.body.toString().includes('tokenHash'), 'no token hashes on the leaderboard');
  const top1 = await call(ts, 'GET', '/v1/donors?top=1');
  t.same(top1.json().donors.map((d: { name: string }) => d.name), ['erin'], 'top=1');

  const one = await call(ts, 'GET', '/v1/donors/dana');
  t.equal(one.status, 200);
  t.match(one.json(), { name: 'dana', frames: 7, core_seconds: 30, targets: [{ target_id: 'AAAAAAAAAAAAAAAAAAAAAA', frames: 7, core_seconds: 30 }] });
  t.equal((await call(ts, 'GET', '/v1/donors/nobody')).status, 404);
});

t.test('closed donor registration: 403 for anonymous, 201 for an admin', async (t) => {
  const { ts: closed, admin } = await serverWithAdmin({ 'donors.openRegistration': false, 'redis.keyPrefix': 'closed:' });
  t.teardown(() => closed.close());
  const anon = await call(closed, 'POST', '/v1/donors', { json: { name: 'frank' } });
  t.equal(anon.status, 403);
  t.match(anon.json(), { error: { code: 'forbidden', message: /closed/ } });
  const mk = await call(closed, 'POST', '/v1/users', { token: admin, json: { name: 'mgr', role: 'manager' } });
  t.equal((await call(closed, 'POST', '/v1/donors', { token: mk.json().token, json: { name: 'frank' } })).status, 403, 'a manager may not either');
  const byAdmin = await call(closed, 'POST', '/v1/donors', { token: admin, json: { name: 'frank' } });
  t.equal(byAdmin.status, 201);
  t.equal(await closed.server.storage.mongo.db.collection('donors').countDocuments({}), 1, 'only the admin-made donor exists');
});

t.test('donor registration is rate-limited per client address, and in all', async (t) => {
  // Stay clear of the hour boundary, where the window resets.
  const toBoundary = 3600 - ((Date.now() / 1000) % 3600);
  if (toBoundary < 10) await new Promise((r) => setTimeout(r, (toBoundary + 1) * 1000));

  const { ts: direct, admin: directAdmin } = await serverWithAdmin({ 'donors.registrationsPerHour': 2, 'redis.keyPrefix': 'rl1:' });
  const proxied = await startTestServer({ 'donors.registrationsPerHour': 2, 'donors.registrationsPerHourTotal': 4, 'redis.keyPrefix': 'rl2:', 'server.trustProxy': ['127.0.0.1'] });
  t.teardown(async () => {
    await direct.close();
    await proxied.close();
  });

  // Without trustProxy, X-Forwarded-For is ignored: every request counts for 127.0.0.1.
  const fwd = (ip: string) => ({ 'x-forwarded-for': ip });
  t.equal((await call(direct, 'POST', '/v1/donors', { json: { name: 'd1' }, headers: fwd('198.51.100.1') })).status, 201);
  t.equal((await call(direct, 'POST', '/v1/donors', { json: { name: 'd2' }, headers: fwd('198.51.100.2') })).status, 201);
  const third = await call(direct, 'POST', '/v1/donors', { json: { name: 'd3' }, headers: fwd('198.51.100.3') });
  t.equal(third.status, 429, 'third from one address: 429 (a forged X-Forwarded-For does not help)');
  t.match(third.json(), { error: { code: 'rate_limited', message: /2 donor registrations per hour/ } });
  const retry = Number(third.headers['retry-after']);
  t.ok(Number.isInteger(retry) && retry >= 1 && retry <= 3600, `Retry-After ${third.headers['retry-after']}`);
  t.equal(await direct.server.storage.mongo.db.collection('donors').countDocuments({ name: 'd3' }), 0, 'the refused donor was not created');
  t.equal((await call(direct, 'POST', '/v1/donors', { token: directAdmin, json: { name: 'd3' } })).status, 201, 'admins are not rate-limited');

  // Behind a trusted proxy, the forwarded client address is what counts.
  t.equal((await call(proxied, 'POST', '/v1/donors', { json: { name: 'p1' }, headers: fwd('203.0.113.7') })).status, 201);
  t.equal((await call(proxied, 'POST', '/v1/donors', { json: { name: 'p2' }, headers: fwd('203.0.113.7') })).status, 201);
  const p3 = await call(proxied, 'POST', '/v1/donors', { json: { name: 'p3' }, headers: fwd('203.0.113.7') });
  t.equal(p3.status, 429, 'third from 203.0.113.7: 429');
  t.ok(p3.headers['retry-after'], 'with Retry-After');
  t.equal((await call(proxied, 'POST', '/v1/donors', { json: { name: 'p3' }, headers: fwd('203.0.113.8') })).status, 201, 'another client address is counted apart');

  // An IPv6 /48 holds 65,536 /64s: the total bounds them all.
  t.equal((await call(proxied, 'POST', '/v1/donors', { json: { name: 'p4' }, headers: fwd('2001:db8:1:1::1') })).status, 201, 'the fourth in all');
  const fifth = await call(proxied, 'POST', '/v1/donors', { json: { name: 'p5' }, headers: fwd('2001:db8:1:2::1') });
  t.equal(fifth.status, 429, 'the fifth in all, from a /64 of its own: 429');
  t.match(fifth.json(), { error: { code: 'rate_limited', message: /4 donor registrations per hour in all/ } });
  const hour = Math.floor(Date.now() / 3_600_000);
  const counted = await proxied.server.storage.redis.get(`rl2:rl:donors:2001:db8:1:2::/64:${hour}`);
  t.equal(counted, '0', "a refusal by the total does not spend the address's own budget");
});

t.test('token rotation: the old token fails at once, the new one works', async (t) => {
  const mk = await call(ts, 'POST', '/v1/users', { token: adminToken, json: { name: 'rot', role: 'manager' } });
  const old = mk.json().token as string;
  // A second process on the same database and Redis, with the old token in its cache.
  const other = await startTestServer({ 'mongodb.database': ts.settings.mongodb.database });
  t.teardown(() => other.close());
  t.equal((await call(ts, 'GET', '/v1/me', { token: old })).status, 200, 'cached here');
  t.equal((await call(other, 'GET', '/v1/me', { token: old })).status, 200, 'cached on the other process');

  const rot = await call(ts, 'POST', '/v1/users/rot/token', { token: old });
  t.equal(rot.status, 200, 'a user may rotate its own token');
  const fresh = rot.json().token as string;
  t.not(fresh, old);
  const stale = await call(ts, 'GET', '/v1/me', { token: old });
  t.equal(stale.status, 401, 'old token refused immediately');
  t.match(stale.json(), { error: { code: 'unauthorized' } });
  t.same((await call(ts, 'GET', '/v1/me', { token: fresh })).json(), { name: 'rot', role: 'manager' });
  await eventually(async () => (await call(other, 'GET', '/v1/me', { token: old })).status === 401, 3000, 'the other process to drop the old token');
  t.pass('the other process refuses the old token too');

  const byAdmin = await call(ts, 'POST', '/v1/users/rot/token', { token: adminToken });
  t.equal(byAdmin.status, 200, 'an admin may rotate it');
  t.equal((await call(ts, 'GET', '/v1/me', { token: fresh })).status, 401);
  t.equal((await call(ts, 'GET', '/v1/me', { token: byAdmin.json().token })).status, 200);
  const mk2 = await call(ts, 'POST', '/v1/users', { token: adminToken, json: { name: 'rot2', role: 'manager' } });
  t.equal((await call(ts, 'POST', '/v1/users/rot/token', { token: mk2.json().token })).status, 403, "a manager may not rotate another's token");
});

t.test('engine keys: create, list without the key, revoke', async (t) => {
  const mk = await call(ts, 'POST', '/v1/engine-keys', { token: adminToken, json: { engine: 'openmm_80_cuda', description: 'lab GPUs' } });
  t.equal(mk.status, 201, mk.body.toString());
  const { id, key } = mk.json() as { id: string; key: string };
  t.match(id, /^[A-Za-z0-9_-]{22}$/);
  t.match(key, /^[A-Za-z0-9_-]{43}$/);
  const keep = await call(ts, 'POST', '/v1/engine-keys', { token: adminToken, json: { engine: 'gromacs_2024' } });

  const before = await call(ts, 'GET', '/v1/engine-keys', { token: adminToken });
  t.equal(before.status, 200);
  const listed = before.json().engine_keys.find((k: { id: string }) => k.id === id);
  t.match(listed, { id, engine: 'openmm_80_cuda', description: 'lab GPUs', created_at: /Z$/ });
  t.notOk('revoked_at' in listed, 'not revoked yet');

  const del = await call(ts, 'DELETE', `/v1/engine-keys/${id}`, { token: adminToken });
  t.equal(del.status, 204);
  t.equal(del.body.length, 0);
  const after = await call(ts, 'GET', '/v1/engine-keys', { token: adminToken });
  const text = after.body.toString();
  const revoked = after.json().engine_keys.find((k: { id: string }) => k.id === id);
  t.match(revoked, { id, revoked_at: /^\d{4}-\d\d-\d\dT.*Z$/ });
  t.notOk('revoked_at' in after.json().engine_keys.find((k: { id: string }) => k.id === keep.json().id), 'the other key is untouched');
  t.notOk(text.includes(key), 'the key is not listed');
  t.notOk(text.includes(hashToken(key)), 'nor its hash');
  t.notOk(/keyHash|key_hash/.test(text), 'no hash field');
  t.ok((await db.collection('engine_keys').findOne({ _id: id as never }))?.revokedAt, 'revokedAt stored');

  t.equal((await call(ts, 'DELETE', `/v1/engine-keys/${id}`, { token: adminToken })).status, 204, 'revoking again is fine');
  t.equal((await call(ts, 'DELETE', '/v1/engine-keys/AAAAAAAAAAAAAAAAAAAAAA', { token: adminToken })).status, 404);
  const mgr = await call(ts, 'POST', '/v1/users', { token: adminToken, json: { name: 'keyless', role: 'manager' } });
  t.equal((await call(ts, 'GET', '/v1/engine-keys', { token: mgr.json().token })).status, 403, 'admins only');
});
