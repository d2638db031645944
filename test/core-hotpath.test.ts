/**
 * The hot-path rule (docs/architecture.md "Hot path"): an assignment, a checkpoint commit,
 * a resume, a stop with an error and the lease changes around them address MongoDB
 * documents only by `_id`. The server's own MongoDB client reports every command it sends
 * (driver command monitoring); any find, update, delete, findAndModify, count, distinct or
 * aggregate whose filter does not pin `_id` fails the test, and so does any command the
 * test does not know.
 */
import { once } from 'node:events';
import type { CommandStartedEvent, Document } from 'mongodb';
import t from 'tap';
import type { Assignment } from '../src/client';
import { commandsDuring, monitoredCoreFixture, type CoreFixture } from './helpers/core';
import { eventually } from '../test-support/poll';
import { stopStack } from '../test-support/stack';

/** Commands that carry no filter (writes of new documents, cursor and session housekeeping). */
const NO_FILTER = new Set(['insert', 'getMore', 'killCursors', 'endSessions', 'hello', 'ismaster', 'isMaster', 'ping']);

/** Whether a filter addresses documents by `_id`: equality to a value, `$eq`, or `$in` of values. */
function byId(filter: Document | undefined): boolean {
  if (!filter || !('_id' in filter)) return false;
  const id = filter._id as unknown;
  if (id === null || typeof id !== 'object' || id.constructor?.name === 'ObjectId') return true;
  const ops = Object.keys(id as Document);
  return ops.length === 1 && (ops[0] === '$eq' || ops[0] === '$in');
}

/** The filters of a command, or undefined when the command is not one this test knows. */
function filtersOf(cmd: Document, name: string): Array<Document | undefined> | undefined {
  switch (name) {
    case 'find':
      return [cmd.filter];
    case 'update':
      return (cmd.updates as Document[]).map((u) => u.q);
    case 'delete':
      return (cmd.deletes as Document[]).map((d) => d.q);
    case 'findAndModify':
    case 'count':
    case 'distinct':
      return [cmd.query];
    case 'aggregate':
      return [((cmd.pipeline as Document[])[0] ?? {}).$match];
    default:
      return NO_FILTER.has(name) ? [] : undefined;
  }
}

/** The commands of `events` that break the rule, described. */
function violations(events: CommandStartedEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const filters = filtersOf(e.command, e.commandName);
    const target = `${e.commandName} ${String(e.command[e.commandName])}`;
    if (filters === undefined) out.push(`${target}: a command the hot-path check does not know`);
    else for (const f of filters) if (!byId(f)) out.push(`${target} by ${JSON.stringify(f)}`);
  }
  return out;
}

let f: CoreFixture;
t.before(async () => {
  // Token and key lookups are cached (their misses query by hash at connection set-up, off
  // the hot path); a long TTL keeps the reconnect of the resume on the cache.
  // Two partitions per page: the second checkpoint also moves them to a page.
  f = await monitoredCoreFixture({ 'auth.cacheTtlS': 3600, 'storage.partitionsPerPage': 2 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

/** Records the server's MongoDB commands while `fn` runs. */
function recording(fn: () => Promise<void>): Promise<CommandStartedEvent[]> {
  return commandsDuring(f.ts.server.storage.mongo.client, fn);
}

t.test('the check sees the server client and flags a secondary-field query', async (t) => {
  const db = f.ts.server.storage.mongo.db;
  const events = await recording(async () => {
    await db.collection('files').find({ streamId: 'x', kind: 'seed' }).toArray();
    await db.collection('files').findOne({ _id: 'x:seed:a' as never });
  });
  t.same(violations(events), ['find files by {"streamId":"x","kind":"seed"}'], 'only the lookup by streamId is flagged');
});

t.test('assignment, checkpoint commit and resume query MongoDB only by _id', async (t) => {
  const target = await f.target();
  const stream = await f.api<{ stream_id: string }>('POST', `/v1/targets/${target}/streams`, f.manager, {
    files: { 'state.xml': Buffer.from('seed state').toString('base64'), 'system.xml': Buffer.from('<System/>').toString('base64') },
  }, 201);
  // Warm the per-process caches (targets and managers' weights, reloaded when a target
  // changes; the engine key; the donor token) with an assignment on another target.
  const warm = await f.target();
  await f.stream(warm);
  const c = await f.client();
  t.teardown(() => c.close());
  await c.assign(warm);
  await c.stop();

  const assignment = await recording(async () => {
    const a = await c.assign(target);
    t.equal(a.streamId, stream.stream_id);
    t.same(Object.keys(a.files).sort(), ['state.xml', 'system.xml'], 'both seed files handed out');
  });
  t.same(violations(assignment), [], 'assignment');
  t.ok(assignment.some((e) => e.commandName === 'find' && e.command.find === 'files'), 'seed files were read (by _id)');

  const commit = await recording(async () => {
    await c.sendFrames([{ name: 'frames.xtc', data: Buffer.alloc(4096, 1) }], 2);
    t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('state at 2') }]), { frames: 2 });
    await c.sendFrames([{ name: 'frames.xtc', data: Buffer.alloc(4096, 1) }], 2);
    t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('state at 4') }]), { frames: 4 });
    // The move to a page follows the reply.
    await eventually(() => f.ts.server.storage.mongo.db.collection('streams').findOne({ _id: stream.stream_id as never, pagedUpTo: 4 }));
  });
  t.same(violations(commit), [], 'checkpoint commits, and the move of their partitions to a page');
  t.ok(commit.some((e) => e.commandName === 'update' && e.command.update === 'streams'), 'the commit point was written (by _id)');
  t.ok(commit.some((e) => e.commandName === 'update' && e.command.update === 'partition_pages'), 'the page was written (by _id)');

  const resume = await recording(async () => {
    const resumed = once(c, 'resumed') as Promise<[Assignment]>;
    c.terminate();
    const [r] = await resumed;
    t.equal(r.streamId, stream.stream_id, 'resumed the same stream');
    t.equal(r.files['state.xml']?.toString(), 'state at 4', "with the checkpoint's files");
    t.equal(r.files['system.xml']?.toString(), '<System/>', 'and the seed file it did not overwrite');
    // The dropped socket's detach and fragment run beside the resume; give them time to land.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });
  t.same(violations(resume), [], 'resume (with the detach and fragment of the dropped socket)');
  const seedReads = resume.filter((e) => e.commandName === 'find' && e.command.find === 'files').map((e) => String((e.command.filter as Document)._id));
  t.same(seedReads, [`${stream.stream_id}:seed:system.xml`], 'only the seed file the checkpoint does not overwrite was read');
  t.ok(resume.some((e) => e.commandName === 'find' && e.command.find === 'streams'), 'the stream was read (by _id)');

  const stop = await recording(async () => {
    // Answered once the error is counted, the lease released and the fragment and the
    // donor's credit are written.
    await c.stop('engine crashed');
  });
  t.same(violations(stop), [], 'stop with an error, and release');
  t.ok(stop.some((e) => e.commandName === 'update' && e.command.update === 'donors'), "the donor's credit was written (by _id)");
});
