/**
 * Stops (PROTOCOL §2 "Session" 5 and "Server-initiated"): max_stream_errors, manager
 * actions reaching the core within a second (in one process and across two workers),
 * engine-key revocation closing sockets, and graceful shutdown.
 */
import { once } from 'node:events';
import t from 'tap';
import type { CoreClient } from '../src/client';
import { freePort } from '../src/provision/exec';
import { coreFixture, type CoreFixture } from './helpers/core';
import { cliServer, PinnedClient } from './helpers/core-raw';
import { eventually, startTestServer } from './helpers/server';
import { getStack, stopStack, STORE_STOP_TOLERANT } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'core.maxStreamErrors': 3 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

interface StreamView {
  status: string;
  error_count: number;
  frames: number;
  active: boolean;
}
const streamOf = (fx: CoreFixture, id: string): Promise<StreamView> => fx.api<StreamView>('GET', `/v1/streams/${id}`, fx.manager, undefined, 200);
const data = (s: string): Array<{ name: string; data: Buffer }> => [{ name: 'frames.xtc', data: Buffer.from(s) }];

/** Resolves with the next server-initiated stop and how long after `since` it came. */
function nextStop(c: CoreClient, since: () => number): Promise<{ reason: string; reconnect: boolean; ms: number }> {
  return new Promise((resolve) => c.once('stop', (s: { reason: string; reconnect: boolean }) => resolve({ ...s, ms: Date.now() - since() })));
}

t.test('max_stream_errors: consecutive errors fail the stream; a commit resets the count', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await f.client();
  t.teardown(() => c.close());
  for (let i = 1; i <= 3; i++) {
    const a = await c.assign(target);
    t.equal(a.streamId, stream);
    await c.stop(`boom ${i}`);
    const s = await streamOf(f, stream);
    t.equal(s.error_count, i, `error_count ${i}`);
    t.equal(s.status, i < 3 ? 'ok' : 'failed', i < 3 ? 'still ok' : 'failed at core.maxStreamErrors');
    t.equal(s.active, false);
  }
  const { errors } = await f.api<{ errors: Array<{ message: string; engine: string; donor: string; at: string }> }>('GET', `/v1/streams/${stream}/errors`, f.manager, undefined, 200);
  t.equal(errors.length, 3, 'three entries in the error log');
  t.same(errors.map((e) => e.message), ['boom 3', 'boom 2', 'boom 1'], 'newest first');
  const donorName = (await f.api<{ name: string }>('GET', '/v1/me', f.donor)).name;
  t.match(errors[0], { engine: 'openmm', donor: donorName, at: /^\d{4}-\d\d-\d\dT/ });
  await t.rejects(c.assign(target), { code: 'no_streams_available' }, 'a failed stream is no longer assigned');
  await t.rejects(c.assign(), { code: 'no_streams_available' }, 'not even without naming the target');

  // A manager can start it again.
  await f.api('POST', `/v1/streams/${stream}/start`, f.manager, undefined, 200);
  t.match(await streamOf(f, stream), { status: 'ok', error_count: 0 });
  t.equal((await c.assign(target)).streamId, stream, 'assigned again after start');
  await c.stop();

  // 2 errors, a commit, 2 errors: still ok.
  const target2 = await f.target();
  const s2 = await f.stream(target2);
  await c.assign(target2);
  await c.stop('e1');
  await c.assign(target2);
  await c.stop('x'.repeat(5000));
  t.match(await streamOf(f, s2), { status: 'ok', error_count: 2 });
  await c.assign(target2);
  await c.sendFrames(data('a'));
  await c.checkpoint([{ name: 'state.xml', data: Buffer.from('s') }]);
  t.match(await streamOf(f, s2), { status: 'ok', error_count: 0, frames: 1 }, 'the commit reset the count');
  await c.stop('e3');
  await c.assign(target2);
  await c.stop('e4');
  t.match(await streamOf(f, s2), { status: 'ok', error_count: 2 }, 'two errors after the commit: still ok');
  t.equal((await c.assign(target2)).streamId, s2, 'still assigned');
  await c.stop();
  const log = (await f.api<{ errors: Array<{ message: string }> }>('GET', `/v1/streams/${s2}/errors`, f.manager)).errors;
  t.equal(log.length, 4, 'the log keeps every error, not just the consecutive ones');
  t.equal(Buffer.byteLength(log.find((e) => e.message.startsWith('xxx'))!.message), 4096, 'a long error text is cut to core.maxErrorTextBytes');

  // A checkpoint with nothing buffered commits nothing, so it does not reset the count.
  await c.assign(target2);
  await c.checkpoint([{ name: 'state.xml', data: Buffer.from('s') }]);
  await c.stop('e5');
  t.match(await streamOf(f, s2), { status: 'failed', error_count: 3 }, 'an empty checkpoint is not a commit');
});

