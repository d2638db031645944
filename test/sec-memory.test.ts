/**
 * The process memory budget (issue 12 §2): many cores checkpointing at once behind a slow
 * commit (one commit at a time) keep the server's RSS within the budget plus a fixed
 * overhead (a checkpoint no longer reads its buffer before its turn); a core piling messages
 * behind its slow commit is closed with 1013; cores past the spill (disk) budget get
 * `buffer_full` with `retry_after_s`; an honest core commits byte-identical throughout; the
 * budget is visible in /metrics.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import { encodeBinary } from '../src/core/messages';
import { cliServer, RawCore, type CliServer } from './helpers/core-raw';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

const MIB = 1024 * 1024;
const BUDGET = 48 * MIB;
/** What a Node process with TLS sockets, drivers and GC slack may add beyond the budget. */
const OVERHEAD = 128 * MIB;
const FRAME = 4 * MIB;
const PER_CORE = 16 * MIB;

let srv: CliServer;
t.before(async () => {
  srv = await cliServer(
    await freePort(),
    {
      'server.workers': 1,
      'core.messagesPerSecond': 1000,
      'core.maxMessageBytes': 8 * MIB,
      // Room for each buffered file's record (FILE_OVERHEAD_BYTES) beside its bytes.
      'core.maxBufferBytes': PER_CORE + 64 * 1024,
      'core.memoryBufferBytes': 2 * MIB,
      'core.maxConcurrentCommits': 1,
      'memory.budgetBytes': BUDGET,
      'memory.spillAtBytes': 8 * MIB,
      'memory.diskBudgetBytes': 160 * MIB,
      'memory.sessionQueueBytes': 12 * MIB,
    },
    /"msg":"listening"/,
  );
});
t.teardown(async () => {
  await srv?.stop();
  await stopStack();
});

async function assigned(core: RawCore): Promise<string> {
  const target = await srv.f.target();
  const stream = await srv.f.stream(target);
  const a = await core.request({ type: 'assign', target_id: target }, 15000);
  t.equal(a.type, 'assignment');
  return stream;
}

/** Samples the server's RSS every 50 ms until stopped; returns the peak. */
function sampleRss(): { stop: () => number } {
  let peak = srv.rss();
  const timer = setInterval(() => (peak = Math.max(peak, srv.rss())), 50);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, srv.rss());
    },
  };
}

/** A frame with a generous reply timeout (the machine running tests is shared and loaded). */
function frame(core: RawCore, seq: number, bytes: Buffer): Promise<Record<string, unknown>> {
  const id = core.id();
  core.send(encodeBinary({ type: 'frame', id, seq }, [{ name: 'frames.xtc', bytes }]));
  return core.reply(id, 60000);
}

async function download(stream: string, name: string): Promise<Buffer> {
  const r = await request(`https://127.0.0.1:${srv.port}/v1/streams/${stream}/frames/${name}`, { ca: srv.ca, headers: { authorization: `Bearer ${srv.f.manager}` } });
  t.equal(r.status, 200);
  return r.body;
}

t.test('many cores checkpointing at once behind one commit slot: RSS within budget + overhead, data intact', async (t) => {
  const N = 8;
  const cores = await Promise.all(Array.from({ length: N }, () => srv.connect()));
  t.teardown(() => Promise.all(cores.map((c) => c.close())));
  const streams: string[] = [];
  for (const c of cores) streams.push(await assigned(c));
  const sent: Buffer[][] = cores.map(() => []);
  const before = srv.rss();
  const rss = sampleRss();
  // Each core fills its buffer (16 MiB, mostly spilled), one frame at a time.
  await Promise.all(
    cores.map(async (c, i) => {
      for (let s = 1; s <= PER_CORE / FRAME; s++) {
        const bytes = crypto.randomBytes(FRAME);
        sent[i]!.push(bytes);
        t.equal((await frame(c, s, bytes)).type, 'ack');
      }
    }),
  );
  // All checkpoint at once: one commit runs, the others wait without reading their buffers.
  const replies = await Promise.all(cores.map((c) => c.checkpoint(PER_CORE / FRAME + 1, [{ name: 'state.xml', bytes: Buffer.from('s') }]).catch((e: Error) => ({ type: 'timeout', message: e.message }))));
  // Commits behind one slot can outlast the helper's 15 s; wait for the stragglers.
  for (const [i, r] of replies.entries()) if (r.type === 'timeout') replies[i] = await cores[i]!.next((m) => m.type === 'committed' || m.type === 'error', 120000);
  const peak = rss.stop();
  for (const r of replies) t.equal(r.type, 'committed');
  const growth = peak - before;
  t.ok(growth < BUDGET + OVERHEAD, `RSS grew by ${(growth / MIB).toFixed(0)} MiB (budget ${BUDGET / MIB} + overhead ${OVERHEAD / MIB} MiB; the buffers total ${(N * PER_CORE) / MIB} MiB)`);
  t.ok((await download(streams[0]!, 'frames.xtc')).equals(Buffer.concat(sent[0]!)), 'committed frames are byte-identical');
  t.ok((await download(streams[N - 1]!, 'frames.xtc')).equals(Buffer.concat(sent[N - 1]!)), 'the last commit too');
});

