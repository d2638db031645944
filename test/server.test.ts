import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import { readCertificates } from '../src/transport/tls';
import { eventually, request, runCli, startTestServer, writeConfig, type TestServer } from './helpers/server';
import { stopStack, getStack, stackOverrides } from '../test-support/stack';
import { tempDir } from '../test-support/temp';

let ts: TestServer;
t.before(async () => {
  ts = await startTestServer();
});
t.teardown(async () => {
  await ts?.close();
  await stopStack();
});

t.test('serves the banner, liveness and readiness over TLS', async (t) => {
  const root = await request(`${ts.url}/`, { ca: ts.ca });
  t.equal(root.status, 200);
  t.match(root.json(), { service: 'stream-coordinator', status: 'ok', worker: 0 });
  t.equal((await request(`${ts.url}/healthz`, { ca: ts.ca })).status, 200);
  const ready = await request(`${ts.url}/readyz`, { ca: ts.ca });
  t.equal(ready.status, 200);
  t.same(ready.json(), { status: 'ready', checks: { mongodb: 'ok', redis: 'ok' } });
});

t.test('clients trusting only the root CA see the full chain', async (t) => {
  const stack = await getStack();
  const sock = tls.connect({ host: '127.0.0.1', port: ts.server.port, servername: 'localhost', ca: ts.ca });
  await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
  t.ok(sock.authorized, 'chain verified against the root alone');
  const peer = sock.getPeerCertificate(true);
  t.equal(peer.fingerprint256, readCertificates(stack.certs.cert)[0]!.fingerprint256.replace(/:/g, ':'));
  t.equal(peer.issuerCertificate.fingerprint256, readCertificates(stack.certs.intermediateCert)[0]!.fingerprint256, 'intermediate sent');
  t.match(sock.getProtocol(), /^TLSv1\.[23]$/);
  sock.destroy();
});