t.test('manager actions reach the core within a second', async (t) => {
  const c = await f.client();
  t.teardown(() => c.close());
  let started = 0;
  const since = (): number => started;

  const act = async (what: string, reason: string, action: (stream: string, target: string) => Promise<unknown>): Promise<string> => {
    const target = await f.target();
    const stream = await f.stream(target);
    t.equal((await c.assign(target)).streamId, stream);
    await c.sendFrames(data('buffered'));
    const stop = nextStop(c, since);
    started = Date.now();
    await action(stream, target);
    const s = await stop;
    t.equal(s.reason, reason, `${what}: stop with reason ${reason}`);
    t.ok(s.ms < 1000, `${what}: within a second (${s.ms} ms)`);
    t.equal(c.assignment, undefined, `${what}: the client dropped its assignment`);
    await c.ping();
    await t.rejects(c.sendFrames(data('late')), { code: 'not_assigned' }, `${what}: the socket stays open, the assignment is over`);
    return stream;
  };

  const stopped = await act('POST /v1/streams/:id/stop', 'stream_stopped', (s) => f.api('POST', `/v1/streams/${s}/stop`, f.manager, undefined, 200));
  t.match(await streamOf(f, stopped), { status: 'stopped', active: false, frames: 0 });

  const deleted = await act('DELETE /v1/streams/:id', 'stream_deleted', (s) => f.api('DELETE', `/v1/streams/${s}`, f.manager, undefined, 204));
  await f.api('GET', `/v1/streams/${deleted}`, f.manager, undefined, 404);

  const disabledStream = await act('PATCH target stage disabled', 'target_disabled', (_s, target) => f.api('PATCH', `/v1/targets/${target}`, f.manager, { stage: 'disabled' }, 200));
  t.match(await streamOf(f, disabledStream), { status: 'ok', active: false }, 'the stream itself stays ok');

  // The core goes on with other work on the same socket.
  const target = await f.target();
  const stream = await f.stream(target);
  t.equal((await c.assign(target)).streamId, stream);
  await c.stop();
});

t.test('revoking the engine key closes its sockets with 1008', async (t) => {
  const key = await f.api<{ id: string; key: string }>('POST', '/v1/engine-keys', f.admin, { engine: 'openmm', description: 'revoke me' }, 201);
  const c = await f.client({ engineKey: key.key, reconnect: false });
  const idle = await f.client({ engineKey: key.key, reconnect: false });
  const bystander = await f.client({ reconnect: false });
  t.teardown(() => bystander.close());
  const target = await f.target();
  await f.stream(target);
  await c.assign(target);
  const closed = Promise.all([c, idle].map((x) => once(x, 'disconnect') as Promise<[{ code: number; reason: string }]>));
  const started = Date.now();
  await f.api('DELETE', `/v1/engine-keys/${key.id}`, f.admin, undefined, 204);
  const [[a], [b]] = await closed;
  const ms = Date.now() - started;
  t.equal(a.code, 1008, 'the working core is closed with 1008');
  t.equal(b.code, 1008, 'the idle core too');
  t.match(a.reason, /revoked/);
  t.ok(ms < 1000, `within a second (${ms} ms)`);
  await bystander.ping();
  t.pass('a core with another key is unaffected');
  await t.rejects(c.connect(), { code: 'unauthorized' }, 'the revoked key cannot connect again');
});

