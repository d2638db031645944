/**
 * Assignment choice (PROTOCOL §2 "Assignment"): a manager by the managers' weights, then
 * one of its targets by the targets' weights, then that target's ready stream with the
 * fewest committed frames, oldest first on ties.
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  // One client does thousands of round trips: lift the per-socket message rate.
  f = await coreFixture({ 'core.messagesPerSecond': 100000, 'log.level': 'warn' });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

/** Chi-square critical value for 2 degrees of freedom at significance 0.001. */
const CHI2_CRIT_2DF_0001 = 13.82;

t.test('two-level weighted choice: managers 1:3, then targets 1:2 within the second manager', async (t) => {
  const N = 2000;
  // Manager A is the fixture's (weight 1); manager B gets weight 3 through PATCH.
  const bName = 'weighty';
  const b = (await f.api<{ token: string }>('POST', '/v1/users', f.admin, { name: bName, role: 'manager' }, 201)).token;
  const patched = await f.api<{ weight: number }>('PATCH', `/v1/users/${bName}`, f.admin, { weight: 3 }, 200);
  t.equal(patched.weight, 3, 'PATCH sets the weight');
  const aName = (await f.api<{ name: string }>('GET', '/v1/me', f.manager, undefined, 200)).name;
  const users = await f.api<{ users: Array<{ name: string; weight: number }> }>('GET', '/v1/users', f.admin, undefined, 200);
  t.equal(users.users.find((u) => u.name === aName)?.weight, 1, 'manager A has weight 1');

  const tA = await f.target({ weight: 1 });
  const tB1 = await f.target({ weight: 1 }, b);
  const tB2 = await f.target({ weight: 2 }, b);
  // Two streams each: assign → stop puts the stream back, so a target never runs dry.
  for (const [tgt, token] of [[tA, f.manager], [tB1, b], [tB2, b]] as const) {
    await f.stream(tgt, undefined, token);
    await f.stream(tgt, undefined, token);
  }
  const expected = new Map([
    [tA, 0.25],
    [tB1, 0.25],
    [tB2, 0.5],
  ]);
  const names = new Map([
    [tA, 'A/t1 (w1)'],
    [tB1, 'B/t1 (w1)'],
    [tB2, 'B/t2 (w2)'],
  ]);

  const c = await f.client();
  t.teardown(() => c.close());
  const counts = new Map<string, number>([...expected.keys()].map((k) => [k, 0]));
  const started = process.hrtime.bigint();
  let assignNs = 0n;
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    const a = await c.assign();
    assignNs += process.hrtime.bigint() - t0;
    if (!counts.has(a.targetId)) throw new Error(`assigned a stream of an unexpected target ${a.targetId}`);
    counts.set(a.targetId, counts.get(a.targetId)! + 1);
    await c.stop();
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const assignMs = Number(assignNs) / 1e6;
  t.comment(`${N} assign+stop round trips in ${ms.toFixed(0)} ms (${(ms / N).toFixed(2)} ms each: assign ${(assignMs / N).toFixed(2)} ms, stop ${((ms - assignMs) / N).toFixed(2)} ms)`);
  // No timing assertion (it would flake on a loaded machine); the cost is store-bound: an
  // assign reads the stream and its seed files, a stop writes a fragment and the donor's totals.

  let chi2 = 0;
  const shares: string[] = [];
  for (const [tgt, p] of expected) {
    const o = counts.get(tgt)!;
    const e = N * p;
    chi2 += (o - e) ** 2 / e;
    shares.push(`${names.get(tgt)}: ${o}/${N} = ${(o / N).toFixed(4)} (expected ${p})`);
  }
  t.comment(`observed shares: ${shares.join('; ')}`);
  const mA = counts.get(tA)! / N;
  t.comment(`manager shares: A ${mA.toFixed(4)} (expected 0.25), B ${(1 - mA).toFixed(4)} (expected 0.75); within B: t1 ${(counts.get(tB1)! / (counts.get(tB1)! + counts.get(tB2)!)).toFixed(4)} (expected 1/3)`);
  t.comment(`chi-square = ${chi2.toFixed(3)} (2 degrees of freedom; critical value at p = 0.001: ${CHI2_CRIT_2DF_0001})`);
  t.ok(chi2 < CHI2_CRIT_2DF_0001, `observed target shares fit 0.25/0.25/0.5 (chi-square ${chi2.toFixed(3)} < ${CHI2_CRIT_2DF_0001})`);
  for (const tgt of expected.keys()) t.ok(counts.get(tgt)! > 0, `${names.get(tgt)} was chosen`);

  // Leave nothing public behind for the next test.
  for (const [tgt, token] of [[tA, f.manager], [tB1, b], [tB2, b]] as const) await f.api('PATCH', `/v1/targets/${tgt}`, token, { stage: 'disabled' }, 200);
});

t.test('within a target: the stream with the fewest committed frames, oldest first on ties', async (t) => {
  // Private: only assigned when named, so no other target competes.
  const target = await f.target({ stage: 'private' });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push(await f.stream(target));
    // Distinct creation milliseconds make "oldest" unambiguous.
    await new Promise((r) => setTimeout(r, 5));
  }
  const [s1, s2, s3] = ids as [string, string, string];
  const c = await f.client();
  t.teardown(() => c.close());
  const frames = async (id: string): Promise<number> => (await f.api<{ frames: number }>('GET', `/v1/streams/${id}`, f.manager, undefined, 200)).frames;
  const commit = async (n: number): Promise<void> => {
    await c.sendFrames([{ name: 'frames.xtc', data: Buffer.alloc(64, n) }], n);
    await c.checkpoint([{ name: 'state.xml', data: Buffer.from(`cp ${n}`) }]);
  };

  let a = await c.assign(target);
  t.equal(a.streamId, s1, 'all at 0 frames: the oldest (s1)');
  await commit(2);
  await c.stop();

  a = await c.assign(target);
  t.equal(a.streamId, s2, 's2 and s3 at 0 frames, s1 at 2: the older of the two (s2)');
  await commit(2);
  await c.stop();
  t.same([await frames(s1), await frames(s2), await frames(s3)], [2, 2, 0], 'frames committed to two of the three');

  a = await c.assign(target);
  t.equal(a.streamId, s3, 'the stream with 0 frames (s3) is chosen');
  await c.stop();
  a = await c.assign(target);
  t.equal(a.streamId, s3, 'a stop without commit leaves it the one with the fewest frames');
  await commit(3);
  await c.stop();

  a = await c.assign(target);
  t.equal(a.streamId, s1, 'frames 2, 2, 3: the oldest of the two at 2 (s1)');
  await commit(5);
  await c.stop();
  a = await c.assign(target);
  t.equal(a.streamId, s2, 'frames 7, 2, 3: the fewest (s2)');
  t.equal(a.frames, 2);
  await commit(1);
  await c.stop();
  a = await c.assign(target);
  t.equal(a.streamId, s2, 'frames 7, 3, 3: tie at 3, the older (s2)');
  await c.stop();
});
