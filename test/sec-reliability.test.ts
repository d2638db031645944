/**
 * Reliability records and admin blocks (issue 12 §5): a donor whose assignments keep ending
 * in errors gets none during its cooling-off and gets them again afterwards; the counts are
 * visible in /v1/reliability; blocks of an address range (IPv4 and IPv6) close held sockets
 * with 1008 "blocked" and refuse upgrades with 403 `blocked` until removed; a donor block
 * reaches a core on the other worker within a second; only admins may see or change any of it.
 * Cores claim distinct client addresses with X-Forwarded-For (the test runner is a trusted proxy).
 */
import crypto from 'node:crypto';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import { coreFixture, type CoreFixture } from './helpers/core';
import { cliServer, PinnedClient, RawCore, tryUpgrade, type Msg } from './helpers/core-raw';
import { eventually } from './helpers/server';
import { stopStack } from '../test-support/stack';

const COOLING_S = 4;
let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({
    'server.trustProxy': ['127.0.0.1'],
    'core.maxStreamErrors': 100,
    'reliability.windowS': 60,
    'reliability.minSample': 3,
    'reliability.errorRatePercent': 50,
    'reliability.coolingOffS': COOLING_S,
    'reliability.refreshMs': 200,
  });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const newDonor = async (fx: CoreFixture): Promise<{ name: string; token: string }> => {
  const name = `d${crypto.randomBytes(5).toString('hex')}`;
  const { token } = await fx.api<{ token: string }>('POST', '/v1/donors', undefined, { name }, 201);
  return { name, token };
};
const core = (fx: CoreFixture, address: string, donorToken?: string, engineKey = fx.engineKey): Promise<RawCore> =>
  RawCore.connect(fx.wsUrl, { engineKey, ca: fx.ts.ca, ...(donorToken ? { donorToken } : {}), headers: { 'x-forwarded-for': address } });
const upgrade = (fx: CoreFixture, address: string, donorToken?: string) =>
  tryUpgrade(fx.wsUrl, { authorization: `Bearer ${fx.engineKey}`, 'x-forwarded-for': address, ...(donorToken ? { 'x-donor-token': donorToken } : {}) }, fx.ts.ca);

interface RecordView {
  assignments: number;
  commits: number;
  stream_errors: number;
  protocol_errors: number;
  sample: number;
  error_rate: number;
  cooling_until?: string;
  blocked_by?: { id: string; kind: string; value: string };
}

t.test('a donor whose assignments keep failing cools off, then gets assignments again', async (t) => {
  const target = await f.target();
  for (let i = 0; i < 4; i++) await f.stream(target);
  const flaky = await newDonor(f);
  const c = await core(f, '198.51.100.10', flaky.token);
  t.teardown(() => c.close());

  // A healthy record first: one assignment that commits.
  const first = await c.request({ type: 'assign', target_id: target });
  t.equal(first.type, 'assignment');
  t.equal((await c.checkpoint(1)).type, 'committed');
  t.equal((await c.request({ type: 'stop' })).type, 'stopped');

  // Then assignments that end in errors, until the refresh pass judges the record.
  let refused: Msg | undefined;
  let failures = 0;
  const started = Date.now();
  while (!refused && Date.now() - started < 15000) {
    const r = await c.request({ type: 'assign', target_id: target });
    if (r.type === 'assignment') {
      t.equal((await c.request({ type: 'stop', error: `crash ${++failures}` })).type, 'stopped');
    } else {
      refused = r;
    }
  }
  t.ok(refused, `refused after ${failures} failed assignments`);
  t.equal(refused!.code, 'rate_limited');
  t.match(refused!.message, /cooling off/);
  t.ok((refused!.retry_after_s as number) >= 1 && (refused!.retry_after_s as number) <= COOLING_S, `retry_after_s ${String(refused!.retry_after_s)}`);

  // The donor's record holds wherever it connects from; a healthy donor is untouched.
  const elsewhere = await core(f, '198.51.100.77', flaky.token);
  t.teardown(() => elsewhere.close());
  await eventually(async () => (await elsewhere.request({ type: 'assign', target_id: target })).code === 'rate_limited', 3000, 'the donor refused from another address');
  const healthy = await core(f, '192.0.2.50', (await newDonor(f)).token);
  t.teardown(() => healthy.close());
  t.equal((await healthy.request({ type: 'assign', target_id: target })).type, 'assignment', 'another donor elsewhere still gets work');
  await healthy.request({ type: 'stop' });

  // The records, as an admin sees them (each process writes its tally every reliability.refreshMs).
  const rec = await eventually(async () => {
    const r = await f.api<RecordView>('GET', `/v1/reliability?donor=${flaky.name}`, f.admin, undefined, 200);
    return r.stream_errors === failures ? r : undefined;
  }, 3000, `${failures} stream errors in the donor's record`);
  t.equal(rec.assignments, failures + 1, 'assignments counted');
  t.equal(rec.commits, 1, 'the commit counted');
  t.equal(rec.error_rate, failures / (failures + 1), 'error rate = errors / assignments');
  t.ok(rec.cooling_until && Date.parse(rec.cooling_until) > Date.now(), 'cooling_until in the future');
  const byAddr = await f.api<RecordView>('GET', '/v1/reliability?address=198.51.100.10', f.admin, undefined, 200);
  t.equal(byAddr.stream_errors, failures, 'the address record counted the same errors');
  t.ok(byAddr.cooling_until, 'and the address cools off too');
  await f.api('GET', '/v1/reliability?donor=x&address=1.2.3.4', f.admin, undefined, 400);

  // After the cooling-off the record starts afresh and work comes again.
  const again = await eventually(async () => {
    const r = await c.request({ type: 'assign', target_id: target });
    return r.type === 'assignment' ? r : undefined;
  }, (COOLING_S + 6) * 1000, 'an assignment after the cooling-off');
  t.equal(again.target_id, target, 'assigned again after the cooling-off');
  await c.request({ type: 'stop' });
});