t.test('across two worker processes: stops and revocations reach the other worker', async (t) => {
  const port = await freePort();
  const srv = await cliServer(port, { 'server.workers': 2, 'redis.keyPrefix': 'w2:' }, /all workers listening/);
  t.teardown(() => srv.stop());
  const g = srv.f;
  const key = await g.api<{ id: string; key: string }>('POST', '/v1/engine-keys', g.admin, { engine: 'openmm', description: 'workers' }, 201);

  // Connect until there are cores on both workers.
  const all: CoreClient[] = [];
  t.teardown(() => Promise.all(all.map((c) => c.close())));
  const byNode = new Map<string, CoreClient>();
  for (let i = 0; i < 40 && byNode.size < 2; i++) {
    const c = await g.client({ engineKey: key.key, reconnect: false });
    all.push(c);
    if (!byNode.has(c.welcome!.node)) byNode.set(c.welcome!.node, c);
  }
  t.equal(byNode.size, 2, `cores on both workers after ${all.length} connections`);
  const nodes = [...byNode.keys()];

  const target = await g.target();
  const streams = [await g.stream(target), await g.stream(target), await g.stream(target)];
  const held = new Map<string, string>();
  for (const [node, c] of byNode) held.set(node, (await c.assign(target)).streamId);
  t.equal(new Set(held.values()).size, 2, 'two different streams');

  // One kept-alive admin connection: we know which worker serves it.
  const api = new PinnedClient(`https://127.0.0.1:${port}`, srv.ca);
  t.teardown(() => api.destroy());
  const apiNode = (await api.call<{ node: string }>('GET', '/')).body.node;
  t.ok(nodes.includes(apiNode), `the admin API connection is served by ${apiNode}`);
  const otherNode = nodes.find((n) => n !== apiNode)!;
  const remote = byNode.get(otherNode)!;
  const local = byNode.get(apiNode)!;

  let started = Date.now();
  const stop = nextStop(remote, () => started);
  started = Date.now();
  const res = await api.call('POST', `/v1/streams/${held.get(otherNode)}/stop`, g.manager);
  t.equal(res.status, 200);
  t.equal((await api.call<{ node: string }>('GET', '/')).body.node, apiNode, 'the stop went through that same worker');
  const s = await stop;
  t.equal(s.reason, 'stream_stopped', 'the core on the other worker got the stop');
  t.ok(s.ms < 1000, `within a second (${s.ms} ms)`);
  await local.ping();
  t.ok(local.assignment, 'the core on the API worker kept its stream');

  // The stopped core takes the third stream; then disabling the target stops both.
  const third = await remote.assign(target);
  t.ok(streams.includes(third.streamId) && third.streamId !== held.get(otherNode));
  const stops = Promise.all([local, remote].map((c) => nextStop(c, () => started)));
  started = Date.now();
  t.equal((await api.call('PATCH', `/v1/targets/${target}`, g.manager, { stage: 'disabled' })).status, 200);
  const both = await stops;
  t.same(both.map((x) => x.reason), ['target_disabled', 'target_disabled'], 'both workers stopped their core');
  t.ok(Math.max(...both.map((x) => x.ms)) < 1000, `within a second (${both.map((x) => x.ms).join(', ')} ms)`);

  // Revoking the key closes every socket on both workers.
  const closed = Promise.all(all.map((c) => once(c, 'disconnect') as Promise<[{ code: number }]>));
  started = Date.now();
  t.equal((await api.call('DELETE', `/v1/engine-keys/${key.id}`, g.admin)).status, 204);
  const codes = (await closed).map(([d]) => d.code);
  t.same(new Set(codes), new Set([1008]), `all ${codes.length} sockets closed with 1008 (${Date.now() - started} ms)`);
  t.ok(Date.now() - started < 1000, 'within a second');
});

