/**
 * Three coordinator nodes as separate processes (CLI `serve`, own node id, port and data
 * directory) on one MongoDB database and one Redis, behind Debian's nginx terminating TLS
 * and balancing WebSocket upgrades by open connections (docs/scaling.md):
 * - 1,000 cores connected through nginx in batches ask for work at once, more cores than
 *   streams: no stream is held by two cores at a time;
 * - a manager's stop, a stream delete, a target disable and a key revocation sent to one
 *   node reach cores held by the others (latency per event measured, p99 reported);
 * - `kill -9` of a node under frame + checkpoint load: its cores reconnect through nginx to
 *   the others and resume within core.resumeGraceS, the streams of cores that never came
 *   back are assignable again within the lease TTL (plus one pool sweep), and every
 *   acknowledged commit is in the store;
 * - drain (SIGTERM): the node stops accepting, tells its cores to reconnect elsewhere
 *   keeping their leases, and the cores resume on the remaining node.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { CoreError, type Assignment, type CoreClient } from '../src/client';
import type { StreamDoc } from '../src/model';
import { committedPartitions } from '../src/store/partition-pages';
import { eventually, request } from './helpers/server';
import { inBatches, percentile, startCluster, type Cluster } from './helpers/nodes';
import { stopStack } from '../test-support/stack';

const LEASE_TTL_S = 30;
const POOL_SWEEP_S = 5;
const RESUME_GRACE_S = 30;
const STATE = 'state.xml';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let c: Cluster;

t.before(async () => {
  c = await startCluster({
    nodes: 3,
    // 1,000 cores through nginx: 2,000 proxied connections plus the API's.
    workerConnections: 4096,
    overrides: {
      'core.leaseTtlS': LEASE_TTL_S,
      'core.leaseRenewS': 2,
      'core.resumeGraceS': RESUME_GRACE_S,
      'storage.poolSweepS': POOL_SWEEP_S,
    },
  });
});
t.teardown(async () => {
  await c?.stop();
  await stopStack();
});

/** "lease lost" warnings in the nodes' logs (a lease that lapsed under a node). */
function leaseLost(): number {
  return c.nodes.reduce((n, x) => n + (x.p.output().match(/"msg":"lease lost"/g)?.length ?? 0), 0);
}

/** Cores per node id. */
function spread(cores: CoreClient[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of cores) m.set(x.welcome!.node, (m.get(x.welcome!.node) ?? 0) + 1);
  return m;
}