t.test('address-range blocks: held sockets closed with 1008, upgrades refused with 403 blocked, unblock restores', async (t) => {
  const v4 = await core(f, '203.0.113.5');
  const v6 = await core(f, '2001:db8:1:2::99');
  const bystander = await core(f, '203.0.114.5');
  t.teardown(() => bystander.close());

  const b4 = await f.api<{ id: string; value: string }>('POST', '/v1/blocks', f.admin, { kind: 'address', value: '203.0.113.0/24', reason: 'abuse' }, 201);
  t.equal(b4.value, '203.0.113.0/24');
  t.match(await f.api('POST', '/v1/blocks', f.admin, { kind: 'address', value: '203.0.113.0/24' }, 200), { id: b4.id }, 'blocking again returns the same block');
  const b6 = await f.api<{ id: string }>('POST', '/v1/blocks', f.admin, { kind: 'address', value: '2001:db8:1:2::/64' }, 201);
  t.same(await v4.closed, { code: 1008, reason: 'blocked' }, 'the IPv4 core is closed');
  t.same(await v6.closed, { code: 1008, reason: 'blocked' }, 'the IPv6 core in the /64 is closed');
  t.equal((await bystander.ping()).type, 'pong', 'a core outside the range is untouched');

  const refused = await upgrade(f, '203.0.113.200');
  t.equal(refused.status, 403);
  t.equal((JSON.parse(refused.body!) as { error: { code: string } }).error.code, 'blocked');
  t.match(refused.body, /abuse/, 'the reason is given');
  t.equal((await upgrade(f, '2001:db8:1:2:ffff::1')).status, 403, 'any address of the blocked /64');
  t.equal((await upgrade(f, '2001:db8:1:3::1')).opened, true, 'the next /64 is not blocked');

  const list = await f.api<{ blocks: Array<{ id: string; kind: string; created_by: string }> }>('GET', '/v1/blocks', f.admin, undefined, 200);
  t.ok(list.blocks.some((b) => b.id === b4.id && b.kind === 'address'), 'listed');
  const rec = await f.api<RecordView>('GET', '/v1/reliability?address=203.0.113.9', f.admin, undefined, 200);
  t.equal(rec.blocked_by?.id, b4.id, 'the record shows the block');
  await f.api('POST', '/v1/blocks', f.admin, { kind: 'address', value: '300.1.2.3/8' }, 400);
  await f.api('GET', '/v1/reliability?address=zzz', f.admin, undefined, 400);

  await f.api('DELETE', `/v1/blocks/${b4.id}`, f.admin, undefined, 204);
  await f.api('DELETE', `/v1/blocks/${b6.id}`, f.admin, undefined, 204);
  await f.api('DELETE', `/v1/blocks/${b4.id}`, f.admin, undefined, 404);
  t.ok(await eventually(async () => (await upgrade(f, '203.0.113.200')).opened, 3000, 'the upgrade to open once the unblock is announced'), 'unblocked: the upgrade opens');
  const back = await core(f, '2001:db8:1:2::99');
  t.equal((await back.ping()).type, 'pong');
  await back.close();
});