t.test('graceful shutdown: cores get stop server_shutdown with reconnect, then 1001; exit 0', async (t) => {
  const port = await freePort();
  const srv = await cliServer(port, { 'server.workers': 1, 'redis.keyPrefix': 'sd:', 'core.resumeGraceS': 60 }, /"msg":"listening"/);
  t.teardown(() => srv.stop());
  const g = srv.f;
  const target = await g.target();
  const stream = await g.stream(target);
  const working = await g.client({ reconnect: false });
  const idle = await g.client({ reconnect: false });
  const a = await working.assign(target);
  await working.sendFrames(data('a'), 2);
  t.match(await working.checkpoint([{ name: 'state.xml', data: Buffer.from('at 2') }]), { frames: 2 });
  await working.sendFrames(data('uncommitted'));

  const events = [working, idle].map((c) => {
    const seen: Array<{ ev: string; data: Record<string, unknown> }> = [];
    c.on('stop', (d: Record<string, unknown>) => seen.push({ ev: 'stop', data: d }));
    const done = new Promise<typeof seen>((resolve) =>
      c.once('disconnect', (d: Record<string, unknown>) => {
        seen.push({ ev: 'disconnect', data: d });
        resolve(seen);
      }),
    );
    return done;
  });
  srv.p.child.kill('SIGTERM');
  const [w, i] = await Promise.all(events);
  for (const [name, seen] of [['working', w!], ['idle', i!]] as const) {
    t.same(
      seen.map((x) => x.ev),
      ['stop', 'disconnect'],
      `${name} core: a stop, then the close`,
    );
    t.same(seen[0]!.data, { reason: 'server_shutdown', reconnect: true }, `${name} core: {"type":"stop","reason":"server_shutdown","reconnect":true}`);
    t.equal(seen[1]!.data.code, 1001, `${name} core: close code 1001`);
  }
  const exit = await srv.p.exited;
  t.equal(exit.code, 0, 'the process exits 0');
  t.match(srv.p.output(), /"msg":"stopped"/);

  // The lease was kept for a resume: another server on the same storage takes the core back.
  const next = await startTestServer({ 'mongodb.database': srv.overrides['mongodb.database'], 'redis.keyPrefix': 'sd:' });
  t.teardown(() => next.close());
  const h = await coreFixture({}, next);
  const back = await h.client({ engineKey: g.engineKey, reconnect: false });
  t.teardown(() => back.close());
  const r = await back.resume(a.resumeToken);
  t.equal(r.streamId, stream, 'resumed on the new server');
  t.equal(r.frames, 2, 'with the committed frames only');
  t.equal(r.files['state.xml']?.toString(), 'at 2');
  await back.stop();
  await t.rejects(back.stop(), { code: 'not_assigned' }, 'nothing left to stop');
});

t.test('graceful shutdown waits for the credit of cores that hung up just before it', async (t) => {
  const g = await coreFixture({ ...STORE_STOP_TOLERANT, 'redis.keyPrefix': 'sdc:' });
  let closing: Promise<void> | undefined;
  t.teardown(() => closing ?? g.ts.close());
  const target = await g.target();
  const n = 6;
  for (let i = 0; i < n; i++) await g.stream(target);
  const donor = (await g.api<{ name: string }>('GET', '/v1/me', g.donor)).name;
  const cores = await Promise.all(Array.from({ length: n }, () => g.client({ reconnect: false })));
  for (const c of cores) {
    await c.assign(target);
    await c.sendFrames(data('x'), 1);
    t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('at 1') }]), { frames: 1 });
  }
  const open = async (): Promise<number> => (await g.ts.server.metrics.openSockets.get()).values.reduce((sum, v) => sum + v.value, 0);
  const mongo = (await getStack()).mongo.pid;
  process.kill(mongo, 'SIGSTOP');
  try {
    await Promise.all(cores.map((c) => c.close()));
    await eventually(async () => (await open()) === 0, 5000, 'the server to see every core hang up');
    // Each session has let its lease go and now waits on the stopped store to record its fragment.
    await new Promise((r) => setTimeout(r, 300));
    closing = g.ts.close();
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    process.kill(mongo, 'SIGCONT');
  }
  await closing;
  const db = f.ts.server.storage.mongo.client.db(g.ts.settings.mongodb.database);
  const fragments = await db.collection('fragments').find({ targetId: target }).toArray();
  t.equal(fragments.length, n, 'a fragment for each core, recorded before storage closed');
  const credited = await db.collection('donors').findOne({ name: donor });
  t.equal(credited?.frames, n, "the donor is credited with every core's committed frame");
});
