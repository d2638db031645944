/**
 * The provisioning layer brings up real servers: MongoDB over TLS only (trusting just the
 * dev root CA, through an intermediate), Redis, and certificates that chain correctly.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { MongoClient } from 'mongodb';
import Redis from 'ioredis';
import { createLeaf, ensureDevCertificates, generateCertificates } from '../src/provision/certs';
import { getStack, stopStack } from '../test-support/stack';

const cert = (file: string): X509Certificate => new X509Certificate(fs.readFileSync(file));

/** Pids whose parent is this process (Linux /proc), i.e. children that would outlive a stop. */
function childPids(): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = fs.readFileSync(`/proc/${name}/status`, 'utf8');
      const ppid = /^PPid:\s+(\d+)/m.exec(status)?.[1];
      const state = /^State:\s+(\S)/m.exec(status)?.[1];
      if (Number(ppid) === process.pid && state !== 'Z') out.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('stack', async (t) => {
  const t0 = Date.now();
  const stack = await getStack();
  t.comment(`stack started in ${Date.now() - t0} ms (mongo: ${stack.mongoKind})`);
  t.teardown(stopStack);

  t.test('MongoDB over TLS with the root CA: insert and find', async (t) => {
    const client = new MongoClient(stack.mongo.uri, { tlsCAFile: stack.mongoCAFile, serverSelectionTimeoutMS: 10_000 });
    t.teardown(() => client.close());
    await client.connect();
    const coll = client.db('provision_test').collection<{ _id: string; n: number }>('things');
    await coll.insertOne({ _id: 'a', n: 1 });
    t.same(await coll.findOne({ _id: 'a' }), { _id: 'a', n: 1 });
  });

  t.test('MongoDB refuses plaintext', async (t) => {
    const client = new MongoClient(`mongodb://${stack.mongo.host}:${stack.mongo.port}/`, { serverSelectionTimeoutMS: 2000 });
    t.teardown(() => client.close());
    await t.rejects(client.db('admin').command({ ping: 1 }));
  });

  t.test('MongoDB over TLS without the dev CA is refused (the server certificate is really verified)', async (t) => {
    const client = new MongoClient(stack.mongo.uri, { serverSelectionTimeoutMS: 2000 });
    t.teardown(() => client.close());
    await t.rejects(client.db('admin').command({ ping: 1 }));
  });

  t.test('Redis answers PING', async (t) => {
    const redis = new Redis(stack.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    t.teardown(() => redis.disconnect());
    await redis.connect();
    t.equal(await redis.ping(), 'PONG');
  });

  t.test('certificate chain: leaf <- intermediate <- root', async (t) => {
    const { certs } = stack;
    const root = cert(certs.caCert);
    const inter = cert(certs.intermediateCert);
    const leaf = cert(certs.cert);
    t.ok(root.verify(root.publicKey), 'root is self-signed');
    t.ok(inter.verify(root.publicKey), 'intermediate signed by root');
    t.ok(leaf.verify(inter.publicKey), 'leaf signed by intermediate');
    t.notOk(leaf.verify(root.publicKey), 'leaf not signed by root directly');
    t.ok(leaf.checkHost('localhost'));
    t.ok(leaf.checkIP('127.0.0.1'));
    t.ok(leaf.checkIP('::1'));
    t.ok(Date.parse(leaf.validTo) - Date.now() <= 826 * 86_400_000, 'leaf lifetime at most 825 days');
    t.match(leaf.keyUsage ?? [], ['1.3.6.1.5.5.7.3.1'], 'serverAuth');
    const chain = fs.readFileSync(certs.chain, 'utf8');
    t.equal(chain, fs.readFileSync(certs.intermediateCert, 'utf8') + fs.readFileSync(certs.caCert, 'utf8'), 'chain = intermediate + root');
    for (const f of [certs.key, certs.caKey, certs.intermediateKey]) t.equal(fs.statSync(f).mode & 0o777, 0o600, `${path.basename(f)} is 0600`);
    t.equal(fs.statSync(certs.dir).mode & 0o777, 0o700, 'certificate directory is 0700');
  });

  t.test('Redis and MongoDB stop and leave no child processes', async (t) => {
    const pids = [stack.redis.pid, stack.mongo.pid];
    t.ok(pids.every(alive), 'both running before stop');
    await stopStack();
    t.ok(pids.every((p) => !alive(p)), 'both gone after stop');
    t.same(childPids(), [], 'no child processes left');
    await stack.stop(); // idempotent
  });
});

t.test('certificates: reuse, reissue and expired leaves', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'stream-coordinator-certs-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const first = await ensureDevCertificates(dir);
  const fp = cert(first.cert).fingerprint256;
  const rootFp = cert(first.caCert).fingerprint256;
  const again = await ensureDevCertificates(dir);
  t.equal(cert(again.cert).fingerprint256, fp, 'valid files are reused');

  const wider = await ensureDevCertificates(dir, { hosts: ['coordinator.test', '10.1.2.3'] });
  const leaf = cert(wider.cert);
  t.not(leaf.fingerprint256, fp, 'a leaf missing requested hosts is reissued');
  t.equal(cert(wider.caCert).fingerprint256, rootFp, '...under the same root');
  t.ok(leaf.checkHost('coordinator.test') && leaf.checkIP('10.1.2.3'));

  const expired = await createLeaf(dir, { cert: first.intermediateCert, key: first.intermediateKey }, {
    name: 'expired',
    startDaysAgo: 30,
    days: 1,
  });
  const old = cert(expired.cert);
  t.ok(Date.parse(old.validTo) < Date.now(), `expired: validTo ${old.validTo}`);
  t.ok(old.verify(cert(first.intermediateCert).publicKey), 'still signed by the intermediate');

  // An expired leaf in place is replaced on the next ensure.
  await fsp.copyFile(expired.cert, first.cert);
  await fsp.copyFile(expired.key, first.key);
  const renewed = cert((await ensureDevCertificates(dir)).cert);
  t.ok(Date.parse(renewed.validTo) > Date.now() + 800 * 86_400_000, 'expired leaf is reissued');

  const fresh = await generateCertificates(dir);
  t.not(cert(fresh.caCert).fingerprint256, rootFp, 'generateCertificates makes a new root');
});
