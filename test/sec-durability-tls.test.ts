/**
 * Durability and transport security (issue 12 §6-7): the commit path writes with write
 * concern majority + journal and a server-side time limit (seen on the wire by command
 * monitoring against the real store), invalid write concerns are refused by config; the
 * listener refuses TLS below 1.2 and non-forward-secret TLS 1.2 suites on both transports,
 * and warns loudly when TLS is off on a non-loopback address.
 */
import tls from 'node:tls';
import { MongoClient, type CommandStartedEvent } from 'mongodb';
import t from 'tap';
import { loadConfig } from '../src/config/settings';
import { commitCheckpoint } from '../src/store/commit';
import { commitDurability } from '../src/store/durability';
import { FileStore } from '../src/store/files';
import { plaintextWarning } from '../src/transport/tls-policy';
import { coreFixture, type CoreFixture } from './helpers/core';
import { startTestServer } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';

t.teardown(stopStack);

t.test('the commit path writes with w:majority, j:true and maxTimeMS', async (t) => {
  const f: CoreFixture = await coreFixture();
  t.teardown(() => f.ts.close());
  const stack = await getStack();
  const client = new MongoClient(stack.mongo.uri, { tls: true, tlsCAFile: stack.mongoCAFile, monitorCommands: true });
  t.teardown(() => client.close());
  const seen: CommandStartedEvent[] = [];
  client.on('commandStarted', (e) => seen.push(e));
  const db = client.db(f.ts.settings.mongodb.database);
  const durable = commitDurability(f.ts.settings);
  t.same(durable, { writeConcern: { w: 'majority', journal: true }, maxTimeMS: 20000 }, 'the defaults');
  const files = new FileStore(db, 64, 1 << 20, durable);
  const stream = await f.stream(await f.target());
  const big = Buffer.alloc(1000, 7); // over the 64-byte inline limit: goes to GridFS
  const r = await commitCheckpoint(db, files, stream, 0, 3, [{ name: 'frames.xtc', bytes: Buffer.from('abc') }, { name: 'big.bin', bytes: big }], [{ name: 'state.xml', bytes: Buffer.from('s') }]);
  t.match(r, { ok: true, frames: 3 }, 'FerretDB accepts w:majority with journal on a standalone server');
  const insert = seen.find((e) => e.commandName === 'insert' && e.command.insert === 'partitions');
  const update = seen.find((e) => e.commandName === 'update' && e.command.update === 'streams');
  const upload = seen.find((e) => e.commandName === 'insert' && e.command.insert === 'blobs.chunks');
  t.match(insert?.command, { writeConcern: { w: 'majority', j: true }, maxTimeMS: 20000 }, 'partition document');
  t.match(update?.command, { writeConcern: { w: 'majority', j: true }, maxTimeMS: 20000 }, 'commit point');
  t.match(upload?.command, { writeConcern: { w: 'majority' } }, 'GridFS upload');
  t.throws(() => loadConfig({ env: {}, overrides: { 'mongodb.commitWriteConcern': 'all' } }), /commitWriteConcern/, 'a nonsense write concern is a config error');
  t.same(commitDurability(loadConfig({ env: {}, overrides: { 'mongodb.commitWriteConcern': '1', 'mongodb.commitJournal': false } })).writeConcern, { w: 1, journal: false });
});

/** Whether a TLS handshake with these client options succeeds. */
function handshake(port: number, ca: string, opts: tls.ConnectionOptions): Promise<{ ok: boolean; cipher?: string; protocol?: string | null; err?: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...opts });
    s.once('secureConnect', () => {
      resolve({ ok: true, cipher: s.getCipher().name, protocol: s.getProtocol() });
      s.destroy();
    });
    s.once('error', (err) => resolve({ ok: false, err: err.message }));
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: TLS 1.2+ with forward-secret AEAD suites only`, async (t) => {
    const ts = await startTestServer({ 'server.transport': transport });
    t.teardown(() => ts.close());
    const port = ts.server.port;
    const modern = await handshake(port, ts.ca, {});
    t.ok(modern.ok, `default client: ${modern.protocol} ${modern.cipher}`);
    const t12 = await handshake(port, ts.ca, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256' });
    t.ok(t12.ok, `TLS 1.2 with ECDHE + AES-GCM: ${t12.cipher}`);
    const cbc = await handshake(port, ts.ca, { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:AES256-SHA:AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA' });
    t.notOk(cbc.ok, `TLS 1.2 offering only RSA key exchange or CBC suites is refused (${cbc.err ?? cbc.cipher})`);
    const old = await handshake(port, ts.ca, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    t.notOk(old.ok, `TLS 1.1 is refused (${old.err ?? old.protocol})`);
  });
}

t.test('a loud warning when TLS is off and the listener is not on loopback', async (t) => {
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.org']) t.match(plaintextWarning(false, host), /TLS IS OFF/, host);
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) t.equal(plaintextWarning(false, host), undefined, `${host}: loopback, no warning`);
  t.equal(plaintextWarning(true, '0.0.0.0'), undefined, 'TLS on: no warning');
  // Behind a named proxy the listener may start (preflight passes), and says who alone may reach it.
  const proxied = plaintextWarning(false, '10.1.2.3', ['10.1.2.1']);
  t.match(proxied, /TLS is off .* server\.trustProxy \(10\.1\.2\.1\)/, 'behind a named proxy: the softer warning naming it');
  t.notMatch(proxied, /TLS IS OFF/);
  t.match(plaintextWarning(false, '0.0.0.0', ['127.0.0.1']), /TLS IS OFF/, 'a proxy on this machine does not shield every interface: the loud warning');
  const plain = await startTestServer({ 'tls.cert': '', 'tls.key': '', 'tls.ca': '' });
  t.teardown(() => plain.close());
  t.notOk(plain.rawLog().includes('TLS IS OFF'), 'a plain-HTTP test server on 127.0.0.1 does not warn');
});
