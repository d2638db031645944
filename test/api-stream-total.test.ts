/**
 * The stream list's `total` (http.streamTotalCacheMs): counted once per target and process,
 * then kept, since counting reads every index entry of the target; creating or deleting a
 * stream drops it at once (through the bus), so the total a manager sees is never behind
 * their own change. The server's MongoDB commands are watched with driver command monitoring.
 */
import type { CommandStartedEvent } from 'mongodb';
import t from 'tap';
import { commandsDuring, monitoredCoreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  f = await monitoredCoreFixture();
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

/** The stream list's total, and how many `count` commands of streams the server sent for it. */
async function totalOf(target: string, query = 'limit=2'): Promise<{ total: number; counts: number }> {
  let total = -1;
  const events = await commandsDuring(f.ts.server.storage.mongo.client, async () => {
    total = (await f.api<{ total: number }>('GET', `/v1/targets/${target}/streams?${query}`, f.manager, undefined, 200)).total;
  });
  return { total, counts: events.filter(countsStreams).length };
}

/** Whether `e` counts streams. */
function countsStreams(e: CommandStartedEvent): boolean {
  return e.commandName === 'count' && e.command.count === 'streams';
}

t.test("the total is counted once, then kept until a stream of the target is created or deleted", async (t) => {
  const target = await f.target();
  const other = await f.target();
  const ids = [await f.stream(target), await f.stream(target), await f.stream(target)];
  t.same(await totalOf(target), { total: 3, counts: 1 }, 'first page: counted');
  t.same(await totalOf(target, 'limit=2&offset=2'), { total: 3, counts: 0 }, 'next page: kept');
  t.same(await totalOf(target, 'sort=-frames'), { total: 3, counts: 0 }, 'another order: kept');

  ids.push(await f.stream(target));
  t.same(await totalOf(target), { total: 4, counts: 1 }, 'a stream created: counted again at once');
  await f.api('DELETE', `/v1/streams/${ids[0]}`, f.manager, undefined, 204);
  t.same(await totalOf(target), { total: 3, counts: 1 }, 'a stream deleted: counted again at once');

  t.same(await totalOf(other), { total: 0, counts: 1 }, "another target's total is its own");
  await f.stream(other);
  t.same(await totalOf(target), { total: 3, counts: 0 }, "a change to another target leaves this one's total kept");
  t.same(await totalOf(other), { total: 1, counts: 1 }, 'and drops only its own');
});

t.test("the target view's ok count is the kept total less the stopped and failed streams, which it counts", async (t) => {
  const target = await f.target();
  const ids = [await f.stream(target), await f.stream(target), await f.stream(target), await f.stream(target)];
  t.same(await totalOf(target), { total: 4, counts: 1 }, 'the list counted the total');
  await f.api('POST', `/v1/streams/${ids[0]}/stop`, f.manager, undefined, 200);

  const counted: string[] = [];
  const view = async (): Promise<unknown> => {
    let streams: unknown;
    const events = await commandsDuring(f.ts.server.storage.mongo.client, async () => {
      streams = (await f.api<{ streams: unknown }>('GET', `/v1/targets/${target}`, f.manager, undefined, 200)).streams;
    });
    for (const e of events.filter(countsStreams)) counted.push(String((e.command.query as { status?: string }).status ?? 'all'));
    return streams;
  };
  t.same(await view(), { ok: 3, stopped: 1, failed: 0, frames: 0 }, 'one stopped: three ok');
  t.same(counted.sort(), ['all', 'failed', 'stopped'], 'the stop dropped the kept total: counted again, with the stopped and failed ones');
  counted.length = 0;
  await f.api('POST', `/v1/streams/${ids[1]}/stop`, f.manager, undefined, 200);
  t.same(await totalOf(target), { total: 4, counts: 1 }, 'the list counts the total again after the second stop');
  t.same(await view(), { ok: 2, stopped: 2, failed: 0, frames: 0 }, 'two stopped: two ok');
  t.same(counted.sort(), ['failed', 'stopped'], 'the view used the kept total: only the stopped and failed ones counted');
});
