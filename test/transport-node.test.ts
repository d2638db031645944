/**
 * The node transport (node:https + ws) serves the same routes and core protocol as uWS.
 */
import crypto from 'node:crypto';
import tls from 'node:tls';
import t from 'tap';
import { CoreClient } from '../src/client';
import { coreFixture, type CoreFixture } from './helpers/core';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'server.transport': 'node', 'http.maxBodyBytes': 4096 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

t.test('HTTP over TLS: banner, readiness, errors, limits, full chain, TLS 1.2+', async (t) => {
  t.match((await request(`${f.ts.url}/`, { ca: f.ts.ca })).json(), { service: 'stream-coordinator' });
  t.same((await request(`${f.ts.url}/readyz`, { ca: f.ts.ca })).json(), { status: 'ready', checks: { mongodb: 'ok', redis: 'ok' } });
  t.equal((await request(`${f.ts.url}/nope`, { ca: f.ts.ca })).status, 404);
  const big = await request(`${f.ts.url}/v1/donors`, { ca: f.ts.ca, method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.alloc(5000, 32) });
  t.equal(big.status, 413);
  t.match(big.json(), { error: { code: 'too_large' } });
  const sock = tls.connect({ host: '127.0.0.1', port: f.ts.server.port, servername: 'localhost', ca: f.ts.ca });
  await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
  t.ok(sock.authorized, 'full chain served');
  sock.destroy();
  const err = await new Promise<Error | undefined>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: f.ts.server.port, servername: 'localhost', ca: f.ts.ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' });
    s.once('secureConnect', () => resolve(undefined)).once('error', resolve);
  });
  t.ok(err, 'TLS 1.1 refused');
});

t.test('core protocol end to end over ws', async (t) => {
  const bad = new CoreClient({ url: f.wsUrl, engineKey: 'nope', ca: f.ts.ca, reconnect: false });
  await t.rejects(bad.connect(), { code: 'unauthorized' });
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await f.client();
  t.teardown(() => c.close());
  const a = await c.assign(target);
  t.equal(a.streamId, stream);
  const sent: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const b = crypto.randomBytes(70_000);
    sent.push(b);
    await c.sendFrames([{ name: 'frames.xtc', data: b }]);
  }
  t.same(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('s') }]), { seq: 4, frames: 3, partition: 3 });
  const dl = await request(`${f.ts.url}/v1/streams/${stream}/frames/frames.xtc`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  t.ok(dl.body.equals(Buffer.concat(sent)), 'frames byte-identical');
  await c.stop();
});