t.test('1,000 concurrent assigns across three nodes: no stream held by two cores', async (t) => {
  const CORES = 1000;
  const STREAMS = 500;
  const target = await c.target();
  const streams = await inBatches(Array.from({ length: STREAMS }), 25, () => c.stream(target));
  t.equal(new Set(streams).size, STREAMS, `${STREAMS} streams created`);

  const t0 = Date.now();
  // A loaded 2-CPU machine answers 1,000 assigns (500 seed reads) in about a minute.
  const cores = await inBatches(Array.from({ length: CORES }), 100, () => c.client({ requestTimeoutMs: 180_000 }));
  t.teardown(() => Promise.all(cores.map((x) => x.close())));
  const byNode = spread(cores);
  t.comment(`${CORES} cores connected through nginx in batches of 100 in ${Date.now() - t0} ms: ${JSON.stringify([...byNode.values()])} per node`);
  t.equal(byNode.size, 3, 'the cores landed on all three nodes');
  t.same(new Set(byNode.keys()), new Set(c.nodes.map((n) => n.id)), "the welcome's node ids are the three processes'");

  /** All `who` assign at once; returns the holders and how the rest failed. */
  const race = async (who: CoreClient[]): Promise<{ held: Map<CoreClient, string>; codes: string[]; ms: number }> => {
    const start = Date.now();
    const got = await Promise.allSettled(who.map((x) => x.assign(target)));
    const held = new Map<CoreClient, string>();
    const codes: string[] = [];
    got.forEach((r, i) => {
      if (r.status === 'fulfilled') held.set(who[i]!, r.value.streamId);
      else codes.push(r.reason instanceof CoreError ? r.reason.code : String(r.reason));
    });
    return { held, codes, ms: Date.now() - start };
  };

  const r1 = await race(cores);
  const ids1 = [...r1.held.values()];
  t.comment(`round 1: ${CORES} concurrent assigns for ${STREAMS} streams in ${r1.ms} ms`);
  t.equal(ids1.length, STREAMS, `${STREAMS} cores got a stream`);
  t.equal(new Set(ids1).size, ids1.length, '0 double assignments: every held stream has one core');
  t.same(new Set(codes(r1.codes)), new Set(['no_streams_available']), `the other ${CORES - STREAMS} got no_streams_available (${JSON.stringify(codes(r1.codes))})`);
  const holderNodes = spread([...r1.held.keys()]);
  t.equal(holderNodes.size, 3, `holders on every node: ${JSON.stringify([...holderNodes.values()])}`);
  t.comment(`node log lines "lease lost" so far: ${leaseLost()}`);
  const listed = await c.api<{ streams: Array<{ id: string; active: boolean }> }>('GET', `/v1/targets/${target}/streams`, c.manager, undefined, 200);
  t.equal(listed.streams.filter((s) => s.active).length, STREAMS, 'the store shows every stream active once');

  // Half the holders let go; the losers of round 1 race for those streams.
  const holders = [...r1.held.keys()];
  const leaving = holders.slice(0, STREAMS / 2);
  const staying = new Map(holders.slice(STREAMS / 2).map((x) => [x, r1.held.get(x)!]));
  await Promise.allSettled(leaving.map((x) => x.stop()));
  const losers = cores.filter((x) => !r1.held.has(x));
  const r2 = await race(losers);
  t.comment(`round 2: ${losers.length} concurrent assigns for ${STREAMS / 2} released streams in ${r2.ms} ms`);
  t.equal(r2.held.size, STREAMS / 2, `${STREAMS / 2} of the ${losers.length} got one`);
  const now = [...staying.values(), ...r2.held.values()];
  t.equal(new Set(now).size, STREAMS, '0 double assignments: the streams still held and the newly assigned ones are all distinct');
  t.same(new Set(codes(r2.codes)), new Set(['no_streams_available']), 'the rest got no_streams_available');

  const stopErrors = (await Promise.allSettled([...staying.keys(), ...r2.held.keys()].map((x) => x.stop()))).filter((r) => r.status === 'rejected');
  t.equal(stopErrors.length, 0, 'every holder still held its stream at the end');
});

/** The distinct error codes (for a compact assertion). */
function codes(list: string[]): string[] {
  return [...new Set(list)];
}

