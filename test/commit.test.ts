import t from 'tap';
import { commitCheckpoint } from '../src/commit';
import { FileStore } from '../src/files';
import { coreFixture } from './helpers/core';
import { request } from './helpers/server';
import { stopStack } from './helpers/stack';

t.test('a commit that loses the race changes nothing visible', async (t) => {
  const f = await coreFixture();
  t.teardown(async () => {
    await f.ts.close();
    await stopStack();
  });
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1 << 20);
  const stream = await f.stream(await f.target());
  t.same(await commitCheckpoint(db, files, stream, 0, 5, [{ name: 'frames.xtc', bytes: Buffer.from('LEGIT-BYTES') }], [{ name: 'state.xml', bytes: Buffer.from('legit') }]), { ok: true, frames: 5 });
  // A stale writer (lost lease, late write of a dead node) with the same partition number.
  t.same(await commitCheckpoint(db, files, stream, 0, 5, [{ name: 'frames.xtc', bytes: Buffer.from('STALE') }], [{ name: 'state.xml', bytes: Buffer.from('stale') }]), { ok: false, reason: 'conflict' });
  const get = (p: string) => request(`${f.ts.url}${p}`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  t.equal((await get(`/v1/streams/${stream}/partitions/5/frames.xtc`)).body.toString(), 'LEGIT-BYTES');
  t.equal((await get(`/v1/streams/${stream}/partitions/5/checkpoint/state.xml`)).body.toString(), 'legit');
  t.equal((await get(`/v1/streams/${stream}/frames/frames.xtc`)).body.toString(), 'LEGIT-BYTES');
  t.same(await commitCheckpoint(db, files, 'AAAAAAAAAAAAAAAAAAAAAA', 0, 1, [{ name: 'x', bytes: Buffer.from('x') }], []), { ok: false, reason: 'stream_gone' });
  t.same(await commitCheckpoint(db, files, stream, 5, 0, [], []), { ok: true, frames: 5 }, 'nothing buffered: nothing written');
});
