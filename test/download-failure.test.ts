/**
 * A streamed download whose source fails midway (stored bytes that cannot be read) must cut
 * the connection on both transports: the client sees a short body and a closed socket at
 * once, never a hang waiting for the rest of Content-Length. Real sockets, both servers.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import uws from 'uWebSockets.js';
import { Router, type StreamBody } from '../src/http/router';
import { serveHttp, type HttpContext } from '../src/transport/uws-http';
import { serveNodeHttp } from '../src/transport/node-http';
import { bareHttpContext, memoryLogger } from './helpers/server';

const CHUNK = 64 * 1024;
const TOTAL = 16 * CHUNK;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-dlfail-'));
const stored = path.join(tmp, 'stored.bin');
fs.writeFileSync(stored, Buffer.alloc(TOTAL, 7));

/** Reads the stored file chunk by chunk; its handle is closed after two chunks (a storage failure mid-read: EBADF). */
function failingRead(): StreamBody {
  return {
    length: TOTAL,
    chunks: (async function* () {
      const fh = await fsp.open(stored, 'r');
      const fd = fh.fd;
      try {
        for (let off = 0; off < TOTAL; off += CHUNK) {
          if (off === 2 * CHUNK) await fh.close();
          const b = Buffer.alloc(CHUNK);
          // Read through the raw descriptor so the closed handle surfaces as a real read error.
          await new Promise<void>((resolve, reject) => fs.read(fd, b, 0, CHUNK, off, (err) => (err ? reject(err) : resolve())));
          yield b;
        }
      } finally {
        await fh.close().catch(() => undefined);
      }
    })(),
  };
}

const router = new Router(1000).add('GET', '/blob', () => ({ status: 200, headers: { 'content-type': 'application/octet-stream' }, body: failingRead() }));
const mem = memoryLogger();
const ctx: HttpContext = bareHttpContext(router, mem.log, { inflight: { count: 0, idle: [] } });

/** GETs /blob; resolves with what arrived and how the exchange ended (or 'hang' after 15 s). */
function fetchBlob(port: number): Promise<{ status: number; bytes: number; ended: string }> {
  return new Promise((resolve) => {
    let bytes = 0;
    let status = 0;
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ status, bytes, ended: 'hang' });
    }, 15_000);
    const done = (ended: string): void => {
      clearTimeout(timer);
      resolve({ status, bytes, ended });
    };
    const req = http.get({ host: '127.0.0.1', port, path: '/blob', agent: false }, (res) => {
      status = res.statusCode!;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => done('end'));
      res.on('aborted', () => done('aborted'));
      res.on('error', () => done('error'));
      res.on('close', () => done('close'));
    });
    req.on('error', () => done('error'));
  });
}

t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('uWS: a failing source closes the connection', async (t) => {
  const app = uws.App();
  app.any('/*', (res, req) => serveHttp(ctx, res, req));
  const sock = await new Promise<uws.us_listen_socket | false>((r) => app.listen('127.0.0.1', 0, r));
  if (!sock) throw new Error('listen failed');
  t.teardown(() => app.close());
  const r = await fetchBlob(uws.us_socket_local_port(sock));
  t.equal(r.status, 200);
  t.not(r.ended, 'hang', 'the client is not left waiting');
  t.ok(r.bytes < TOTAL, `a short body (${r.bytes} of ${TOTAL} bytes)`);
  t.ok(mem.lines().some((l) => l.msg === 'response write failed'), 'the failure is logged');
});

t.test('node:http: a failing source closes the connection', async (t) => {
  const server = http.createServer((req, res) => serveNodeHttp(ctx, req, res, 10_000));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const r = await fetchBlob((server.address() as { port: number }).port);
  t.equal(r.status, 200);
  t.not(r.ended, 'hang', 'the client is not left waiting');
  t.ok(r.bytes < TOTAL, `a short body (${r.bytes} of ${TOTAL} bytes)`);
});
