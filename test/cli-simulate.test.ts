/**
 * `stream-coordinator simulate` against a real server whose message rate is low: unpaced, its
 * cores are refused as rate_limited (before the server reads the message's id) and must send
 * the same message again and carry on, instead of waiting for a reply that never comes; paced
 * under the limit, nothing is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { simulate, type SimulateOptions } from '../src/cli/simulate';
import { coreFixture, type CoreFixture } from './helpers/core';
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

const run = (ratePerS: number): ReturnType<typeof simulate> => {
  const out = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;
  out.resume();
  const o: SimulateOptions = { url: f.wsUrl, engineKey: f.engineKey, donorToken: f.donor, caFile, cores: 1, frameBytes: 1024, checkpointEvery: 5, checkpointsPerAssignment: 2, errorRate: 0, durationS: 3, ratePerS, targetId: target, out };
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
