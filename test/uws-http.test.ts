/**
 * The uWS response wrapper on its own: a uWS app with test routes, real sockets.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import uws from 'uWebSockets.js';
import { Router, json, type StreamBody } from '../src/http/router';
import { generateCertificates } from '../src/provision/certs';
import { buildChainFile } from '../src/transport/tls';
import { serveHttp, type HttpContext } from '../src/transport/uws-http';
import { bareHttpContext, memoryLogger, request } from './helpers/server';

const MIB = 1024 * 1024;
const CHUNK = 64 * 1024;
const produced = { bytes: 0, finished: false, returned: false };

/** Deterministic bytes: chunk i is filled with (i % 251). */
function pattern(total: number): StreamBody {
  return {
    length: total,
    chunks: (async function* () {
      produced.bytes = 0;
      produced.finished = false;
      produced.returned = false;
      try {
        for (let off = 0, i = 0; off < total; off += CHUNK, i++) {
          const n = Math.min(CHUNK, total - off);
          produced.bytes += n;
          yield Buffer.alloc(n, i % 251);
        }
        produced.finished = true;
      } finally {
        produced.returned = true;
      }
    })(),
  };
}

function patternHash(total: number): string {
  const h = crypto.createHash('sha256');
  for (let off = 0, i = 0; off < total; off += CHUNK, i++) h.update(Buffer.alloc(Math.min(CHUNK, total - off), i % 251));
  return h.digest('hex');
}

const router = new Router(1000)
  .add('POST', '/echo', async (req) => {
    const body = await req.body();
    return json(200, { bytes: body.length, sha256: crypto.createHash('sha256').update(body).digest('hex') });
  })
  .add('GET', '/big', (req) => ({ status: 200, headers: { 'content-type': 'application/octet-stream' }, body: pattern(Number(req.query.get('n'))) }))
  .add('GET', '/throw', () => {
    throw new Error('secret internals');
  })
  .add('GET', '/slow', () => new Promise((r) => setTimeout(() => r(json(200, { ok: true })), 300)));

const mem = memoryLogger();
const ctx: HttpContext = bareHttpContext(router, mem.log, { inflight: { count: 0, idle: [] } });

async function listen(app: uws.TemplatedApp): Promise<{ port: number; close: () => void }> {
  app.any('/*', (res, req) => serveHttp(ctx, res, req));
  const sock = await new Promise<uws.us_listen_socket | false>((r) => app.listen('127.0.0.1', 0, r));
  if (!sock) throw new Error('listen failed');
  return { port: uws.us_socket_local_port(sock), close: () => app.close() };
}

let plain: { port: number; close: () => void };
let secure: { port: number; close: () => void };
let ca: string;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-uws-'));

t.before(async () => {
  plain = await listen(uws.App());
  const certs = await generateCertificates(tmp);
  ca = fs.readFileSync(certs.caCert, 'utf8');
  const chain = buildChainFile({ enabled: true, cert: certs.cert, key: certs.key, ca: certs.chain, passphrase: '' });
  secure = await listen(uws.SSLApp({ key_file_name: certs.key, cert_file_name: chain.file }));
  chain.remove();
});
t.teardown(() => {
  plain.close();
  secure.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

t.test('bodies within the limit are read whole', async (t) => {
  const body = crypto.randomBytes(1000);
  const r = await request(`http://127.0.0.1:${plain.port}/echo`, { method: 'POST', body });
  t.equal(r.status, 200);
  t.same(r.json(), { bytes: 1000, sha256: crypto.createHash('sha256').update(body).digest('hex') });
});

t.test('a declared Content-Length over the limit is refused before reading', async (t) => {
  const r = await request(`http://127.0.0.1:${plain.port}/echo`, { method: 'POST', body: Buffer.alloc(1001) });
  t.equal(r.status, 413);
  t.match(r.json(), { error: { code: 'too_large', message: /1001 bytes is over the limit of 1000/ } });
  t.equal(r.headers.connection, 'close');
});

t.test('a chunked body that grows past the limit is cut off', async (t) => {
  const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: plain.port, path: '/echo', method: 'POST', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    for (let i = 0; i < 5; i++) req.write(Buffer.alloc(400));
    req.end();
  });
  t.equal(r.status, 413);
  t.match(JSON.parse(r.body), { error: { code: 'too_large' } });
});

t.test('an invalid Content-Length is a 400', async (t) => {
  const raw = await new Promise<string>((resolve) => {
    const s = net.connect(plain.port, '127.0.0.1', () => s.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n'));
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    setTimeout(() => s.destroy(), 1000);
  });
  t.match(raw, /^HTTP\/1\.1 400/);
});

t.test('64 MiB streamed over TLS arrive byte-identical with Content-Length', async (t) => {
  const total = 64 * MIB;
  const { length, hash } = await new Promise<{ length: string | undefined; hash: string }>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port: secure.port, path: `/big?n=${total}`, ca, servername: 'localhost', agent: false }, (res) => {
        const h = crypto.createHash('sha256');
        res.on('data', (d: Buffer) => h.update(d));
        res.on('end', () => resolve({ length: res.headers['content-length'], hash: h.digest('hex') }));
      })
      .on('error', reject);
  });
  t.equal(length, String(total));
  t.equal(hash, patternHash(total));
  t.ok(produced.returned, 'source closed');
});

t.test('a client that stops reading holds the producer back; an abort ends it', async (t) => {
  const total = 256 * MIB;
  const sock = net.connect(plain.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.write(`GET /big?n=${total} HTTP/1.1\r\nHost: x\r\n\r\n`);
  sock.pause();
  await new Promise((r) => setTimeout(r, 700));
  t.ok(produced.bytes < 32 * MIB, `produced ${(produced.bytes / MIB).toFixed(1)} MiB of 256 while the client reads nothing`);
  sock.destroy();
  await new Promise((r) => setTimeout(r, 300));
  t.ok(produced.returned, 'the source was closed after the abort');
  t.notOk(produced.finished);
  const again = await request(`http://127.0.0.1:${plain.port}/echo`, { method: 'POST', body: 'x' });
  t.equal(again.status, 200, 'server still serving');
  t.match(mem.lines().find((l) => l.route === '/big' && l.aborted), { status: 200, aborted: true });
});

t.test('a client that aborts before the reply is logged, nothing is written', async (t) => {
  const sock = net.connect(plain.port, '127.0.0.1', () => sock.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'));
  await new Promise((r) => setTimeout(r, 50));
  sock.destroy();
  await new Promise((r) => setTimeout(r, 400));
  t.match(mem.lines().find((l) => l.route === '/slow'), { status: 499, aborted: true });
  t.equal(ctx.inflight!.count, 0, 'in-flight count back to zero');
});

t.test('an unexpected error is a 500 without internals', async (t) => {
  const r = await request(`http://127.0.0.1:${plain.port}/throw`);
  t.equal(r.status, 500);
  t.same(r.json(), { error: { code: 'internal', message: 'Internal server error' } });
  t.notMatch(r.body.toString(), /secret internals/);
  t.ok(mem.lines().some((l) => l.msg === 'handler failed'), 'logged with the request id');
});
