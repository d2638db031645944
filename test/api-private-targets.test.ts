/**
 * What the admin API must not give away or let race: a private target's id (it is what lets
 * a core ask for the target) through a donor's public figures; the last admin through two
 * demotions at once; a suffix range of an empty file; an offset past what a number holds;
 * more option keys than limits.maxOptionsKeys by PATCHes that each stay within it.
 */
import t from 'tap';
import { parseRange } from '../src/http/range';
import { useCoreFixture } from './helpers/core';
import { request } from './helpers/server';

const fx = useCoreFixture();

type DonorView = { name: string; frames: number; targets: Array<{ target_id: string; frames: number }> };

t.test("a donor's figures list only the targets the caller may see", async (t) => {
  const donorName = (await fx().api<{ name: string }>('GET', '/v1/me', fx().donor)).name;
  const open = await fx().target({ stage: 'public' });
  const hidden = await fx().target({ stage: 'private' });
  for (const target of [open, hidden]) {
    await fx().stream(target);
    const c = await fx().client({ reconnect: false });
    await c.assign(target);
    await c.sendFrames([{ name: 'frames.xtc', data: Buffer.from('x') }], 1);
    await c.checkpoint([{ name: 'state.xml', data: Buffer.from('s') }]);
    await c.stop();
    await c.close();
  }
  const ids = async (token?: string) => (await fx().api<DonorView>('GET', `/v1/donors/${donorName}`, token)).targets.map((x) => x.target_id).sort();
  t.same(await ids(), [open], 'anonymous: the public target only');
  t.same(await ids(fx().donor), [open], 'the donor itself: the same');
  const other = (await fx().api<{ token: string }>('POST', '/v1/users', fx().admin, { name: `other${process.pid}`, role: 'manager' }, 201)).token;
  t.same(await ids(other), [open], 'another manager: the same');
  t.same(await ids(fx().manager), [open, hidden].sort(), 'the owner: both');
  t.same(await ids(fx().admin), [open, hidden].sort(), 'an admin: both');
  t.equal((await fx().api<DonorView>('GET', `/v1/donors/${donorName}`, undefined)).frames >= 2, true, 'the totals still count all the work');
});

t.test('two admins demoted or removed at once leave one admin', async (t) => {
  for (const [a, b] of [
    ['PATCH', 'PATCH'],
    ['PATCH', 'DELETE'],
    ['DELETE', 'DELETE'],
  ] as const) {
    const users = await fx().api<{ users: Array<{ name: string; role: string }> }>('GET', '/v1/users', fx().admin);
    // Only two admins: the fixture's and one made now; the rest demoted by earlier rounds.
    const extra = `adm${a[0]}${b[0]}${process.pid}`;
    await fx().api('POST', '/v1/users', fx().admin, { name: extra, role: 'admin' }, 201);
    const admins = [...users.users.filter((u) => u.role === 'admin').map((u) => u.name), extra];
    t.equal(admins.length, 2, 'two admins');
    const extraToken = (await fx().api<{ token: string }>('POST', `/v1/users/${extra}/token`, fx().admin, {}, 200)).token;
    const act = async (method: 'PATCH' | 'DELETE', name: string, token: string): Promise<number> => {
      const res = await request(`${fx().ts.url}/v1/users/${name}`, {
        method,
        ca: fx().ts.ca,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(method === 'PATCH' ? { body: JSON.stringify({ role: 'manager' }) } : {}),
      });
      return res.status;
    };
    // Each admin acts on the other one, at the same time.
    const codes = await Promise.all([act(a, extra, fx().admin), act(b, admins[0]!, extraToken)]);
    const left = await fx().ts.server.storage.mongo.db.collection<{ name: string; role: string }>('users').find({ role: 'admin' }).toArray();
    t.equal(left.length, 1, `${a} + ${b}: one admin left (answers ${codes.join(', ')})`);
    t.ok(codes.includes(409) || codes.includes(403), `the second change is refused: last admin, or no longer an admin (${codes.join(', ')})`);
    if (left[0]!.name !== admins[0]) {
      t.fail('the fixture admin was demoted; later rounds need it');
      return;
    }
  }
});

t.test('a suffix range of an empty file is unsatisfiable; an offset past 2^53 is bad input', async (t) => {
  t.equal(parseRange('bytes=-5', 0), 'unsatisfiable');
  t.same(parseRange('bytes=-5', 3), { start: 0, end: 2 });
  const target = await fx().target();
  const res = await fx().get(`/v1/targets/${target}/streams?offset=9223372036854775808`);
  t.equal(res.status, 400, 'not 500');
});

t.test('PATCHes that each stay within limits.maxOptionsKeys cannot merge past it', async (t) => {
  const target = await fx().target();
  const keys = (from: number) => Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`m${from + i}`, 1]));
  await fx().api('PATCH', `/v1/targets/${target}`, fx().manager, { options: keys(0) }, 200);
  const res = await request(`${fx().ts.url}/v1/targets/${target}`, {
    method: 'PATCH',
    ca: fx().ts.ca,
    headers: { authorization: `Bearer ${fx().manager}`, 'content-type': 'application/json' },
    body: JSON.stringify({ options: keys(200) }),
  });
  t.equal(res.status, 400);
  t.match(res.body.toString(), /the target would have 400 option keys, over the limit of 256/);
  t.equal(Object.keys((await fx().api<{ options: object }>('GET', `/v1/targets/${target}`, fx().manager)).options).length, 200, 'the target keeps its 200');
});
