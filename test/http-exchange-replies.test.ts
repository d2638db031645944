/**
 * How the exchange counts replies against the memory budget (memory.repliesBytes), with a
 * transport stand-in that holds each reply until the test lets it go: a reply is counted
 * until the transport has sent it, a GET that does not fit is refused with 429, the reply to
 * a request that has had its effect is sent and counted anyway, shared bytes are not counted,
 * and an abort gives back what the reply held.
 */
import t from 'tap';
import { MemoryBudget } from '../src/core/memory-budget';
import { serveExchange, type ExchangeIO, type ExchangeState, type HttpContext } from '../src/http/exchange';
import { Router, bufferBody, type Reply } from '../src/http/router';
import { bareHttpContext, memoryLogger } from './helpers/server';

const KIB = 1024;

function harness(repliesBytes: number) {
  const memory = new MemoryBudget({ limitBytes: 1024 * KIB, spillAtBytes: 1024 * KIB, diskBytes: 1024 * KIB, sessionQueueBytes: 1024 * KIB, repliesBytes });
  const router = new Router(KIB);
  let created = 0;
  const shared = Buffer.alloc(200 * KIB, 1);
  router.add('GET', '/big', () => ({ status: 200, body: 'x'.repeat(40 * KIB) }));
  router.add('POST', '/things', () => {
    created++;
    return { status: 201, body: JSON.stringify({ id: created, pad: 'y'.repeat(40 * KIB) }) };
  });
  router.add('GET', '/shared', () => ({ status: 200, body: bufferBody(shared) }));
  const ctx: HttpContext = bareHttpContext(router, memoryLogger().log, { memory });
  /** Serves a request; the reply stays "on the wire" until `sent()` or `abort()`. */
  const serve = (method: string, path: string) => {
    let release: () => void = () => undefined;
    let onAbort: () => void = () => undefined;
    const reply = new Promise<Reply>((resolveReply) => {
      const io: ExchangeIO = {
        method,
        path,
        query: '',
        headers: method === 'POST' ? { 'content-type': 'application/json', 'content-length': '2' } : {},
        peer: '127.0.0.1',
        readBody: (sink) => Promise.resolve(sink.add(Buffer.from('{}')) ?? sink.bytes()) as Promise<Buffer>,
        write: (r: Reply, _h: Record<string, string>, state: ExchangeState) =>
          new Promise<void>((done) => {
            resolveReply(r);
            release = done;
            state.onAbort.push(done);
          }),
      };
      onAbort = serveExchange(ctx, io);
    });
    return { reply, sent: () => release(), abort: () => onAbort() };
  };
  return { memory, serve, created: () => created };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('a reply counts until sent; a GET past the share is 429; a POST past it is sent and counted', async (t) => {
  const h = harness(100 * KIB);
  const a = h.serve('GET', '/big');
  const b = h.serve('GET', '/big');
  t.equal((await a.reply).status, 200);
  t.equal((await b.reply).status, 200);
  t.equal(h.memory.used('replies'), 80 * KIB, 'two replies held');
  const c = h.serve('GET', '/big');
  const refused = await c.reply;
  t.equal(refused.status, 429, 'the third GET does not fit');
  t.match(String(refused.body), /replies being sent/);
  c.sent();

  const post = h.serve('POST', '/things');
  t.equal((await post.reply).status, 201, 'the POST had its effect: its reply is sent, not refused');
  t.equal(h.created(), 1);
  t.ok(h.memory.used('replies') > 100 * KIB, 'and counted beyond the share');

  a.sent();
  b.abort();
  post.sent();
  await tick();
  t.equal(h.memory.used('replies'), 0, 'sent and aborted replies give their bytes back');
});

t.test('shared bytes sent a chunk at a time are not counted per reply', async (t) => {
  const h = harness(100 * KIB);
  const replies = Array.from({ length: 10 }, () => h.serve('GET', '/shared'));
  for (const r of replies) t.equal((await r.reply).status, 200);
  t.equal(h.memory.used('replies'), 0);
  replies.forEach((r) => r.sent());
});
