import crypto from 'node:crypto';
/**
 * The TLS-terminating-proxy mode (PROTOCOL §1): the coordinator with TLS off behind nginx
 * running the config of src/provision/nginx.ts, which is also deploy/nginx.conf and the
 * one docs/deploy.md shows.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { hashToken } from '../src/auth/tokens';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, isRoot, run } from '../src/provision/exec';
import { PRODUCTION_NGINX, ensureNginx, nginxBuild, nginxConfig, startNginx, type RunningService } from '../src/provision/nginx';
import { eventually, request, startTestServer, type TestServer } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';
import { tempDir } from '../test-support/temp';

const ROOT = path.resolve(__dirname, '..', '..');

/** Overrides that turn TLS off: the proxy terminates it. */
const PLAIN = { 'tls.cert': '', 'tls.key': '', 'tls.ca': '' };

// ---------------------------------------------------------------------------------------
// WebSocket client helper (for this file's tests and the /core/v1 test the lead adds).

/** Outcome of a WebSocket handshake: the open socket (status 101), or the HTTP answer that refused it. */
export interface WsConnectResult {
  /** 101 when upgraded, else the HTTP status of the refusal. */
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The open socket when upgraded; the caller closes it. */
  socket?: WebSocket;
  /** Subprotocol the server chose ('' when none). */
  protocol?: string;
  /** Body of a refusal (e.g. the JSON error of PROTOCOL §3). */
  body?: string;
}

/** Options of {@link wsConnect}. */
export interface WsConnectOptions {
  /** Extra upgrade request headers, e.g. `{ authorization: 'Bearer <engine key>' }`. */
  headers?: Record<string, string>;
  /** PEM CA to trust for wss:// (e.g. the dev root CA). */
  ca?: string;
  /** Offered subprotocols, e.g. ['coordinator.core.v1']. */
  protocols?: string[];
  /** Handshake timeout (default 10 s). */
  timeoutMs?: number;
}

/**
 * Opens a WebSocket (`ws` package) to `url` (ws:// or wss://; for 127.0.0.1 the TLS name
 * checked is "localhost", as with `request`). Resolves with the open socket, or with the
 * status, headers and body of a response that refused the upgrade; rejects only on
 * transport errors (refused connection, TLS failure, timeout).
 */
export function wsConnect(url: string, opts: WsConnectOptions = {}): Promise<WsConnectResult> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    // ws hands `servername` to tls.connect, though its option type does not list it.
    const clientOptions: WebSocket.ClientOptions & { servername?: string } = {
      headers: opts.headers,
      ca: opts.ca,
      servername: u.hostname === '127.0.0.1' ? 'localhost' : undefined,
      handshakeTimeout: opts.timeoutMs ?? 10_000,
    };
    const ws = new WebSocket(url, opts.protocols ?? [], clientOptions);
    let upgrade: http.IncomingMessage | undefined;
    ws.once('upgrade', (res) => {
      upgrade = res;
    });
    ws.once('open', () => resolve({ status: 101, headers: upgrade?.headers ?? {}, socket: ws, protocol: ws.protocol }));
    ws.once('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        req.destroy();
      });
      res.on('error', reject);
    });
    // After a settled handshake this only sees the teardown of a refused one.
    ws.on('error', reject);
  });
}

/** Resolves with the next message of an open socket. */
function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: Buffer, binary: boolean) => resolve({ data, binary }));
    ws.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------
// A small WebSocket upstream that reports what it received, to test nginx's upgrade
// pass-through independently of the coordinator's /core/v1 endpoint.

interface EchoUpstream {
  port: number;
  close(): Promise<void>;
}

async function startEchoUpstream(): Promise<EchoUpstream> {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ headers: req.headers }));
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => [...protocols][0] ?? false });
  server.on('upgrade', (req, socket, head) => {
    if (!req.headers.authorization) {
      const body = JSON.stringify({ error: { code: 'unauthorized', message: 'missing engine key' } });
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ type: 'hello', headers: req.headers }));
      ws.on('message', (data: Buffer, binary: boolean) => ws.send(data, { binary }));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------

