/**
 * `stream-coordinator simulate` against a real server whose message rate is low: unpaced, its
 * cores are refused as rate_limited (before the server reads the message's id) and must send
 * the same message again and carry on, instead of waiting for a reply that never comes; paced
 * under the limit, nothing is refused. A stream its manager stops under a core ends that
 * assignment only: the core asks for another. A socket cut under a core (a node restarting)
 * costs a reconnect and a resume, not the core.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { simulate, type SimulateOptions } from '../src/cli/simulate';
import { coreFixture, type CoreFixture } from './helpers/core';
import { eventually, startTestServer } from './helpers/server';
import { freePort } from '../src/provision/exec';
import { stopStack } from '../test-support/stack';
import { tempDir } from '../test-support/temp';

let f: CoreFixture;
let caFile: string;
let target: string;
t.before(async () => {
  f = await coreFixture({ 'core.messagesPerSecond': 20 });
  target = await f.target();
  for (let i = 0; i < 3; i++) await f.stream(target);
  caFile = path.join(tempDir('simulate-'), 'ca.pem');
  fs.writeFileSync(caFile, f.ts.ca);
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const run = (ratePerS: number, extra: Partial<SimulateOptions> = {}): ReturnType<typeof simulate> => {
  const out = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;
  out.resume();
  const o: SimulateOptions = { url: f.wsUrl, engineKey: f.engineKey, donorToken: f.donor, caFile, cores: 1, frameBytes: 1024, checkpointEvery: 5, checkpointsPerAssignment: 2, errorRate: 0, durationS: 3, ratePerS, targetId: target, out, ...extra };
  return simulate(o);
};

t.test('unpaced past core.messagesPerSecond: refused messages are sent again and the run ends on time', async (t) => {
  const started = Date.now();
  const c = await run(0);
  t.ok(Date.now() - started < 8000, `ended ${Date.now() - started} ms after it began (duration 3 s)`);
  t.ok(c.refused > 0, `${c.refused} messages refused as rate_limited`);
  t.equal(c.errors, 0, 'no errors: each refused frame was sent again with the same seq');
  t.ok(c.commits > 0, `${c.commits} commits`);
});

t.test('paced under the limit: nothing refused', async (t) => {
  const c = await run(10);
  t.equal(c.refused, 0);
  t.equal(c.errors, 0);
  t.ok(c.frames > 0, `${c.frames} frames`);
});

t.test("a core whose own buffer is full (buffer_full without a delay) ends with an error instead of sending the frame for good", async (t) => {
  const small = await coreFixture({ 'core.maxBufferBytes': 4096 });
  t.teardown(() => small.ts.close());
  const own = await small.target();
  await small.stream(own);
  const out = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;
  out.resume();
  const started = Date.now();
  // 5 frames of 2 KiB between checkpoints: the second passes core.maxBufferBytes (each file counts 384 bytes more).
  const c = await simulate({ url: small.wsUrl, engineKey: small.engineKey, donorToken: small.donor, caFile, cores: 1, frameBytes: 2048, checkpointEvery: 5, checkpointsPerAssignment: 2, errorRate: 0, durationS: 10, ratePerS: 0, targetId: own, out });
  t.equal(c.errors, 1, 'the core ended on it');
  t.equal(c.refused, 0, 'not sent again');
  t.ok(Date.now() - started < 5000, `at once (${Date.now() - started} ms), not at the end of the run`);
});

t.test("the node's spill space spent (buffer_full with a delay): cores checkpoint what they buffered and go on", async (t) => {
  const tight = await coreFixture({ 'core.memoryBufferBytes': 1024, 'memory.diskBudgetBytes': 30000 });
  t.teardown(() => tight.ts.close());
  const own = await tight.target();
  for (let n = 0; n < 2; n++) await tight.stream(own);
  const out = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;
  out.resume();
  const c = await simulate({ url: tight.wsUrl, engineKey: tight.engineKey, donorToken: tight.donor, caFile, cores: 2, frameBytes: 2048, checkpointEvery: 10, checkpointsPerAssignment: 1000, errorRate: 0, durationS: 5, ratePerS: 0, targetId: own, out });
  t.equal(c.errors, 0);
  t.ok(c.refused > 0, `${c.refused} frames refused buffer_full`);
  t.ok(c.commits > 2, `${c.commits} commits: the cores did not wait on each other`);
  const { streams } = await tight.api<{ streams: Array<{ frames: number }> }>('GET', `/v1/targets/${own}/streams`, tight.manager);
  t.equal(c.frames, streams.reduce((sum, s) => sum + s.frames, 0), 'every counted frame committed');
});

t.test('a stream stopped by its manager under a core: the core goes on with another stream', async (t) => {
  const own = await f.target();
  for (let i = 0; i < 3; i++) await f.stream(own);
  const running = run(20, { targetId: own, durationS: 5, checkpointsPerAssignment: 1000 });
  const stopped: string[] = [];
  // Stop whichever stream the core holds, twice, while it sends frames.
  for (let round = 0; round < 2; round++) {
    const active = await eventually(async () => {
      const live = await f.api<{ targets: Record<string, Array<{ stream_id: string }>> }>('GET', '/v1/active-streams', f.manager);
      return (live.targets[own] ?? []).find((i) => !stopped.includes(i.stream_id))?.stream_id;
    }, 5000, 'a stream in progress');
    await f.api('POST', `/v1/streams/${active}/stop`, f.manager, undefined, 200);
    stopped.push(active);
    await new Promise((r) => setTimeout(r, 500));
  }
  const c = await running;
  t.equal(c.errors, 0, 'no core ended on it');
  t.equal(c.takenBack, 2, 'both assignments taken back are counted');
  t.ok(c.assignments >= 3, `the core asked for another stream each time (${c.assignments} assignments)`);
  await framesCountedOnce(t, c, own);
});

/** Waits until a core works on one of the target's streams. */
async function streamInProgress(target: string): Promise<void> {
  await eventually(async () => {
    const live = await f.api<{ targets: Record<string, unknown[]> }>('GET', '/v1/active-streams', f.manager);
    return (live.targets[target] ?? []).length > 0;
  }, 5000, 'a stream in progress');
}

