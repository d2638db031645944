/**
 * The ready pool survives Redis losing its data: queues are rebuilt from MongoDB.
 */
import t from 'tap';
import { coreFixture } from './helpers/core';
import { eventually } from './helpers/server';
import { stopStack } from '../test-support/stack';

t.test('a flushed Redis costs a rebuild, never data', async (t) => {
  const f = await coreFixture();
  t.teardown(async () => {
    await f.ts.close();
    await stopStack();
  });
  const target = await f.target();
  const streams = [await f.stream(target), await f.stream(target), await f.stream(target)];
  const c = await f.client();
  t.teardown(() => c.close());

  const a = await c.assign(target);
  await c.sendFrames([{ name: 'frames.xtc', data: Buffer.alloc(10, 1) }]);
  t.equal((await c.checkpoint([])).frames, 1);
  await c.stop();

  await f.ts.server.storage.redis.flushall();
  // Until the pool notices (every 5 s) nothing is ready; then everything is again. Three
  // cores hold one stream each, so all three streams must come back.
  const cores = [c, await f.client(), await f.client()];
  t.teardown(() => Promise.all(cores.slice(1).map((x) => x.close())));
  const got = new Set<string>();
  await eventually(async () => {
    for (const core of cores) {
      if (core.assignment) continue;
      try {
        got.add((await core.assign(target)).streamId);
      } catch {
        return false;
      }
    }
    return got.size === 3;
  }, 20000, 'streams assignable after the rebuild');
  t.same([...got].sort(), [...streams].sort(), 'every stream is back in the pool');
  const s = await f.api<{ frames: number }>('GET', `/v1/streams/${a.streamId}`, f.manager);
  t.equal(s.frames, 1, 'committed frames intact');
});