let trusted: TestServer;
let untrusted: TestServer;
let echo: EchoUpstream;
let viaTrusted: RunningService;
let viaUntrusted: RunningService;
let viaEcho: RunningService;
let ca: string;

t.before(async () => {
  const stack = await getStack();
  ca = fs.readFileSync(stack.certs.caCert, 'utf8');
  [trusted, untrusted, echo] = await Promise.all([
    startTestServer({ ...PLAIN, 'server.trustProxy': ['127.0.0.1'] }),
    startTestServer({ ...PLAIN, 'server.trustProxy': [] }),
    startEchoUpstream(),
  ]);
  // The full chain, so clients that trust only the root can verify nginx's certificate.
  const tls = { cert: stack.certs.fullChain, key: stack.certs.key };
  [viaTrusted, viaUntrusted, viaEcho] = await Promise.all([
    startNginx({ dir: tempDir('sc-nginx-'), upstreamPort: trusted.server.port, ...tls }),
    startNginx({ dir: tempDir('sc-nginx-'), upstreamPort: untrusted.server.port, ...tls }),
    startNginx({ dir: tempDir('sc-nginx-'), upstreamPort: echo.port, ...tls }),
  ]);
});

t.teardown(async () => {
  await Promise.allSettled([viaTrusted?.stop(), viaUntrusted?.stop(), viaEcho?.stop()]);
  await Promise.allSettled([trusted?.close(), untrusted?.close(), echo?.close()]);
  await stopStack();
});

/** The server's log line of the request whose response carried `res`'s request id. */
function logLineOf(ts: TestServer, reqId: unknown): Promise<Record<string, unknown>> {
  return eventually(async () => ts.logLines().find((l) => l.msg === 'request' && l.reqId === reqId), 5000, `log line of ${String(reqId)}`);
}

