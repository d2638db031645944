/**
 * Unknown HTTP methods: uWS hands any token to the server as a method, and the request
 * metrics are labelled by method, so before this anonymous requests with made-up methods
 * grew the metrics without bound (38,000 of them took a process from 105 to 645 MiB and made
 * /metrics answer 500). They are now refused with 405 and counted as OTHER. Both transports
 * (node's parser refuses them itself).
 */
import tls from 'node:tls';
import t from 'tap';
import { coreFixture } from './helpers/core';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

t.teardown(stopStack);

/** Sends raw requests on one TLS connection; resolves with everything received once it closes (or after 3 s). */
function raw(port: number, ca: string, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => s.write(text));
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', () => undefined);
    setTimeout(() => s.destroy(), 3000);
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: made-up methods are refused and add no metric series`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport });
    t.teardown(() => f.ts.close());
    const port = f.ts.server.port;
    const methods = Array.from({ length: 50 }, (_, i) => `ZZ${i}X${'Q'.repeat(200)}`);
    const answers = await Promise.all(methods.map((m) => raw(port, f.ts.ca, `${m} /v1/targets HTTP/1.1\r\nHost: localhost\r\n\r\n`)));
    t.ok(answers.every((a) => /^HTTP\/1\.1 (405|400)/.test(a)), `each refused (${[...new Set(answers.map((a) => a.slice(0, 12)))].join(', ')})`);
    const metrics = (await request(`${f.ts.url}/metrics`, { ca: f.ts.ca })).body.toString();
    t.notMatch(metrics, /ZZ\d+X/, 'no series carries a made-up method');
    if (transport === 'uws') t.match(metrics, /coordinator_http_requests_total\{method="OTHER",route="\(none\)",status="405"[^}]*\} 50/, 'they are counted as OTHER');
    t.equal((await request(`${f.ts.url}/healthz`, { ca: f.ts.ca })).status, 200, 'known methods still work');
  });
}
