/**
 * X-Forwarded-For is read the same way on core upgrades as on HTTP requests (issue 12 §7):
 * with the peer a trusted proxy, every X-Forwarded-For line counts (joined, as node:http
 * does), and the client is the rightmost untrusted hop — on both transports.
 */
import tls from 'node:tls';
import t from 'tap';
import { coreFixture } from './helpers/core';
import { eventually } from './helpers/server';
import { stopStack } from '../test-support/stack';
import { handshakeRequest } from './helpers/handshake';

t.teardown(stopStack);

/** Sends a raw request head over TLS and resolves with the status line's code. */
function rawHead(port: number, ca: string, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => s.write(head));
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m && text.includes('\r\n\r\n')) {
        resolve(Number(m[1]));
        setTimeout(() => s.destroy(), 200);
      }
    });
    s.on('error', reject);
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: two X-Forwarded-For lines, read alike on HTTP and on the upgrade`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport, 'server.trustProxy': ['127.0.0.1', '10.0.0.0/8'] });
    t.teardown(() => f.ts.close());
    const port = f.ts.server.port;
    // The client (198.51.100.7) went through a proxy (10.0.0.5) that added a second line.
    const xff = 'X-Forwarded-For: 203.0.113.9, 198.51.100.7\r\nX-Forwarded-For: 10.0.0.5\r\n';
    const httpStatus = await rawHead(port, f.ts.ca, `GET /v1/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${f.manager}\r\nX-Request-Id: xff-http-${transport}\r\n${xff}Connection: close\r\n\r\n`);
    t.equal(httpStatus, 200);
    const upStatus = await rawHead(port, f.ts.ca, handshakeRequest('/core/v1', { authorization: `Bearer ${f.engineKey}` }, xff));
    t.equal(upStatus, 101, 'upgraded');
    const lines = await eventually(async () => {
      const l = f.ts.logLines();
      const http = l.find((x) => x.reqId === `xff-http-${transport}`);
      const core = l.find((x) => x.msg === 'core connected');
      return http && core ? { http, core } : undefined;
    }, 5000, 'both log lines');
    t.equal(lines.http.remote, '198.51.100.7', 'HTTP: the rightmost untrusted hop over both lines');
    t.equal(lines.core.remote, '198.51.100.7', 'upgrade: the same');
  });
}
