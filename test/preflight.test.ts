import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../src/config/settings';
import { checkOpenFiles, checkPlaintext, openFilesLimit } from '../src/config/preflight';
import { freePort } from '../src/provision/exec';
import { eventually, listeningPort, request, runCli, stackOverrides, writeConfig } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';

t.teardown(stopStack);

t.test('open-files check: limit parsing and the fix it names', async (t) => {
  const s = loadConfig({ env: {}, overrides: { 'server.maxConnections': 5000, 'http.maxConnections': 400, 'preflight.fdReserve': 100 } });
  t.match(checkOpenFiles(s, { soft: 20000, hard: 20000 }), { ok: true, detail: /20000 ≥ 5500 \(server\.maxConnections 5000 \+ http\.maxConnections 400 \+ preflight\.fdReserve 100\)/ });
  t.equal(checkOpenFiles(s, { soft: 5499, hard: 20000 }).ok, false, 'other connections count too');
  const bad = checkOpenFiles(s, { soft: 1024, hard: 4096 });
  t.equal(bad.ok, false);
  t.match(bad.detail, /soft limit 1024 < 5500/);
  t.match(bad.fix, /limits\.conf/);
  t.match(bad.fix, /LimitNOFILE=/);
  t.match(bad.detail, /hard limit 4096/);
  const limits = openFilesLimit();
  t.ok(limits && limits.soft > 0, 'reads /proc/self/limits');
  const fake = path.join(os.tmpdir(), `limits-${process.pid}`);
  fs.writeFileSync(fake, 'Limit Soft Hard Units\nMax open files            unlimited            unlimited            files\n');
  t.same(openFilesLimit(fake), { soft: Infinity, hard: Infinity });
  fs.rmSync(fake);
});

t.test('TLS off only on loopback or behind a named proxy', async (t) => {
  const plain = (host: string, trustProxy: string[] = []) => checkPlaintext(loadConfig({ env: {}, overrides: { 'server.host': host, 'server.trustProxy': trustProxy } }));
  const open = plain('0.0.0.0');
  t.equal(open.ok, false, 'serve with no configuration: plain HTTP on every interface');
  t.match(open.detail, /reachable from other machines.*in clear/);
  t.match(open.fix, /tls\.cert.*server\.trustProxy.*127\.0\.0\.1/);
  t.equal(plain('192.0.2.10').ok, false);
  t.equal(plain('127.0.0.1').ok, true, 'loopback: a proxy on this machine');
  t.equal(plain('::1').ok, true);
  t.equal(plain('0.0.0.0', ['10.0.0.5']).ok, true, 'the TLS-terminating proxy named');
  t.equal(plain('0.0.0.0', ['10.0.0.0/24']).ok, true, 'or its range');
  // A proxy on this machine does not shield a listener on every interface: it should listen on loopback.
  const local = plain('0.0.0.0', ['127.0.0.1', '::1']);
  t.equal(local.ok, false, 'proxies named only on this machine');
  t.match(local.detail, /names only this machine: 127\.0\.0\.1, ::1/);
});

t.test('preflight command: all green on the stack', async (t) => {
  const port = await freePort();
  const conf = writeConfig(await stackOverrides({ 'server.port': port }));
  const p = runCli(['preflight', '--config', conf]);
  const { code } = await p.exited;
  const out = p.output();
  t.equal(code, 0, out);
  for (const name of ['open files', 'TLS certificate files', 'TLS key matches certificate', 'TLS certificate validity', 'TLS chain verifies', 'MongoDB over TLS', 'Redis', `port 127.0.0.1:${port}`]) {
    t.match(out, new RegExp(`✓ ${name.replace(/[.()]/g, '\\$&')}`), name);
  }
});

t.test('preflight command: each failure is a ✗ line with a fix', async (t) => {
  const stack = await getStack();
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  t.teardown(() => busy.close());
  const deadPort = await freePort();
  const conf = writeConfig(
    await stackOverrides({
      'server.port': (busy.address() as net.AddressInfo).port,
      'tls.key': stack.certs.caKey,
      'mongodb.uri': stack.mongo.uri.replace(/\?.*$/, ''),
      'redis.url': `redis://127.0.0.1:${deadPort}`,
      'redis.connectTimeoutMs': 500,
      'health.timeoutMs': 500,
    }),
  );
  const p = runCli(['preflight', '--config', conf]);
  const { code } = await p.exited;
  const out = p.output();
  t.equal(code, 1);
  t.match(out, /✗ TLS key matches certificate: .* is not the key of/);
  t.match(out, /✗ MongoDB over TLS: connection string without TLS\n\s+fix: .*tls=true/);
  t.match(out, /✗ Redis: .*\n\s+fix: start Redis/);
  t.match(out, /✗ port 127\.0\.0\.1:\d+: already in use/);
  t.match(out, /✓ open files/);
});

