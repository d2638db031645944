/**
 * A core that does not read its replies cannot make a node hold assignment after
 * assignment: past core.maxUnsentBeforeAssignBytes of unread replies, assign is refused
 * (rate_limited) until the core reads; and all cores together past memory.unsentBytes make
 * every assign wait (rate_limited) until they read or leave. On both transports.
 */
import t from 'tap';
import { coreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { eventually, request } from './helpers/server';
import { stopStack } from '../test-support/stack';

const MIB = 1024 * 1024;
t.teardown(stopStack);

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: assignments stop while the replies before them are unread`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport, 'core.maxUnsentBeforeAssignBytes': 256 * 1024, 'core.messagesPerSecond': 1000, 'redis.keyPrefix': `unread-${transport}:` });
    t.teardown(() => f.ts.close());
    const target = await f.target();
    const seed = Buffer.alloc(MIB, 7);
    for (let i = 0; i < 3; i++) await f.stream(target, seed);
    const core = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
    t.teardown(() => core.close());

    // Stop reading: the kernel's buffers fill, then the server's.
    const raw = (core.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    raw.pause();
    const rounds = 40;
    for (let i = 0; i < rounds; i++) {
      core.send({ type: 'assign', id: 1000 + 2 * i, target_id: target });
      core.send({ type: 'stop', id: 1001 + 2 * i });
    }
    await new Promise((r) => setTimeout(r, 1500));
    raw.resume();
    await eventually(async () => core.received.filter((m) => m.type === 'stopped' || (m.type === 'error' && (m.id as number) % 2 === 1)).length === rounds, 60_000, 'every stop answered');
    const assigned = core.received.filter((m) => m.type === 'assignment').length;
    const refused = core.received.filter((m) => m.type === 'error' && m.code === 'rate_limited' && /not read yet/.test(String(m.message)));
    t.ok(refused.length > 0, `${refused.length} of ${rounds} assigns refused while replies were unread`);
    t.equal(assigned + refused.length, rounds, `every assign answered (${assigned} assignments, about ${((assigned * 1.34 * MIB) / MIB).toFixed(0)} MiB)`);
    t.match(refused[0], { retry_after_s: 1 });
    t.ok(core.isOpen, 'the socket stays open');
    // Read up: assignments are served again.
    t.equal((await core.request({ type: 'assign', target_id: target })).type, 'assignment', 'once read, the next assign is served');
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: unread replies of all cores together stop at memory.unsentBytes`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport, 'memory.unsentBytes': MIB, 'core.maxUnsentBeforeAssignBytes': 64 * MIB, 'core.messagesPerSecond': 1000, 'redis.keyPrefix': `unsent-${transport}:` });
    t.teardown(() => f.ts.close());
    const unsent = async (): Promise<number> => {
      const m = (await request(`${f.ts.url}/metrics`, { ca: f.ts.ca })).body.toString();
      return Number(/coordinator_memory_budget_used_bytes\{kind="unsent"[^}]*\} (\d+)/.exec(m)?.[1]);
    };
    const target = await f.target();
    // Larger than what the kernel's buffers take of a message nobody reads (about 4 MiB here).
    const seed = Buffer.alloc(8 * MIB, 7);
    for (let i = 0; i < 3; i++) await f.stream(target, seed);

    // Two cores that stop reading ask at once: the first assignment is let through whatever
    // its size, the second would pass the share with it.
    const quiet = await Promise.all(Array.from({ length: 2 }, () => RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca })));
    t.teardown(() => Promise.all(quiet.map((c) => c.ws.terminate())));
    for (const core of quiet) {
      (core.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      core.send({ type: 'assign', id: 1000, target_id: target });
    }
    const held = await eventually(async () => {
      const n = await unsent();
      return n > MIB ? n : undefined;
    }, 20_000, 'the unread assignment counted past the share');
    t.ok(held < 12 * MIB, `${(held / MIB).toFixed(1)} MiB of unread replies counted (kind "unsent"): one assignment of 10.7 MiB, not two`);

    const honest = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
    t.teardown(() => honest.close());
    const refused = await honest.request({ type: 'assign', target_id: target }, 15_000);
    t.match(refused, { type: 'error', code: 'rate_limited', retry_after_s: 1, message: /this node holds \d+ bytes of replies cores have not read/ }, "a reading core's assign waits while the node holds them");

    // A core that keeps asking without reading, while the node is past the share, is dropped:
    // at once, without a close handshake it could not read (its close frame would wait behind
    // what it has not read), so its bytes go at once.
    for (const core of quiet) core.send({ type: 'ping', id: 2000 });
    // Up to 30 s: one clean-clone run under full load took longer than 10 (the count is
    // reported if it never comes down).
    let last = Number.NaN;
    await eventually(async () => (last = await unsent()) < 64 * 1024, 30_000, 'the count back down once it is dropped').catch((err: unknown) => {
      t.comment(`the unsent count stayed at ${last} bytes`);
      throw err;
    });
    for (const core of quiet) (core.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const first = await Promise.race(quiet.map((c) => c.closed));
    t.equal(first.code, 1006, 'the core holding the assignment it did not read is closed');
    t.equal((await honest.request({ type: 'assign', target_id: target }, 15_000)).type, 'assignment', 'then the reading core is assigned');
  });
}