t.test('an engine-key block closes its cores and refuses its upgrades until removed', async (t) => {
  const k = await f.api<{ id: string; key: string }>('POST', '/v1/engine-keys', f.admin, { engine: 'openmm', description: 'to block' }, 201);
  const c = await core(f, '192.0.2.60', undefined, k.key);
  const other = await core(f, '192.0.2.60');
  t.teardown(() => other.close());
  const b = await f.api<{ id: string }>('POST', '/v1/blocks', f.admin, { kind: 'engine_key', value: k.id }, 201);
  t.same(await c.closed, { code: 1008, reason: 'blocked' });
  t.equal((await other.ping()).type, 'pong', 'a core with another key from the same address is untouched');
  const up = (): ReturnType<typeof tryUpgrade> => tryUpgrade(f.wsUrl, { authorization: `Bearer ${k.key}` }, f.ts.ca);
  t.equal((await up()).status, 403);
  await f.api('DELETE', `/v1/blocks/${b.id}`, f.admin, undefined, 204);
  // The unblock reaches every process through the bus (within a second, docs/security.md), not with the 204.
  t.ok(await eventually(async () => (await up()).opened, 3000, 'the upgrade to open once the unblock is announced'), 'unblocked');
});

t.test('only admins see or change records and blocks', async (t) => {
  for (const token of [f.manager, f.donor]) {
    await f.api('GET', '/v1/blocks', token, undefined, 403);
    await f.api('POST', '/v1/blocks', token, { kind: 'donor', value: 'someone' }, 403);
    await f.api('DELETE', '/v1/blocks/abcdefghijklmnopqrstuv', token, undefined, 403);
    await f.api('GET', '/v1/reliability?donor=someone', token, undefined, 403);
  }
  await f.api('GET', '/v1/blocks', undefined, undefined, 401);
  t.same((await f.api<{ blocks: unknown[] }>('GET', '/v1/blocks', f.admin, undefined, 200)).blocks, [], 'nothing was blocked by them');
});

t.test('across two workers: a donor block closes its core on the other worker within a second', async (t) => {
  const port = await freePort();
  const srv = await cliServer(port, { 'server.workers': 2, 'redis.keyPrefix': 'rel2:' }, /all workers listening/);
  t.teardown(() => srv.stop());
  const g = srv.f;
  const donor = (await g.api<{ name: string }>('GET', '/v1/me', g.donor)).name;
  const target = await g.target();
  await g.stream(target);

  const api = new PinnedClient(`https://127.0.0.1:${port}`, srv.ca);
  t.teardown(() => api.destroy());
  const apiNode = (await api.call<{ node: string }>('GET', '/')).body.node;
  // Connect the donor until one of its cores is on the other worker.
  const all: RawCore[] = [];
  t.teardown(() => Promise.all(all.map((c) => c.close())));
  let remote: RawCore | undefined;
  for (let i = 0; i < 40 && !remote; i++) {
    const c = await RawCore.connect(g.wsUrl, { engineKey: g.engineKey, donorToken: g.donor, ca: srv.ca });
    all.push(c);
    if (c.welcome.node !== apiNode) remote = c;
  }
  t.ok(remote, `a core on the other worker after ${all.length} connections`);
  t.equal((await remote!.request({ type: 'assign', target_id: target })).type, 'assignment', 'it holds a stream');
  const other = await RawCore.connect(g.wsUrl, { engineKey: g.engineKey, ca: srv.ca });
  t.teardown(() => other.close());

  const started = Date.now();
  const res = await api.call<{ id: string }>('POST', '/v1/blocks', g.admin, { kind: 'donor', value: donor, reason: 'test' });
  t.equal(res.status, 201);
  const closed = await Promise.all(all.map((c) => c.closed));
  const ms = Date.now() - started;
  t.same(new Set(closed.map((c) => `${c.code} ${c.reason}`)), new Set(['1008 blocked']), `all ${all.length} sockets of the donor closed with 1008 blocked`);
  t.ok(ms < 1000, `within a second (${ms} ms)`);
  t.equal((await other.ping()).type, 'pong', 'a core without that donor is untouched');
  // Every worker refuses the donor's upgrades (try enough to reach both).
  const tries = await Promise.all(Array.from({ length: 6 }, () => tryUpgrade(g.wsUrl, { authorization: `Bearer ${g.engineKey}`, 'x-donor-token': g.donor }, srv.ca)));
  t.same(new Set(tries.map((x) => x.status)), new Set([403]), 'upgrades refused with 403');
  t.match(tries[0]!.body, /"blocked"/);

  t.equal((await api.call('DELETE', `/v1/blocks/${res.body.id}`, g.admin)).status, 204);
  const back = await Promise.all(Array.from({ length: 6 }, () => tryUpgrade(g.wsUrl, { authorization: `Bearer ${g.engineKey}`, 'x-donor-token': g.donor }, srv.ca)));
  t.same(new Set(back.map((x) => x.opened)), new Set([true]), 'unblocked: upgrades open again on every worker');
});