t.test('a running server keeps no copy of its certificate chain on disk, so a killed one leaves none', async (t) => {
  const tmp = tempDir('sc-tmpdir-');
  const port = await freePort();
  const p = runCli(['serve', '--config', writeConfig(await stackOverrides({ 'server.port': port, 'server.workers': 1 }))], { env: { TMPDIR: tmp } });
  t.teardown(() => p.child.kill('SIGKILL'));
  await eventually(async () => /"msg":"listening"/.test(p.output()), 30_000, `listening in:\n${p.output()}`);
  t.equal((await request(`https://127.0.0.1:${port}/healthz`, { ca: ts.ca })).status, 200, 'a client trusting only the root CA connects: the chain was read');
  const copies = (): string[] => fs.readdirSync(tmp).filter((name) => name.startsWith('stream-coordinator-tls-'));
  t.same(copies(), [], 'no chain file while it runs');
  p.child.kill('SIGKILL');
  await p.exited;
  t.same(copies(), [], 'none after a kill');
});

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: a lone server refuses a port another server listens on`, async (t) => {
    // uWS binds with SO_REUSEPORT by default, which would let both listen and split clients.
    const port = ts.server.port;
    await t.rejects(startTestServer({ 'server.transport': transport, 'server.port': port }), /cannot listen|EADDRINUSE/, 'the second server does not start');
    const answers = await Promise.all(Array.from({ length: 10 }, () => request(`${ts.url}/readyz`, { ca: ts.ca }).then((r) => r.status)));
    t.same(answers, Array(10).fill(200), 'every request still reaches the first');
  });
}

t.test('TLS below 1.2 is refused', async (t) => {
  const err = await new Promise<Error | undefined>((resolve) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port: ts.server.port,
      servername: 'localhost',
      ca: ts.ca,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    sock.once('secureConnect', () => {
      sock.destroy();
      resolve(undefined);
    });
    sock.once('error', resolve);
  });
  t.ok(err, `handshake failed: ${err?.message}`);
});

t.test('errors are JSON from the catalog', async (t) => {
  const nf = await request(`${ts.url}/nope`, { ca: ts.ca });
  t.equal(nf.status, 404);
  t.match(nf.json(), { error: { code: 'not_found', message: /nope/ } });
  const na = await request(`${ts.url}/healthz`, { ca: ts.ca, method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  t.equal(na.status, 405);
  t.equal(na.headers.allow, 'GET');
  t.match(na.json(), { error: { code: 'method_not_allowed' } });
  const head = await request(`${ts.url}/healthz`, { ca: ts.ca, method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.body.length, 0);
});

t.test('request ids: generated, or echoed when sane', async (t) => {
  const a = await request(`${ts.url}/healthz`, { ca: ts.ca });
  t.match(a.headers['x-request-id'], /^[a-z0-9]+-[a-z0-9]+$/);
  const b = await request(`${ts.url}/healthz`, { ca: ts.ca, headers: { 'x-request-id': 'abc.123_X' } });
  t.equal(b.headers['x-request-id'], 'abc.123_X');
  const c = await request(`${ts.url}/healthz`, { ca: ts.ca, headers: { 'x-request-id': 'bad id with spaces' } });
  t.not(c.headers['x-request-id'], 'bad id with spaces');
});

t.test('one log line per request, secrets redacted', async (t) => {
  const secret = 'Bearer super-secret-token-value';
  await request(`${ts.url}/readyz?x=1`, { ca: ts.ca, headers: { authorization: secret, 'x-request-id': 'logcheck1' } });
  const line = ts.logLines().find((l) => l.reqId === 'logcheck1');
  t.match(line, { msg: 'request', method: 'GET', route: '/readyz', path: '/readyz', status: 200, remote: '127.0.0.1' });
  t.type(line?.ms, 'number');
  t.notOk(ts.rawLog().includes('super-secret-token-value'), 'no token in the log');
});

t.test('metrics count requests by route and status', async (t) => {
  await request(`${ts.url}/healthz`, { ca: ts.ca });
  const m = await request(`${ts.url}/metrics`, { ca: ts.ca });
  t.equal(m.status, 200);
  t.match(m.headers['content-type'], /text\/plain/);
  const text = m.body.toString();
  t.match(text, /coordinator_http_requests_total\{method="GET",route="\/healthz",status="200",node="[^"]+:\d+"\} \d+/);
  t.match(text, /coordinator_http_request_duration_seconds_bucket\{le="0.005",node="[^"]+",method="GET",route="\/healthz"\}/);
  t.match(text, /coordinator_process_resident_memory_bytes\{node="[^"]+"\} \d+/);
  t.match(text, /coordinator_http_requests_total\{method="GET",route="\(none\)",status="404",node="[^"]+"\}/, 'unknown paths share one label');
});

t.test('metrics.key protects /metrics', async (t) => {
  const keyed = await startTestServer({ 'metrics.key': 'k-123456789' });
  t.teardown(() => keyed.close());
  const none = await request(`${keyed.url}/metrics`, { ca: keyed.ca });
  t.equal(none.status, 401);
  t.match(none.json(), { error: { code: 'unauthorized' } });
  t.equal((await request(`${keyed.url}/metrics`, { ca: keyed.ca, headers: { authorization: 'Bearer wrong' } })).status, 401);
  t.equal((await request(`${keyed.url}/metrics`, { ca: keyed.ca, headers: { authorization: 'Bearer k-123456789' } })).status, 200);
});

t.test('a hung Redis: /readyz answers 503 in time, and close waits for it', async (t) => {
  // A TCP listener that accepts and never answers, like a wedged Redis.
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => silent.close());
  const port = (silent.address() as net.AddressInfo).port;
  const s = await startTestServer({ 'redis.url': `redis://127.0.0.1:${port}`, 'health.timeoutMs': 1500 });
  const started = Date.now();
  const slow = request(`${s.url}/readyz`, { ca: s.ca });
  await eventually(async () => s.logLines().length > 0 && Date.now() - started > 300, 5000, 'request in flight');
  await s.close();
  const res = await slow;
  t.equal(res.status, 503, 'in-flight request completed during shutdown');
  t.match(res.json(), { status: 'unavailable', checks: { mongodb: 'ok', redis: /did not answer within 1500 ms/ } });
  await t.rejects(request(`${s.url}/healthz`, { ca: s.ca }), 'no longer accepting');
});
