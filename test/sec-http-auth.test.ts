/**
 * Anonymous clients and failed authentication (issue 12 §4-5), on both transports:
 * unauthenticated large POSTs get 401 quickly with `Connection: close` and RSS does not grow
 * by their size; bad tokens and bad engine keys exhaust a per-address budget and then get
 * 429 before any lookup; core sockets per address are capped; IPv6 addresses count by /64.
 */
import tls from 'node:tls';
import t from 'tap';
import { addressKey } from '../src/auth/address-key';
import { freePort } from '../src/provision/exec';
import { cliServer, RawCore, tryUpgrade, type CliServer } from './helpers/core-raw';
import { stopStack } from '../test-support/stack';
import { coreFixture } from './helpers/core';
import { request } from './helpers/server';

const MIB = 1024 * 1024;
/** How long after a complete answer the server has to close the connection. */
const CLOSE_WAIT_MS = 5000;
t.teardown(stopStack);

t.test('IPv6 addresses count by /64', async (t) => {
  t.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
  t.equal(addressKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  t.not(addressKey('2001:db8:1:3::1'), addressKey('2001:db8:1:2::1'));
  t.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
  t.equal(addressKey('10.1.2.3'), '10.1.2.3');
  t.equal(addressKey('::1'), '0:0:0:0::/64');
});

/**
 * Sends a POST head announcing `total` bytes, then 64 KiB of it (polite) or all of it as
 * fast as the socket takes it (blind), until the server answers or closes. A blind client
 * may never see the answer: the server closes with unread data, so the kernel resets the
 * connection; what matters then is that it stopped taking the body. Resolves with the answer's status, its Connection
 * header, how long the answer took, how much body was pushed before it, and whether the server
 * closed the connection within {@link CLOSE_WAIT_MS} of answering.
 */
function anonymousPost(srv: CliServer, path: string, total: number, headers: Record<string, string> = {}, blind = false): Promise<{ status: number; connection?: string; ms: number; sent: number; body: string; closed: boolean }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const sock = tls.connect({ host: '127.0.0.1', port: srv.port, ca: srv.ca, servername: 'localhost' });
    let sent = 0;
    let text = '';
    let done = false;
    let answeredAt: number | undefined;
    let closeWait: NodeJS.Timeout | undefined;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(closeWait);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const connection = /\r\nconnection: *([^\r]+)\r\n/i.exec(text)?.[1]?.toLowerCase();
      resolve({ status, connection, ms: (answeredAt ?? Date.now()) - started, sent, body: text.slice(text.indexOf('\r\n\r\n') + 4), closed });
      sock.destroy();
    };
    sock.on('data', (d: Buffer) => {
      text += d.toString();
      const head = text.indexOf('\r\n\r\n');
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? -1);
      if (answeredAt === undefined && head >= 0 && len >= 0 && text.length >= head + 4 + len) {
        answeredAt = Date.now();
        // The server's close follows its answer; on a loaded machine (CI runs files side by
        // side, 40 clients pushing at once) that can take more than a few ms to arrive.
        closeWait = setTimeout(() => finish(false), CLOSE_WAIT_MS);
      }
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => undefined);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    sock.once('secureConnect', () => {
      sock.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n${extra}\r\n`);
      const chunk = Buffer.alloc(blind ? MIB : 64 * 1024, 0x20);
      const pump = (): void => {
        // A polite client sends 64 KiB and waits for an answer; a blind one pushes everything.
        while (!done && !sock.destroyed && sent < (blind ? total : 64 * 1024)) {
          sent += chunk.length;
          if (!sock.write(chunk)) {
            sock.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport} transport`, async (t) => {
    const srv = await cliServer(
      await freePort(),
      { 'server.workers': 1, 'server.transport': transport, 'auth.failuresPerMinute': 5, 'core.maxSocketsPerAddress': 3, 'redis.keyPrefix': `${transport}:` },
      /"msg":"listening"/,
    );
    t.teardown(() => srv.stop());
    const target = await srv.f.target();
    const path = `/v1/targets/${target}/streams`;

    await t.test('an anonymous POST announcing 64 MiB: 401 at once and the connection closed', async (t) => {
      const r = await anonymousPost(srv, path, 64 * MIB);
      t.equal(r.status, 401);
      t.equal(r.connection, 'close', 'Connection: close');
      t.ok(r.closed, 'closed by the server');
      t.match(JSON.parse(r.body), { error: { code: 'unauthorized' } });
      t.ok(r.ms < 5000, `answered in ${r.ms} ms`);
    });

    await t.test('40 blind anonymous 64 MiB POSTs: cut off quickly, RSS not grown by their size', async (t) => {
      const before = srv.rss();
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, srv.rss())), 20);
      const results = await Promise.all(Array.from({ length: 40 }, () => anonymousPost(srv, path, 64 * MIB, {}, true)));
      clearInterval(sampler);
      peak = Math.max(peak, srv.rss());
      const slowest = Math.max(...results.map((r) => r.ms));
      const sent = results.reduce((n, r) => n + r.sent, 0);
      t.equal(results.filter((r) => !r.closed).length, 0, `every connection was closed by the server within ${CLOSE_WAIT_MS} ms of its answer`);
      t.ok(slowest < 15_000, `all cut off within ${slowest} ms`);
      t.ok(sent < 40 * 64 * MIB * 0.5, `clients got only ${(sent / MIB).toFixed(0)} MiB of ${40 * 64} MiB in`);
      const growth = peak - before;
      t.ok(growth < 64 * MIB, `RSS grew ${(growth / MIB).toFixed(1)} MiB (bound 64 MiB)`);
      await srv.f.api('GET', `/v1/targets/${target}`, srv.f.manager, undefined, 200);
      t.pass('authenticated requests are still served');
    });

    await t.test('core sockets per address are capped', async (t) => {
      const cores: RawCore[] = [];
      t.teardown(() => Promise.all(cores.map((c) => c.close())));
      for (let i = 0; i < 3; i++) cores.push(await RawCore.connect(srv.f.wsUrl, { engineKey: srv.f.engineKey, ca: srv.ca }));
      const fourth = await tryUpgrade(srv.f.wsUrl, { authorization: `Bearer ${srv.f.engineKey}` }, srv.ca);
      t.equal(fourth.status, 429, 'the fourth socket from one address is refused');
      t.match(fourth.body, /rate_limited/);
      await cores.pop()!.close();
      await new Promise((r) => setTimeout(r, 300));
      const again = await tryUpgrade(srv.f.wsUrl, { authorization: `Bearer ${srv.f.engineKey}` }, srv.ca);
      t.equal(again.opened, true, 'a closed socket frees its place');
    });
    await t.test('bad tokens: 401 until the per-address budget is spent, then 429 with Retry-After', async (t) => {
      // A donor registered now, whose token this server has never looked up.
      const fresh = (await srv.f.api<{ token: string }>('POST', '/v1/donors', undefined, { name: `fresh-${transport}` }, 201)).token;
      // The manager's token and the engine key, used just before: this server holds them as valid.
      await srv.f.api('GET', `/v1/targets/${target}`, srv.f.manager, undefined, 200);
      t.equal((await tryUpgrade(srv.f.wsUrl, { authorization: `Bearer ${srv.f.engineKey}` }, srv.ca)).opened, true);
      const statuses: number[] = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < 8; i++) {
        const r = await anonymousPost(srv, path, 4 * MIB, { authorization: `Bearer bogus-token-${i}-${'x'.repeat(40)}` });
        statuses.push(r.status);
        t.equal(r.connection, 'close', `refusal ${i + 1} closes the connection`);
        if (r.status === 429) retryAfter = JSON.parse(r.body).error.code;
      }
      t.same(statuses.slice(0, 5), [401, 401, 401, 401, 401], 'five failures are answered 401');
      t.same(statuses.slice(5), [429, 429, 429], 'then 429');
      t.equal(retryAfter, 'rate_limited');
      // Core upgrades share the budget: the address is already over it.
      const up = await tryUpgrade(srv.f.wsUrl, { authorization: 'Bearer not-an-engine-key' }, srv.ca);
      t.equal(up.status, 429, 'a bad engine key from the same address is refused before any lookup');
      t.ok(up.headers?.['retry-after'], 'with Retry-After');
      // Over its budget, the address is refused anything that needs a lookup, until the budget
      // refills; credentials this server holds as valid need none, and are served.
      const withFresh = await tryUpgrade(srv.f.wsUrl, { authorization: `Bearer ${srv.f.engineKey}`, 'x-donor-token': fresh }, srv.ca);
      t.equal(withFresh.status, 429, 'a valid donor token never looked up: refused until Retry-After');
      const known = await tryUpgrade(srv.f.wsUrl, { authorization: `Bearer ${srv.f.engineKey}` }, srv.ca);
      t.equal(known.opened, true, 'an engine key the server holds as valid is served');
      await srv.f.api('GET', `/v1/targets/${target}`, srv.f.manager, undefined, 200);
      t.pass("so is the manager's token");
    });

  });
}

