/**
 * The served certificate's expiry while the server runs (transport/tls-expiry.ts): the
 * gauge `coordinator_tls_certificate_expiry_timestamp_seconds`, a warning from
 * `tls.expiryWarningDays` before the end, an error once expired. A server whose
 * certificate has expired (preflight would refuse to start it; a running one gets there)
 * keeps running and serves it, and clients refuse the handshake.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import t, { type Test } from 'tap';
import client from 'prom-client';
import { createLeaf } from '../src/provision/certs';
import { watchCertificateExpiry } from '../src/transport/tls-expiry';
import { getStack, stopStack } from '../test-support/stack';
import { tempDir } from '../test-support/temp';
import { eventually, memoryLogger, request, startTestServer, type TestServer } from './helpers/server';

t.teardown(stopStack);

const DAY_MS = 86_400_000;

function gauge(): client.Gauge<'subject'> {
  return new client.Gauge({ name: 'expiry', help: 'h', labelNames: ['subject'] as const, registers: [] });
}

t.test('warning from tls.expiryWarningDays before the end, error once expired, judged again as time passes', async (t) => {
  const notAfter = new Date('2027-03-01T00:00:00Z');
  let now = notAfter.getTime() - 30 * DAY_MS;
  const mem = memoryLogger();
  const g = gauge();
  const stop = watchCertificateExpiry({ subject: 'CN=x', notAfter }, 14, mem.log, g, { now: () => now });
  t.teardown(stop);
  t.same(mem.lines(), [], '30 days left: nothing to say');
  t.equal((await g.get()).values[0]?.value, notAfter.getTime() / 1000, 'the gauge holds the expiry');
  t.same((await g.get()).values[0]?.labels, { subject: 'CN=x' });

  // The same watcher judges again as time passes (twice a day; here every 20 ms of a moved clock).
  const ticking = watchCertificateExpiry({ subject: 'CN=x', notAfter }, 14, mem.log, gauge(), { now: () => now, everyMs: 20 });
  t.teardown(ticking);
  now = notAfter.getTime() - 10 * DAY_MS - 1000;
  await eventually(() => mem.lines().length > 0, 2000, 'a warning');
  t.match(mem.lines().at(-1), { level: 40, daysLeft: 10, notAfter: notAfter.toISOString(), msg: /expires soon/ });
  now = notAfter.getTime() + 1;
  await eventually(() => mem.lines().some((l) => l.level === 50), 2000, 'an error');
  t.match(mem.lines().at(-1), { level: 50, msg: /has expired/ });

  const quiet = memoryLogger();
  watchCertificateExpiry({ subject: 'CN=x', notAfter }, 14, quiet.log, gauge(), { now: () => now, logs: false })();
  t.same(quiet.lines(), [], 'a worker other than the first writes no lines');
});

async function serverWith(t: Test, leaf?: { cert: string; key: string }): Promise<TestServer> {
  const ts = await startTestServer(leaf ? { 'tls.cert': leaf.cert, 'tls.key': leaf.key } : {});
  t.teardown(() => ts.close());
  return ts;
}

t.test('a running server reports its certificate in /metrics', async (t) => {
  const stack = await getStack();
  const ts = await serverWith(t);
  const leaf = new crypto.X509Certificate(fs.readFileSync(stack.certs.cert));
  const text = (await request(`${ts.url}/metrics`, { ca: ts.ca })).body.toString();
  const line = text.split('\n').find((l) => l.startsWith('coordinator_tls_certificate_expiry_timestamp_seconds{'));
  t.ok(line, line ?? 'no series');
  t.equal(Number(line!.split(' ').at(-1)), new Date(leaf.validTo).getTime() / 1000, "the leaf's notAfter");
  t.notOk(ts.logLines().some((l) => /TLS certificate/.test(String(l.msg))), 'a certificate good for a long time: no line');
});

t.test('a certificate close to its end: the server warns as it starts', async (t) => {
  const stack = await getStack();
  const leaf = await createLeaf(tempDir('sc-expiry-'), { cert: stack.certs.intermediateCert, key: stack.certs.intermediateKey }, { name: 'soon', days: 3 });
  const ts = await serverWith(t, leaf);
  t.match(ts.logLines().find((l) => /expires soon/.test(String(l.msg))), { level: 40, daysLeft: 2 });
  t.equal((await request(`${ts.url}/healthz`, { ca: ts.ca })).status, 200, 'still served');
});

t.test('an expired certificate: the server says so and keeps running; clients refuse it', async (t) => {
  const stack = await getStack();
  const leaf = await createLeaf(tempDir('sc-expiry-'), { cert: stack.certs.intermediateCert, key: stack.certs.intermediateKey }, { name: 'expired', days: 1, startDaysAgo: 10 });
  const ts = await serverWith(t, leaf);
  t.match(ts.logLines().find((l) => /has expired/.test(String(l.msg))), { level: 50 });
  const get = (verify: boolean): Promise<number | NodeJS.ErrnoException> =>
    new Promise((resolve) => {
      https
        .get(`${ts.url}/healthz`, { ca: ts.ca, rejectUnauthorized: verify, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        })
        .on('error', resolve);
    });
  t.match(await get(true), { code: 'CERT_HAS_EXPIRED' }, 'a client that verifies refuses the handshake');
  t.equal(await get(false), 200, 'the process is up and serves it (a client that skips verification gets through)');
});