t.test('stop, delete, disable and key revocation sent to one node reach cores on the others', async (t) => {
  const STOPS = 30;
  const DELETES = 15;
  const DISABLES = 15;
  const REVOKES = 15;
  const samples: Record<string, number[]> = { stop: [], delete: [], disable: [], revoke: [] };

  /** A node other than the one `core` is connected to. */
  const other = (core: CoreClient): string => {
    const n = c.nodes.filter((x) => x.alive() && x.id !== core.welcome!.node);
    return n[crypto.randomInt(n.length)]!.url;
  };
  /** Cores through nginx each holding a stream of a fresh target. */
  const holding = async (n: number): Promise<{ target: string; cores: CoreClient[]; held: Assignment[] }> => {
    const target = await c.target();
    await inBatches(Array.from({ length: n }), 15, () => c.stream(target));
    const cores = await inBatches(Array.from({ length: n }), 50, () => c.client());
    t.teardown(() => Promise.all(cores.map((x) => x.close())));
    const held = await Promise.all(cores.map((x) => x.assign(target)));
    return { target, cores, held };
  };
  const stopEvent = (core: CoreClient, reason: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no stop ${reason} within 30 s`)), 30_000);
      core.on('stop', (d: { reason: string }) => {
        if (d.reason !== reason) return;
        clearTimeout(timer);
        resolve(Date.now());
      });
    });

  // Manager's stop and stream delete, one at a time, each sent to a node the core is not on.
  const s = await holding(STOPS + DELETES);
  for (let i = 0; i < STOPS + DELETES; i++) {
    const core = s.cores[i]!;
    const stream = s.held[i]!.streamId;
    const del = i >= STOPS;
    const seen = stopEvent(core, del ? 'stream_deleted' : 'stream_stopped');
    const base = other(core);
    const t0 = Date.now();
    if (del) await c.api('DELETE', `/v1/streams/${stream}`, c.manager, undefined, 204, base);
    else await c.api('POST', `/v1/streams/${stream}/stop`, c.manager, undefined, 200, base);
    samples[del ? 'delete' : 'stop']!.push((await seen) - t0);
  }

  // A target disabled on one node: every core holding one of its streams, on any node.
  const d = await holding(DISABLES);
  t.ok(spread(d.cores).size >= 2, 'the disabled target’s cores sit on several nodes');
  const disabledAt = Date.now();
  const seenAll = d.cores.map((x) => stopEvent(x, 'target_disabled'));
  await c.api('PATCH', `/v1/targets/${d.target}`, c.manager, { stage: 'disabled' }, 200, c.nodes[0]!.url);
  for (const at of await Promise.all(seenAll)) samples.disable!.push(at - disabledAt);
  const offNode0 = d.cores.filter((x) => x.welcome!.node !== c.nodes[0]!.id).length;
  t.ok(offNode0 > 0, `${offNode0} of the disabled target's cores were on other nodes than the one that took the PATCH`);

  // A revoked engine key: every socket opened with it, on every node, is closed.
  const key = await c.api<{ id: string; key: string }>('POST', '/v1/engine-keys', c.admin, { engine: 'openmm', description: 'to revoke' }, 201);
  const rc = await inBatches(Array.from({ length: REVOKES }), 15, () => c.client({ engineKey: key.key }));
  const closed = rc.map((x) => new Promise<{ at: number; code: number }>((resolve) => x.once('disconnect', (e: { code: number }) => resolve({ at: Date.now(), code: e.code }))));
  const revokedAt = Date.now();
  await c.api('DELETE', `/v1/engine-keys/${key.id}`, c.admin, undefined, 204, c.nodes[1]!.url);
  const closes = await Promise.race([Promise.all(closed), sleep(30_000).then(() => undefined)]);
  t.ok(closes, 'every socket of the revoked key closed within 30 s');
  for (const x of closes ?? []) samples.revoke!.push(x.at - revokedAt);
  t.same(new Set((closes ?? []).map((x) => x.code)), new Set([1008]), 'closed with 1008');
  t.ok(rc.filter((x) => x.welcome!.node !== c.nodes[1]!.id).length > 0, 'some of those sockets were on other nodes than the one that took the DELETE');

  const all = Object.values(samples).flat();
  for (const [kind, v] of Object.entries(samples)) {
    t.comment(`${kind}: n=${v.length} p50=${percentile(v, 50)} ms p99=${percentile(v, 99)} ms max=${Math.max(...v)} ms`);
  }
  t.comment(`all cross-node events: n=${all.length} p50=${percentile(all, 50)} ms p99=${percentile(all, 99)} ms (issue goal: p99 < 1000 ms)`);
  t.equal(all.length, STOPS + DELETES + DISABLES + REVOKES, 'every event was seen by its core');
  t.ok(percentile(all, 99) < 5000, `p99 under the test's generous 5 s bound on a loaded machine (${percentile(all, 99)} ms)`);
});

/** What the cores were told about one stream's commits. */
interface Acked {
  /** partition → checkpoint bytes of every `committed` received. */
  parts: Map<number, Buffer>;
}

t.test('kill -9 of a node under load: its cores resume elsewhere, orphaned streams return, nothing acknowledged is lost', async (t) => {
  const RECONNECTING = 24;
  const ONE_SHOT = 12;
  const KILL_AFTER_COMMITS = 60;
  const victim = c.nodes[0]!;
  const target = await c.target();
  const streams = await inBatches(Array.from({ length: RECONNECTING + ONE_SHOT }), 12, () => c.stream(target));
  const acked = new Map<string, Acked>(streams.map((id) => [id, { parts: new Map() }]));

  const cores: Array<{ core: CoreClient; reconnect: boolean }> = [];
  for (let i = 0; i < RECONNECTING + ONE_SHOT; i++) {
    const reconnect = i < RECONNECTING;
    cores.push({ core: await c.client({ reconnect, maxReconnectDelayMs: 500 }), reconnect });
  }
  t.teardown(() => Promise.all(cores.map((x) => x.core.close())));
  await Promise.all(cores.map((x) => x.core.assign(target)));
  const onVictim = cores.filter((x) => x.core.welcome!.node === victim.id);
  const resumers = onVictim.filter((x) => x.reconnect);
  const orphans = onVictim.filter((x) => !x.reconnect).map((x) => x.core.assignment!.streamId);
  t.ok(resumers.length > 0 && orphans.length > 0, `the victim holds ${resumers.length} reconnecting and ${orphans.length} one-shot cores`);

  let commits = 0;
  let killedAt = 0;
  let stopping = false;
  const resumedAfter: number[] = [];
  const lost: unknown[] = [];
  const unexpected: unknown[] = [];
  const leaseErrors: unknown[] = [];
  const cycle = async (core: CoreClient): Promise<void> => {
    const a = core.assignment;
    if (!a) throw new CoreError('not_assigned', 'the server withdrew the assignment (stop lease_lost)');
    await core.sendFrames([{ name: 'frames.xtc', data: crypto.randomBytes(500 + crypto.randomInt(2000)) }], 1 + crypto.randomInt(3));
    const state = Buffer.from(`state ${a.streamId} ${crypto.randomBytes(8).toString('hex')}`);
    const r = await core.checkpoint([{ name: STATE, data: state }]);
    acked.get(a.streamId)!.parts.set(r.partition, state);
    commits++;
  };
  const loops = cores.map(async ({ core, reconnect }) => {
    // Listen before the kill: the resume may come before the failed request is noticed.
    const back = reconnect
      ? new Promise<'resumed' | 'lost'>((resolve) => {
          core.once('resumed', () => {
            resumedAfter.push(Date.now() - killedAt);
            resolve('resumed');
          });
          core.once('lost', (err: unknown) => {
            lost.push(err);
            resolve('lost');
          });
        })
      : undefined;
    while (!stopping) {
      try {
        await cycle(core);
      } catch (err) {
        if (!(err instanceof CoreError && err.code === 'disconnected' && killedAt)) {
          (err instanceof CoreError && (err.code === 'not_assigned' || err.code === 'internal') ? leaseErrors : unexpected).push(`${(err as Error).message} (core on ${core.welcome?.node}, ${reconnect ? 'reconnecting' : 'one-shot'}, ${killedAt ? `${Date.now() - killedAt} ms after the kill` : 'before the kill'})`);
          return;
        }
        if (!back) return;
        const how = await Promise.race([back, sleep(RESUME_GRACE_S * 1000 + 5000).then(() => 'timeout' as const)]);
        if (how !== 'resumed') {
          unexpected.push(new Error(`core did not resume: ${how}`));
          return;
        }
      }
      if (commits >= KILL_AFTER_COMMITS && !killedAt) {
        killedAt = Date.now();
        victim.p.child.kill('SIGKILL');
      }
    }
  });

  await eventually(async () => killedAt > 0, 120_000, `${KILL_AFTER_COMMITS} commits before the kill`);
  t.same(await victim.p.exited, { code: null, signal: 'SIGKILL' }, 'the victim died of SIGKILL');
  await eventually(async () => resumedAfter.length + lost.length >= resumers.length, RESUME_GRACE_S * 1000 + 10_000, 'every reconnecting core of the victim back');
  t.same(lost, [], 'no reconnecting core lost its stream');
  t.comment(`kill -9 → resumed through nginx on another node: n=${resumedAfter.length} max=${Math.max(...resumedAfter)} ms p50=${percentile(resumedAfter, 50)} ms (core.resumeGraceS ${RESUME_GRACE_S} s)`);
  t.ok(Math.max(...resumedAfter) < RESUME_GRACE_S * 1000, 'all resumed within core.resumeGraceS');
  t.ok(resumers.every((x) => x.core.welcome!.node !== victim.id), 'the resumed cores now talk to a surviving node');

  // The streams of the one-shot cores come back once their leases lapse and a sweep runs.
  // One fresh core per orphan, each keeping what it gets (a released stream would be
  // picked again before the others: fewest frames first).
  const fresh = await Promise.all(orphans.map(() => c.client()));
  t.teardown(() => Promise.all(fresh.map((x) => x.close())));
  const regained: string[] = [];
  const back = await eventually(
    async () => {
      for (const x of fresh.filter((y) => !y.assignment)) {
        try {
          regained.push((await x.assign(target)).streamId);
        } catch (err) {
          if (!(err instanceof CoreError) || err.code !== 'no_streams_available') throw err;
        }
      }
      return regained.length === orphans.length ? Date.now() - killedAt : undefined;
    },
    (LEASE_TTL_S + POOL_SWEEP_S) * 1000 + 15_000,
    'the orphaned streams assignable again',
  );
  t.comment(`orphaned streams (${orphans.length}) assignable again ${back} ms after the kill (lease TTL ${LEASE_TTL_S} s, pool sweep every ${POOL_SWEEP_S} s)`);
  // Generous: the lease lapses up to leaseRenewS before the kill plus TTL, then waits for a
  // sweep that runs late on a loaded machine.
  t.ok(back <= (LEASE_TTL_S + 3 * POOL_SWEEP_S) * 1000, `within the lease TTL plus three sweeps (${back} ms)`);
  t.same(new Set(regained), new Set(orphans), 'only the orphaned streams were free (everything else is held)');

  stopping = true;
  await Promise.all(loops);
  t.comment(`node log lines "lease lost": ${leaseLost()}`);
  t.same(unexpected, [], 'no failure but disconnects caused by the kill and lease losses');
  // Once failed here: a checkpoint in flight on the killed node landed after its core had
  // resumed elsewhere, so the resumed core's next commit conflicted. A resume now raises the
  // stream's fence (StreamDoc.fence), which the late commit point cannot match.
  for (const e of leaseErrors) t.comment(`lease error: ${String(e)}`);
  t.same(leaseErrors, [], 'no core lost its assignment under a live node');
  t.comment(`${commits} commits acknowledged in all`);

  // Every acknowledged commit is in the store, the latest checkpoint byte for byte.
  const docs = new Map((await c.db.collection<StreamDoc>('streams').find({ _id: { $in: streams } }).toArray()).map((s) => [s._id, s]));
  let missing = 0;
  let badBytes = 0;
  for (const id of streams) {
    const rec = acked.get(id)!;
    const doc = docs.get(id)!;
    // Its own list and its pages.
    const listed = new Set((await committedPartitions(c.db, doc))?.map((p) => p.n));
    for (const n of rec.parts.keys()) {
      if (listed.has(n)) continue;
      missing++;
      t.comment(`stream ${id}: acknowledged partition ${n} is not listed (listed: ${[...listed].slice(-8).join(',')}, frames ${doc.frames})`);
    }
    const last = Math.max(0, ...rec.parts.keys());
    if (last > 0) {
      const r = await request(`${c.url}/v1/streams/${id}/partitions/${last}/checkpoint/${STATE}`, { ca: c.ca, headers: { authorization: `Bearer ${c.manager}` } });
      if (r.status !== 200 || !r.body.equals(rec.parts.get(last)!)) badBytes++;
    }
  }
  const total = [...acked.values()].reduce((n, r) => n + r.parts.size, 0);
  t.equal(missing, 0, `all ${total} acknowledged partitions are listed on their streams in MongoDB`);
  t.equal(badBytes, 0, 'the latest acknowledged checkpoint of every stream reads back byte for byte');
  await Promise.all([...cores.map((x) => x.core), ...fresh].filter((x) => x.assignment).map((x) => x.stop().catch(() => undefined)));
});

t.test('drain with SIGTERM: the node tells its cores to reconnect elsewhere and they resume on the other node', async (t) => {
  const drained = c.nodes[1]!;
  const remaining = c.nodes[2]!;
  t.ok(drained.alive() && remaining.alive(), 'two nodes left');
  const target = await c.target();
  const N = 12;
  await inBatches(Array.from({ length: N }), 12, () => c.stream(target));
  const cores = await inBatches(Array.from({ length: N }), 12, () => c.client({ reconnect: true, maxReconnectDelayMs: 500 }));
  t.teardown(() => Promise.all(cores.map((x) => x.close())));
  await Promise.all(cores.map((x) => x.assign(target)));
  const frames = await Promise.all(
    cores.map(async (x) => {
      await x.sendFrames([{ name: 'frames.xtc', data: Buffer.from('before drain') }], 2);
      return (await x.checkpoint([{ name: STATE, data: Buffer.from(`before drain ${x.assignment!.streamId}`) }])).frames;
    }),
  );
  const leaving = cores.filter((x) => x.welcome!.node === drained.id);
  t.ok(leaving.length > 0, `${leaving.length} cores on the drained node`);
  const before = new Map(leaving.map((x) => [x, x.assignment!.streamId]));
  const events = leaving.map(
    (x) =>
      new Promise<{ stop: unknown; resumedAt: number; stream: string }>((resolve) => {
        let stop: unknown;
        x.once('stop', (d: unknown) => (stop = d));
        x.once('resumed', (a: Assignment) => resolve({ stop, resumedAt: Date.now(), stream: a.streamId }));
      }),
  );
  const drainAt = Date.now();
  drained.p.child.kill('SIGTERM');
  const got = await Promise.race([Promise.all(events), sleep(30_000).then(() => undefined)]);
  t.ok(got, 'every core of the drained node resumed within 30 s');
  for (const [i, g] of (got ?? []).entries()) {
    t.same(g.stop, { reason: 'server_shutdown', reconnect: true }, `core ${i}: told to reconnect elsewhere`);
    t.equal(g.stream, before.get(leaving[i]!), `core ${i}: resumed its own stream`);
  }
  const ms = (got ?? []).map((g) => g.resumedAt - drainAt);
  t.comment(`drain → resumed on ${remaining.id}: n=${ms.length} max=${Math.max(...ms)} ms`);
  t.ok(leaving.every((x) => x.welcome!.node === remaining.id), 'they now talk to the remaining node');
  t.equal((await drained.p.exited).code, 0, 'the drained node exits 0');
  // Work goes on from the committed frames.
  const after = await Promise.all(
    leaving.map(async (x) => {
      t.equal(x.assignment!.frames, 2, 'resumed with the committed frames');
      await x.sendFrames([{ name: 'frames.xtc', data: Buffer.from('after drain') }]);
      return (await x.checkpoint([{ name: STATE, data: Buffer.from('after drain') }])).frames;
    }),
  );
  t.same(after, leaving.map(() => 3), 'each resumed core commits on top of what it had');
  t.same(frames, cores.map(() => 2));
  await Promise.all(cores.map((x) => x.stop()));
});
