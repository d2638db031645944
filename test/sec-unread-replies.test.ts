/**
 * A core that does not read its replies cannot make a node hold assignment after
 * assignment: past core.maxUnsentBeforeAssignBytes of unread replies, assign is refused
 * (rate_limited) until the core reads. On both transports.
 */
import t from 'tap';
import { coreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { eventually } from './helpers/server';
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