/** A TCP proxy to `port` whose connections can all be cut at once (a node restarting, a network cut); new ones are taken. */
async function cuttableProxy(port: number): Promise<{ port: number; cut: () => void; close: () => Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => open.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      for (const s of open) s.destroy();
    },
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        for (const s of open) s.destroy();
      }),
  };
}

t.test('a socket cut under a core: it reconnects, resumes its stream and goes on', async (t) => {
  const own = await f.target();
  for (let i = 0; i < 2; i++) await f.stream(own);
  const proxy = await cuttableProxy(f.ts.server.port);
  t.teardown(() => proxy.close());
  const url = f.wsUrl.replace(/:\d+\//, `:${proxy.port}/`);
  const running = run(20, { url, targetId: own, durationS: 5, checkpointsPerAssignment: 1000 });
  await streamInProgress(own);
  await new Promise((r) => setTimeout(r, 500));
  proxy.cut();
  const c = await running;
  t.equal(c.errors, 0, 'no core ended on it');
  t.equal(c.reconnects, 1, 'one reconnect');
  t.equal(c.assignments, 1, 'the stream was resumed, not assigned again');
  t.ok(c.commits > 0, `${c.commits} commits`);
  await framesCountedOnce(t, c, own);
});

t.test('a socket cut while a slow core waits between messages: the client resumes on its own, and the frames it lost are not counted', async (t) => {
  const own = await f.target();
  await f.stream(own);
  const proxy = await cuttableProxy(f.ts.server.port);
  t.teardown(() => proxy.close());
  const url = f.wsUrl.replace(/:\d+\//, `:${proxy.port}/`);
  // A message every 2 s, a checkpoint every 2 frames: the cut falls half a second after the
  // first frame past the first checkpoint, and the client has resumed long before the next
  // message, so no request of the core fails; that frame is lost with the socket.
  const running = run(0.5, { url, targetId: own, durationS: 12, checkpointEvery: 2, checkpointsPerAssignment: 1000 });
  await eventually(async () => (await f.api<{ streams: Array<{ frames: number }> }>('GET', `/v1/targets/${own}/streams`, f.manager)).streams[0]?.frames === 2, 15_000, 'the first checkpoint');
  await new Promise((r) => setTimeout(r, 2500));
  proxy.cut();
  const c = await running;
  t.equal(c.errors, 0, 'no core ended on it');
  t.equal(c.reconnects, 1, 'the reconnect is counted though no request failed');
  t.equal(c.assignments, 1, 'the stream was resumed');
  await framesCountedOnce(t, c, own);
});

t.test('a node restarting under a core (it closes with 1001): the core reconnects, resumes and goes on', async (t) => {
  const own = await f.target();
  for (let i = 0; i < 2; i++) await f.stream(own);
  const port = await freePort();
  const same = { 'server.port': port, 'mongodb.database': f.ts.settings.mongodb.database, 'core.messagesPerSecond': 20 };
  const first = await startTestServer(same);
  const url = f.wsUrl.replace(/:\d+\//, `:${port}/`);
  const running = run(20, { url, targetId: own, durationS: 8, checkpointsPerAssignment: 1000 });
  await streamInProgress(own);
  await new Promise((r) => setTimeout(r, 500));
  await first.close();
  const second = await startTestServer(same);
  t.teardown(() => second.close());
  const c = await running;
  t.equal(c.errors, 0, 'no core ended on it');
  t.ok(c.reconnects >= 1, `${c.reconnects} reconnects`);
  t.equal(c.assignments, 1, 'the stream was resumed on the restarted node, not assigned again');
  t.ok(c.commits > 0, `${c.commits} commits`);
  await framesCountedOnce(t, c, own);
});

/**
 * The frames a run counts are those its target's streams committed (a core checkpoints what it
 * has sent when the run ends): frames the server discarded with a dropped socket are not
 * counted, though the core sends that many again after its resume.
 */
async function framesCountedOnce(t: Test, c: Awaited<ReturnType<typeof simulate>>, target: string): Promise<void> {
  const { streams } = await f.api<{ streams: Array<{ frames: number }> }>('GET', `/v1/targets/${target}/streams`, f.manager);
  const committed = streams.reduce((sum, s) => sum + s.frames, 0);
  t.equal(c.frames, committed, `${c.frames} frames counted, ${committed} committed`);
}
