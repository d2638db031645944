/**
 * Log lines clients cause are bounded per process (log.clientLinesPerSecond): before, every
 * request and every core connection wrote a line, so an anonymous flood of requests was a
 * flood of lines. Past the budget the lines are counted by message (metric and one summary
 * line a second) instead of written; the server's own lines are not limited.
 */
import t from 'tap';
import { ClientLog } from '../src/telemetry/client-log';
import { Metrics } from '../src/telemetry/metrics';
import { coreFixture } from './helpers/core';
import { tryUpgrade } from './helpers/core-raw';
import { eventually, memoryLogger, request } from './helpers/server';
import { stopStack } from '../test-support/stack';

t.teardown(stopStack);

type Line = Record<string, unknown>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Lines not written, by message, as the metric has them. */
async function skipped(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.logLinesSkipped.get()).values) out[String(v.labels.msg)] = v.value;
  return out;
}

/** The most lines of `msgs` written in any span of one second (pino's `time`, ms). */
function mostInOneSecond(lines: Line[], msgs: ReadonlySet<string>): number {
  const times = lines.filter((l) => msgs.has(String(l.msg))).map((l) => Number(l.time));
  let most = 0;
  for (const [i, start] of times.entries()) most = Math.max(most, times.slice(i).filter((x) => x < start + 1000).length);
  return most;
}

t.test('a second writes at most the budget, then one summary of what it did not', async (t) => {
  const mem = memoryLogger();
  const metrics = new Metrics();
  const clientLog = new ClientLog(mem.log, 3, metrics.logLinesSkipped, 'http');
  for (let i = 0; i < 10; i++) clientLog.info({ i }, 'request');
  clientLog.warn({}, 'closing core socket');
  mem.log.info('server line');
  t.equal(mem.lines().filter((l) => l.msg === 'request').length, 3, 'three lines written');
  t.ok(mem.lines().some((l) => l.msg === 'server line'), 'the server\'s own lines are not counted');
  t.same(await skipped(metrics), { request: 7, 'closing core socket': 1 }, 'the rest counted by message');
  await eventually(async () => mem.lines().some((l) => l.level === 40 && (l.skipped as Record<string, number> | undefined)?.request === 7), 3000, 'summary line');
  const summary = mem.lines().find((l) => l.skipped !== undefined)!;
  t.same(summary.skipped, { request: 7, 'closing core socket': 1 }, 'the summary names what was not written');
  t.equal(summary.perSecond, 3);
  clientLog.info({}, 'request');
  t.equal(mem.lines().filter((l) => l.msg === 'request').length, 4, 'the next second writes again');
  clientLog.close();
  t.equal(mem.lines().filter((l) => l.skipped !== undefined).length, 1, 'closing with nothing skipped writes no summary');
});

t.test('long request paths are cut in the log line', async (t) => {
  const f = await coreFixture({});
  t.teardown(() => f.ts.close());
  const long = `/v1/streams/${'x'.repeat(3000)}`;
  await request(`${f.ts.url}${long}`, { ca: f.ts.ca });
  const line = await eventually(async () => f.ts.logLines().find((l) => l.msg === 'request' && String(l.path).startsWith('/v1/streams/xxx')), 5000, 'the request line');
  t.equal(String(line.path).length, 257, 'the path is cut to 256 characters and an ellipsis');
});

t.test('lines the level filters out use none of the budget', async (t) => {
  const mem = memoryLogger();
  mem.log.level = 'warn';
  const metrics = new Metrics();
  const clientLog = new ClientLog(mem.log, 2, metrics.logLinesSkipped, 'core');
  for (let i = 0; i < 10; i++) clientLog.info({}, 'request');
  clientLog.warn({}, 'closing core socket');
  clientLog.warn({}, 'closing core socket');
  t.equal(mem.lines().length, 2, 'both warn lines written');
  t.same(await skipped(metrics), {}, 'nothing counted as skipped');
});

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: a flood of requests and connections writes at most the budget a second`, async (t) => {
    const budget = 5;
    const f = await coreFixture({ 'server.transport': transport, 'log.clientLinesPerSecond': budget });
    t.teardown(() => f.ts.close());
    const metrics = f.ts.server.metrics;
    const client = new Set(['request', 'core connected', 'core disconnected', 'core upgrade refused']);
    const count = async (): Promise<number> => f.ts.logLines().filter((l) => client.has(String(l.msg))).length + Object.values(await skipped(metrics)).reduce((a, b) => a + b, 0);
    // Lines of the fixture's own set-up have settled before counting.
    await sleep(1100);
    const before = await count();

    const requests = 150;
    const answers = await Promise.all(Array.from({ length: requests }, () => request(`${f.ts.url}/healthz`, { ca: f.ts.ca })));
    t.ok(answers.every((a) => a.status === 200), 'every request answered');
    const opens = 10;
    const outcomes = await Promise.all(Array.from({ length: opens }, () => tryUpgrade(f.wsUrl, { authorization: `Bearer ${f.engineKey}` }, f.ts.ca)));
    t.ok(outcomes.every((o) => o.opened), 'every core connected');
    const refused = await tryUpgrade(f.wsUrl, { authorization: 'Bearer not-a-key' }, f.ts.ca);
    t.equal(refused.opened, false, 'a bad key is refused');

    // Each request and refusal is one line, each connection two: written or counted, none lost.
    const expected = before + requests + 2 * opens + 1;
    await eventually(async () => (await count()) === expected, 5000, `every client line written or counted (${expected})`);
    const notWritten = await skipped(metrics);
    t.ok((notWritten.request ?? 0) > 0, `lines past the budget were not written (${JSON.stringify(notWritten)})`);
    const requestsMost = mostInOneSecond(f.ts.logLines(), new Set(['request']));
    const coresMost = mostInOneSecond(f.ts.logLines(), new Set(['core connected', 'core disconnected', 'core upgrade refused']));
    t.ok(requestsMost <= 2 * budget, `request lines: at most two windows' budgets in any second (${requestsMost})`);
    t.ok(coresMost <= 2 * budget && coresMost > 0, `core lines have a budget of their own, not spent by the requests (${coresMost} in a second)`);

    await eventually(async () => {
      const summaries = f.ts.logLines().filter((l) => l.msg === 'client-caused log lines over log.clientLinesPerSecond not written');
      const total: Record<string, number> = {};
      for (const s of summaries) for (const [k, v] of Object.entries(s.skipped as Record<string, number>)) total[k] = (total[k] ?? 0) + v;
      return JSON.stringify(total, Object.keys(total).sort()) === JSON.stringify(notWritten, Object.keys(notWritten).sort());
    }, 3000, 'the summary lines add up to the metric');
    const text = (await request(`${f.ts.url}/metrics`, { ca: f.ts.ca })).body.toString();
    t.match(text, /coordinator_log_lines_skipped_total\{msg="request"[^}]*\} [1-9]/, 'the metric is served');
  });
}