t.test('the servers run plain HTTP (TLS off) and nginx serves HTTPS in front', async (t) => {
  t.match(trusted.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.match(untrusted.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.match(viaTrusted.url, /^https:\/\/127\.0\.0\.1:\d+$/);
});

t.test('health and readiness through nginx, verified against the root CA alone', async (t) => {
  for (const proxy of [viaTrusted, viaUntrusted]) {
    const health = await request(`${proxy.url}/healthz`, { ca });
    t.equal(health.status, 200, `${proxy.url}/healthz`);
    t.same(health.json(), { status: 'ok' });
    const ready = await request(`${proxy.url}/readyz`, { ca });
    t.equal(ready.status, 200, `${proxy.url}/readyz`);
    t.same(ready.json(), { status: 'ready', checks: { mongodb: 'ok', redis: 'ok' } });
    t.notMatch(String(health.headers.server ?? ''), /\d/, 'nginx does not advertise its version');
  }
});

t.test('X-Forwarded-For through nginx is believed only with server.trustProxy', async (t) => {
  const headers = { 'x-forwarded-for': '203.0.113.7' };

  const a = await request(`${viaTrusted.url}/healthz`, { ca, headers });
  t.equal(a.status, 200);
  t.match(await logLineOf(trusted, a.headers['x-request-id']), { route: '/healthz', status: 200, remote: '203.0.113.7', peer: '127.0.0.1' }, 'trustProxy [127.0.0.1]: the client nginx saw');

  const b = await request(`${viaUntrusted.url}/healthz`, { ca, headers });
  t.equal(b.status, 200);
  const line = await logLineOf(untrusted, b.headers['x-request-id']);
  t.equal(line.remote, '127.0.0.1', 'trustProxy []: the TCP peer (nginx)');
  t.notOk('peer' in line, 'no separate peer field when it equals remote');

  const c = await request(`${viaTrusted.url}/healthz`, { ca });
  t.match(await logLineOf(trusted, c.headers['x-request-id']), { remote: '127.0.0.1' }, 'no header from the client: nginx saw 127.0.0.1');
});

t.test('a forged X-Forwarded-For sent straight to the plain server is ignored', async (t) => {
  const r = await request(`${untrusted.url}/healthz`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
  t.equal(r.status, 200);
  const line = await logLineOf(untrusted, r.headers['x-request-id']);
  t.equal(line.remote, '127.0.0.1');
  t.notOk('peer' in line);
});

t.test('nginx forwards Host, X-Forwarded-Proto and X-Forwarded-For to the upstream', async (t) => {
  const r = await request(`${viaEcho.url}/anything`, { ca, headers: { 'x-forwarded-for': '203.0.113.7' } });
  t.equal(r.status, 200);
  const seen = r.json<{ headers: Record<string, string> }>().headers;
  t.equal(seen.host, '127.0.0.1', "$host: the client's Host header without the port");
  t.equal(seen['x-forwarded-proto'], 'https');
  t.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'the client address is appended');
  t.not(seen.connection, 'upgrade', 'plain requests are not marked as upgrades');
});

t.test('WebSocket upgrades pass through nginx (generic upstream)', async (t) => {
  const wss = viaEcho.url.replace(/^https:/, 'wss:');

  const refused = await wsConnect(`${wss}/core/v1`, { ca, protocols: ['coordinator.core.v1'] });
  t.equal(refused.status, 401, 'a refused upgrade reaches the client as the upstream answered it');
  t.match(JSON.parse(refused.body ?? '{}'), { error: { code: 'unauthorized' } });

  const ok = await wsConnect(`${wss}/core/v1`, {
    ca,
    protocols: ['coordinator.core.v1'],
    headers: { authorization: 'Bearer test-engine-key', 'x-donor-token': 'donor-token', 'x-forwarded-for': '203.0.113.7' },
  });
  t.equal(ok.status, 101);
  t.equal(ok.protocol, 'coordinator.core.v1', 'subprotocol negotiated end to end');
  const ws = ok.socket!;
  t.teardown(() => ws.terminate());
  const hello = JSON.parse((await nextMessage(ws)).data.toString()) as { headers: Record<string, string> };
  t.match(hello.headers, {
    upgrade: 'websocket',
    connection: 'upgrade',
    authorization: 'Bearer test-engine-key',
    'x-donor-token': 'donor-token',
    'x-forwarded-for': '203.0.113.7, 127.0.0.1',
    'x-forwarded-proto': 'https',
  });

  ws.send(JSON.stringify({ type: 'ping', id: 1 }));
  const text = await nextMessage(ws);
  t.equal(text.binary, false);
  t.same(JSON.parse(text.data.toString()), { type: 'ping', id: 1 });

  const payload = Buffer.alloc(2 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff;
  ws.send(payload);
  const bin = await nextMessage(ws);
  t.equal(bin.binary, true);
  t.ok(bin.data.equals(payload), '2 MiB binary message intact both ways');
});

t.test('nginx caps connections per client address (limit_conn), WebSocket sessions included', async (t) => {
  const stack = await getStack();
  const capped = await startNginx({ dir: tempDir('sc-nginx-'), upstreamPort: echo.port, cert: stack.certs.fullChain, key: stack.certs.key, connectionsPerAddress: 2 });
  t.teardown(() => capped.stop());
  const wss = `${capped.url.replace(/^https:/, 'wss:')}/core/v1`;
  const headers = { authorization: 'Bearer test-engine-key', 'x-donor-token': 'donor-token' };
  const held: WebSocket[] = [];
  for (let i = 0; i < 2; i++) {
    const ok = await wsConnect(wss, { ca, protocols: ['coordinator.core.v1'], headers });
    t.equal(ok.status, 101, `session ${i + 1} of 2`);
    held.push(ok.socket!);
  }
  t.teardown(() => held.forEach((ws) => ws.terminate()));
  const third = await wsConnect(wss, { ca, protocols: ['coordinator.core.v1'], headers });
  t.equal(third.status, 429, 'a third from the same address is refused with 429');
  held.pop()!.terminate();
  const again = await eventually(async () => {
    const r = await wsConnect(wss, { ca, protocols: ['coordinator.core.v1'], headers });
    if (r.status !== 101) return undefined;
    return r;
  }, 5000, 'room again');
  again.socket!.terminate();
  t.pass('one that closes makes room');
});

t.test('WebSocket upgrade to /core/v1 passes through nginx; the client address comes from X-Forwarded-For', async (t) => {
  const db = trusted.server.storage.mongo.db;
  const engineKey = crypto.randomBytes(32).toString('base64url');
  await db.collection('engine_keys').insertOne({ _id: 'nginxtestkey0000000000' as never, engine: 'openmm', description: 'nginx test', keyHash: hashToken(engineKey), createdAt: new Date(), revokedAt: null });
  const url = `${viaTrusted.url.replace(/^https:/, 'wss:')}/core/v1`;

  const refused = await wsConnect(url, { ca, protocols: ['coordinator.core.v1'], headers: { authorization: 'Bearer wrong' } });
  t.equal(refused.status, 401, 'a bad engine key is refused through the proxy');
  t.match(JSON.parse(refused.body ?? '{}'), { error: { code: 'unauthorized' } });

  const r = await wsConnect(url, { ca, protocols: ['coordinator.core.v1'], headers: { authorization: `Bearer ${engineKey}`, 'x-forwarded-for': '203.0.113.7' } });
  t.equal(r.status, 101);
  t.equal(r.protocol, 'coordinator.core.v1', 'subprotocol echoed through nginx');
  const welcome = JSON.parse((await nextMessage(r.socket!)).data.toString());
  t.match(welcome, { type: 'welcome', protocol: 1, heartbeat_s: 30 });
  r.socket!.send(JSON.stringify({ type: 'ping', id: 7 }));
  t.same(JSON.parse((await nextMessage(r.socket!)).data.toString()), { type: 'pong', id: 7 });
  const line = trusted.logLines().find((l) => l.msg === 'core connected' && l.session === welcome.session);
  t.equal(line?.remote, '203.0.113.7', 'session log shows the forwarded client address');
  r.socket!.close();
});

t.test('deploy/nginx.conf and docs/deploy.md show exactly nginxConfig(PRODUCTION_NGINX)', async (t) => {
  const expected = nginxConfig(PRODUCTION_NGINX);
  const file = fs.readFileSync(path.join(ROOT, 'deploy', 'nginx.conf'), 'utf8');
  t.equal(file, expected, 'deploy/nginx.conf is nginxConfig(PRODUCTION_NGINX) (regenerate it when that changes)');
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'deploy.md'), 'utf8');
  t.ok(doc.includes(`\`\`\`nginx\n${expected}\`\`\``), 'docs/deploy.md shows deploy/nginx.conf verbatim in an ```nginx block');
});

t.test('the production config passes nginx -t (with paths moved into a temp dir)', async (t) => {
  const stack = await getStack();
  const bin = await ensureNginx();
  const build = await nginxBuild(bin);
  const dir = tempDir('sc-nginx-t-');
  if (isRoot()) fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'temp'));
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    nginxConfig({
      ...PRODUCTION_NGINX,
      // `user` needs root and an existing account; everything else is the production text.
      user: undefined,
      cert: stack.certs.fullChain,
      key: stack.certs.key,
      pidFile: path.join(dir, 'nginx.pid'),
      errorLog: path.join(dir, 'error.log'),
      accessLog: path.join(dir, 'access.log'),
      tempDir: path.join(dir, 'temp'),
      withoutTempModules: build.withoutTempModules,
    }),
  );
  const errorLogFlag = build.hasErrorLogFlag ? ['-e', path.join(dir, 'error.log')] : [];
  const { stdout, stderr } = await run(bin, ['-t', '-p', `${dir}/`, '-c', conf, ...errorLogFlag], { timeoutMs: 30_000 });
  t.match(stdout + stderr, /syntax is ok/);
  t.match(stdout + stderr, /test is successful/);
});
