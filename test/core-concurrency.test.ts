/**
 * Concurrent assignment across processes: two worker processes (CLI `serve` with
 * `server.workers: 2`) share Redis and MongoDB; 200 cores, each on its own socket, ask for
 * work at the same moment. The assign script is atomic in Redis, so no stream may be handed
 * to two cores, whichever process each core landed on.
 */
import fs from 'node:fs';
import t from 'tap';
import { CoreError } from '../src/client';
import { loadConfig } from '../src/config/settings';
import { createMongo } from '../src/store/mongo';
import { freePort } from '../src/provision/exec';
import { eventually, request, runCli, stackOverrides, writeConfig } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';
import { remoteCoreFixture } from './helpers/core';

/** Runs `fn` over `items` with at most `n` at once. */
async function inBatches<T, R>(items: T[], n: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n) out.push(...(await Promise.all(items.slice(i, i + n).map((x, j) => fn(x, i + j)))));
  return out;
}

t.teardown(stopStack);

t.test('200 cores on two worker processes assign at once: 200 distinct streams, then none', async (t) => {
  const N = 200;
  const port = await freePort();
  const overrides = await stackOverrides({ 'server.port': port, 'server.workers': 2, 'donors.registrationsPerHour': 1000, 'log.level': 'warn' });
  const p = runCli(['serve', '--config', writeConfig(overrides)]);
  t.teardown(async () => {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });
  const ca = fs.readFileSync((await getStack()).certs.caCert, 'utf8');
  const url = `https://127.0.0.1:${port}`;
  await eventually(async () => (await request(`${url}/readyz`, { ca })).status === 200, 30000, `the server ready; output:\n${p.output()}`);
  // Both workers must be up, or every core would land on the first one.
  await eventually(async () => {
    const nodes = new Set<string>();
    for (let i = 0; i < 20; i++) nodes.add((await request(`${url}/`, { ca })).json<{ node: string }>().node);
    return nodes.size === 2;
  }, 30000, 'both workers answering');

  const mongo = createMongo(loadConfig({ env: {}, overrides }));
  t.teardown(() => mongo.client.close());
  const f = await remoteCoreFixture(url, ca, mongo.db, { clientDefaults: { reconnect: false } });
  const target = await f.target();
  const streams = await inBatches(Array.from({ length: N }), 20, () => f.stream(target));
  t.equal(new Set(streams).size, N, `${N} streams created`);

  const started = Date.now();
  const cores = await inBatches(Array.from({ length: N + 1 }), 50, () => f.client());
  t.teardown(() => Promise.all(cores.map((c) => c.close())));
  const byNode = new Map<string, number>();
  for (const c of cores) byNode.set(c.welcome!.node, (byNode.get(c.welcome!.node) ?? 0) + 1);
  t.equal(byNode.size, 2, `cores spread over both processes: ${JSON.stringify([...byNode.values()])}`);

  const first = cores.slice(0, N);
  const extra = cores[N]!;
  const round = async (label: string): Promise<void> => {
    const t0 = Date.now();
    const got = await Promise.all(first.map((c) => c.assign()));
    const ids = got.map((a) => a.streamId);
    t.equal(ids.length, N, `${label}: ${N} assignments`);
    t.equal(new Set(ids).size, N, `${label}: all distinct (no stream handed to two cores)`);
    t.same([...ids].sort(), [...streams].sort(), `${label}: exactly the ${N} streams`);
    t.ok(got.every((a) => a.targetId === target && a.frames === 0), `${label}: right target, 0 frames`);
    t.comment(`${label}: ${N} concurrent assignments in ${Date.now() - t0} ms`);

    const err = await extra.assign().then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof CoreError, `${label}: the ${N + 1}st core gets an error`);
    t.equal((err as CoreError).code, 'no_streams_available', `${label}: no_streams_available`);
    t.ok(((err as CoreError).retryAfterS ?? 0) > 0, `${label}: with retry_after_s`);

    const listed = await f.api<{ streams: Array<{ id: string; active: boolean }> }>('GET', `/v1/targets/${target}/streams`, f.manager, undefined, 200);
    t.equal(listed.streams.filter((s) => s.active).length, N, `${label}: the API shows ${N} active streams`);

    await Promise.all(first.map((c) => c.stop()));
    await eventually(async () => {
      const l = await f.api<{ streams: Array<{ active: boolean }> }>('GET', `/v1/targets/${target}/streams`, f.manager, undefined, 200);
      return l.streams.every((s) => !s.active);
    }, 10000, 'no stream active after stop');
  };

  await round('round 1');
  // Stopped streams go back to the pool: the same 200 cores get all of them again.
  await round('round 2 after stop');

  // And after the second stop the 201st core is served.
  const last = await extra.assign();
  t.ok(streams.includes(last.streamId), 'after stop, a stream is assignable to the extra core');
  await extra.stop();
  t.comment(`total ${Date.now() - started} ms for connect + 2 rounds`);

  p.child.kill('SIGTERM');
  t.equal((await p.exited).code, 0, 'the group stops cleanly');
});