t.test('messages piled behind a slow commit: the socket is closed with 1013, an honest core commits', async (t) => {
  const blocker = await srv.connect();
  const attacker = await srv.connect();
  const honest = await srv.connect();
  t.teardown(() => Promise.all([blocker.close(), attacker.close(), honest.close()]));
  await assigned(blocker);
  await assigned(attacker);
  const honestStream = await assigned(honest);
  // The blocker's large commit holds the only commit slot for a while.
  for (let s = 1; s <= PER_CORE / FRAME; s++) await frame(blocker, s, crypto.randomBytes(FRAME));
  const blockerCommit = blocker.checkpoint(PER_CORE / FRAME + 1).catch(() => undefined);
  // The attacker buffers a frame, checkpoints (its commit waits behind the blocker's), then
  // floods frames without waiting: they pile up behind the checkpoint in its message chain.
  await attacker.frame(1, { files: [{ name: 'frames.xtc', bytes: Buffer.alloc(1024) }] });
  attacker.send(encodeBinary({ type: 'checkpoint', id: attacker.id(), seq: 2 }, [{ name: 'state.xml', bytes: Buffer.from('s') }]));
  const big = crypto.randomBytes(FRAME);
  for (let s = 3; s < 11; s++) attacker.send(encodeBinary({ type: 'frame', id: attacker.id(), seq: s }, [{ name: 'frames.xtc', bytes: big }]));
  const closed = await Promise.race([attacker.closed, new Promise<{ code: number; reason: string }>((r) => setTimeout(() => r({ code: 0, reason: 'not closed' }), 60000))]);
  t.equal(closed.code, 1013, `closed with 1013 (${closed.reason})`);
  await blockerCommit;
  const bytes = crypto.randomBytes(256 * 1024);
  t.equal((await frame(honest, 1, bytes)).type, 'ack');
  const c = await honest.checkpoint(2).catch(() => honest.next((m) => m.type === 'committed' || m.type === 'error', 60000));
  t.equal(c.type, 'committed');
  t.ok((await download(honestStream, 'frames.xtc')).equals(bytes), 'the honest core\'s frames are byte-identical');
});

t.test('past the spill budget a frame gets buffer_full with retry_after_s; the budget is in /metrics', async (t) => {
  const N = 11;
  const cores = await Promise.all(Array.from({ length: N }, () => srv.connect()));
  t.teardown(() => Promise.all(cores.map((c) => c.close())));
  for (const c of cores) await assigned(c);
  const refusals: Array<Record<string, unknown>> = [];
  await Promise.all(
    cores.map(async (c) => {
      for (let s = 1; s <= PER_CORE / FRAME; s++) {
        const r = await frame(c, s, Buffer.alloc(FRAME, s));
        if (r.type !== 'ack') {
          refusals.push(r);
          return;
        }
      }
    }),
  );
  t.ok(refusals.length > 0, `${refusals.length} frames refused (${N} × ${PER_CORE / MIB} MiB against a 160 MiB spill budget)`);
  for (const r of refusals) t.match(r, { type: 'error', code: 'buffer_full', retry_after_s: Number });
  const m = await request(`https://127.0.0.1:${srv.port}/metrics`, { ca: srv.ca });
  t.equal(m.status, 200);
  const text = m.body.toString();
  // Every series also carries the process's `node` label.
  t.match(text, /coordinator_memory_budget_limit_bytes(\{[^}]*\})? 50331648\n/);
  t.match(text, /coordinator_memory_budget_used_bytes\{kind="frames"[^}]*\} \d+/);
  t.match(text, /coordinator_memory_budget_refusals_total\{kind="disk"[^}]*\} [1-9]/);
  t.match(text, /coordinator_spill_budget_used_bytes(\{[^}]*\})? [1-9]/);
});
