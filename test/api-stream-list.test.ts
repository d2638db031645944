/**
 * GET /v1/targets/{id}/streams: server-side sorting (`sort`, `-` for descending, ties by id),
 * `offset` pages, `total`, and the refusals — what the dashboard's streams table relies on.
 * Frame counts come from real commits by a core.
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture();
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

interface Row {
  id: string;
  status: string;
  frames: number;
  error_count: number;
  created_at: string;
}
const list = (target: string, query: string) => f.api<{ streams: Row[]; total: number }>('GET', `/v1/targets/${target}/streams?${query}`, f.manager, undefined, 200);

t.test('sort, offset and total', async (t) => {
  const target = await f.target();
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await f.stream(target));
  // Commit 3, 1 and 2 frames on the first three streams the core is given.
  const c = await f.client();
  t.teardown(() => c.close());
  const framesOf = new Map<string, number>();
  for (const n of [3, 1, 2]) {
    const a = await c.assign(target);
    for (let k = 0; k < n; k++) await c.sendFrames([{ name: 'traj.xtc', data: Buffer.from(`f${k}`) }]);
    await c.checkpoint([{ name: 'state.xml', data: Buffer.from('cp') }]);
    await c.stop();
    framesOf.set(a.streamId, n);
  }
  const idle = ids.filter((id) => !framesOf.has(id));
  await f.api('POST', `/v1/streams/${idle[0]}/stop`, f.manager, undefined, 200);

  const byId = await list(target, '');
  t.equal(byId.total, 5, 'total counts every stream of the target');
  t.same(byId.streams.map((s) => s.id), [...ids].sort(), 'id order by default');
  t.same((await list(target, 'sort=-id')).streams.map((s) => s.id), [...ids].sort().reverse(), 'descending id');

  const byFrames = (await list(target, 'sort=-frames')).streams;
  t.same(byFrames.map((s) => s.frames), [3, 2, 1, 0, 0], 'frames, descending');
  t.same(byFrames.slice(3).map((s) => s.id), [...idle].sort().reverse(), 'ties broken by id, in the same direction');
  const asc = (await list(target, 'sort=frames')).streams;
  t.same(asc.map((s) => s.frames), [0, 0, 1, 2, 3], 'frames, ascending');

  const pages: Row[] = [];
  for (let offset = 0; offset < 5; offset += 2) {
    const page = await list(target, `sort=-frames&limit=2&offset=${offset}`);
    t.equal(page.total, 5);
    t.ok(page.streams.length <= 2);
    pages.push(...page.streams);
  }
  t.same(pages.map((s) => s.id), byFrames.map((s) => s.id), 'offset pages cover the sorted list once, in order');
  t.same((await list(target, 'sort=frames&offset=10')).streams, [], 'past the end: empty, not an error');

  const byStatus = (await list(target, 'sort=-status')).streams;
  t.equal(byStatus[0]!.status, 'stopped', 'status sorts too');
  t.same((await list(target, 'sort=created_at')).streams.map((s) => s.created_at), [...byId.streams.map((s) => s.created_at)].sort(), 'created_at');
  t.equal((await list(target, 'sort=error_count')).streams.length, 5);

  const idPage = await list(target, 'limit=2');
  const next = await list(target, `limit=2&after=${idPage.streams[1]!.id}`);
  t.same(next.streams.map((s) => s.id), [...ids].sort().slice(2, 4), '`after` still pages in id order');
  const back = await list(target, `sort=-id&limit=2&after=${[...ids].sort()[2]}`);
  t.same(back.streams.map((s) => s.id), [...ids].sort().slice(0, 2).reverse(), '`after` follows a descending id sort');
});

t.test('refusals', async (t) => {
  const target = await f.target();
  await f.stream(target);
  for (const q of ['sort=owner', 'sort=--frames', 'offset=-1', 'offset=x', 'sort=frames&after=AAAAAAAAAAAAAAAAAAAAAA']) {
    const r = await fetchStatus(`/v1/targets/${target}/streams?${q}`);
    t.equal(r.status, 400, `${q}: 400`);
    t.equal(r.code, 'bad_request');
  }
});

async function fetchStatus(path: string): Promise<{ status: number; code: string }> {
  try {
    await f.api('GET', path, f.manager, undefined, 200);
    return { status: 200, code: '' };
  } catch (err) {
    const m = /expected 200, got (\d+) (.*)$/s.exec((err as Error).message);
    return { status: Number(m?.[1]), code: m ? (JSON.parse(m[2]!) as { error: { code: string } }).error.code : '' };
  }
}