t.test('past its failure budget, an address keeps the tokens found valid in the last minutes, not others', async (t) => {
  const f = await coreFixture({ 'auth.failuresPerMinute': 3, 'auth.cacheTtlS': 1 });
  t.teardown(() => f.ts.close());
  const status = (token: string): Promise<number> => request(`${f.ts.url}/v1/me`, { ca: f.ts.ca, headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
  const other = await f.api<{ token: string }>('POST', '/v1/users', f.admin, { name: `never-used-${Date.now()}`, role: 'manager' }, 201);
  const keys = await Promise.all(['kept', 'revoked', 'unused'].map((d) => f.api<{ id: string; key: string }>('POST', '/v1/engine-keys', f.admin, { engine: 'openmm', description: d }, 201)));
  const [kept, revoked, unused] = keys as [{ id: string; key: string }, { id: string; key: string }, { id: string; key: string }];
  const upgrade = (key: string, donor?: string) => tryUpgrade(f.wsUrl, { authorization: `Bearer ${key}`, ...(donor ? { 'x-donor-token': donor } : {}) }, f.ts.ca);
  t.equal((await upgrade(kept.key, f.donor)).opened, true);
  t.equal((await upgrade(revoked.key)).opened, true);
  t.equal(await status(f.manager), 200);
  const bad = [];
  for (let i = 0; i < 5; i++) bad.push(await status(`bogus-${i}-${'x'.repeat(30)}`));
  t.same(bad, [401, 401, 401, 429, 429], 'the budget is spent');
  t.equal(await status(f.manager), 200, 'a token in the cache: served');
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(await status(f.manager), 200, 'once its cache entry has expired, a token found valid minutes ago is looked up and served');
  t.equal(await status(other.token), 429, 'a valid token this server has never seen is refused until Retry-After');
  // Core upgrades alike: an engine key and donor token found valid minutes ago are looked up past the budget.
  t.equal((await upgrade(kept.key, f.donor)).opened, true, 'an engine key and donor token found valid minutes ago: served');
  t.equal((await upgrade(unused.key)).status, 429, 'a valid engine key this server has never seen: refused until Retry-After');
  await f.api('DELETE', `/v1/engine-keys/${revoked.id}`, f.admin, undefined, 204);
  t.equal((await upgrade(revoked.key)).status, 429, 'a key revoked since is no longer recently valid: refused before any lookup');
});