t.test('serve refuses to start below the open-files limit, naming the fix', async (t) => {
  const conf = writeConfig(await stackOverrides({ 'server.port': await freePort(), 'server.maxConnections': 4096 }));
  const p = runCli(['serve', '--config', conf], { wrapper: ['prlimit', '--nofile=1024:1024', '--'] });
  const { code } = await p.exited;
  t.equal(code, 1);
  t.match(p.output(), /✗ open files \(RLIMIT_NOFILE\): soft limit 1024 < 6144/);
  t.match(p.output(), /limits\.conf/);
  t.match(p.output(), /preflight failed \(open files/);
});

t.test('serve starts anyway with preflight.mode=warn, and stops on SIGTERM with exit 0', async (t) => {
  const port = await freePort();
  const conf = writeConfig(await stackOverrides({ 'server.port': port, 'server.maxConnections': 4096 }));
  const p = runCli(['serve', '--config', conf, '--preflight-mode', 'warn'], { wrapper: ['prlimit', '--nofile=1024:1024', '--'] });
  t.equal(await listeningPort(p), port);
  const stack = await getStack();
  const ca = fs.readFileSync(stack.certs.caCert, 'utf8');
  t.equal((await request(`https://127.0.0.1:${port}/healthz`, { ca })).status, 200);
  t.match(p.output(), /preflight failed; starting anyway/);
  p.child.kill('SIGTERM');
  const { code } = await p.exited;
  t.equal(code, 0);
});

t.test('serve refuses bad input with a clear message', async (t) => {
  const stack = await getStack();
  const cases: Array<[Record<string, unknown>, RegExp, number]> = [
    [{ 'tls.ca': '' }, /TLS is partly configured: tls\.cert and tls\.key are set but tls\.ca \(env SC_TLS_CA\) is empty/, 2],
    [{ 'tls.ca': '', 'preflight.mode': 'warn' }, /TLS is partly configured/, 2],
    [{ 'tls.cert': '/nonexistent/cert.pem' }, /✗ TLS certificate files: .*ENOENT/, 1],
    [{ 'mongodb.uri': 'mongodb://127.0.0.1:1/' }, /not encrypted.*tls=true/, 1],
    [{ 'server.port': 'eighty' }, /server\.port .*Expected: a TCP port/, 2],
  ];
  for (const [over, re, exitCode] of cases) {
    const conf = writeConfig(await stackOverrides({ 'server.port': 0, 'health.timeoutMs': 500, ...over }));
    const p = runCli(['serve', '--config', conf]);
    const { code } = await p.exited;
    t.equal(code, exitCode, JSON.stringify(over));
    t.match(p.output(), re, JSON.stringify(over));
    t.notMatch(p.output(), /\n\s+at .*\.js:\d+/, 'no stack trace');
  }
  void stack;
});

t.test('a running server survives a Redis outage and recovers', async (t) => {
  const { startRedis } = await import('../src/provision/redis');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-redis-'));
  const redisPort = await freePort();
  let redis = await startRedis({ dir, port: redisPort });
  const port = await freePort();
  const conf = writeConfig(await stackOverrides({ 'server.port': port, 'redis.url': redis.url, 'health.timeoutMs': 700 }));
  const p = runCli(['serve', '--config', conf]);
  await listeningPort(p);
  const stack = await getStack();
  const ca = fs.readFileSync(stack.certs.caCert, 'utf8');
  const url = `https://127.0.0.1:${port}/readyz`;
  t.equal((await request(url, { ca })).status, 200);
  await redis.stop();
  const down = await eventually(async () => {
    const r = await request(url, { ca });
    return r.status === 503 ? r : undefined;
  }, 10000, 'readyz 503');
  t.match(down.json(), { status: 'unavailable', checks: { mongodb: 'ok', redis: /.+/ } });
  t.equal((await request(`https://127.0.0.1:${port}/healthz`, { ca })).status, 200, 'process stays up');
  redis = await startRedis({ dir, port: redisPort });
  await eventually(async () => (await request(url, { ca })).status === 200, 15000, 'readyz back to 200');
  t.pass('reconnected on its own');
  p.child.kill('SIGTERM');
  t.equal((await p.exited).code, 0);
  await redis.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});
