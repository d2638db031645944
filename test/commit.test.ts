import t from 'tap';
import { commitCheckpoint } from '../src/store/commit';
import { FileStore } from '../src/store/files';
import { coreFixture } from './helpers/core';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

let fixture: ReturnType<typeof coreFixture> | undefined;
const shared = (): ReturnType<typeof coreFixture> => (fixture ??= coreFixture());
t.teardown(async () => {
  if (fixture) await (await fixture).ts.close();
  await stopStack();
});

t.test('a commit that loses the race changes nothing visible', async (t) => {
  const f = await shared();
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1 << 20);
  const stream = await f.stream(await f.target());
  t.match(await commitCheckpoint(db, files, stream, 0, 5, [{ name: 'frames.xtc', bytes: Buffer.from('LEGIT-BYTES') }], [{ name: 'state.xml', bytes: Buffer.from('legit') }]), { ok: true, frames: 5, partitionId: String });
  // A stale writer (lost lease, late write of a dead node) with the same partition number.
  t.same(await commitCheckpoint(db, files, stream, 0, 5, [{ name: 'frames.xtc', bytes: Buffer.from('STALE') }], [{ name: 'state.xml', bytes: Buffer.from('stale') }]), { ok: false, reason: 'conflict' });
  const get = (p: string) => request(`${f.ts.url}${p}`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  t.equal((await get(`/v1/streams/${stream}/partitions/5/frames.xtc`)).body.toString(), 'LEGIT-BYTES');
  t.equal((await get(`/v1/streams/${stream}/partitions/5/checkpoint/state.xml`)).body.toString(), 'legit');
  t.equal((await get(`/v1/streams/${stream}/frames/frames.xtc`)).body.toString(), 'LEGIT-BYTES');
  t.same(await commitCheckpoint(db, files, 'AAAAAAAAAAAAAAAAAAAAAA', 0, 1, [{ name: 'x', bytes: Buffer.from('x') }], []), { ok: false, reason: 'stream_gone' });
  t.same(await commitCheckpoint(db, files, stream, 5, 0, [], []), { ok: true, frames: 5 }, 'nothing buffered: nothing written');
});

t.test('concurrent commit points of one stream: exactly one lands, the stream lists exactly it', async (t) => {
  const f = await shared();
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1 << 20);
  const WRITERS = 16;
  for (let round = 0; round < 3; round++) {
    const stream = await f.stream(await f.target());
    const results = await Promise.all(
      Array.from({ length: WRITERS }, (_, i) => commitCheckpoint(db, files, stream, 0, 1 + i, [{ name: 'frames.xtc', bytes: Buffer.from(`writer ${i}`) }], [{ name: 'state.xml', bytes: Buffer.from(`state ${i}`) }])),
    );
    const landed = results.flatMap((r) => (r.ok && r.partitionId ? [r] : []));
    t.equal(landed.length, 1, `round ${round}: one of ${WRITERS} racing writers acknowledged`);
    t.equal(results.filter((r) => !r.ok && r.reason === 'conflict').length, WRITERS - 1, 'the others told they lost');
    const doc = await db.collection<{ _id: string; frames: number; partitionIds: string[] }>('streams').findOne({ _id: stream });
    t.same(doc?.partitionIds, [landed[0]?.partitionId], 'the stream lists the acknowledged partition and nothing else');
    t.equal(doc?.frames, landed[0] && landed[0].ok ? landed[0].frames : -1, 'with its frames');
  }
});

