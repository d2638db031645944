import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config/settings';
import { createLeaf, generateCertificates } from '../src/provision/certs';
import { buildChainFile, checkTlsFiles, readCertificates, tlsMode } from '../src/transport/tls';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-tls-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const settingsWith = (tls: Record<string, string>) =>
  loadConfig({ env: {}, overrides: Object.fromEntries(Object.entries(tls).map(([k, v]) => [`tls.${k}`, v])) });

t.test('mode: all three on, none off, anything else names what is missing', async (t) => {
  t.same(tlsMode(settingsWith({})), { enabled: false });
  t.equal(tlsMode(settingsWith({ cert: 'c', key: 'k', ca: 'a' })).enabled, true);
  t.throws(() => tlsMode(settingsWith({ cert: 'c', key: 'k' })), ConfigError);
  t.throws(() => tlsMode(settingsWith({ cert: 'c', key: 'k' })), /tls\.ca \(env SC_TLS_CA\) is empty/);
  t.throws(() => tlsMode(settingsWith({ cert: 'c' })), /tls\.key \(env SC_TLS_KEY\) and tls\.ca \(env SC_TLS_CA\) are empty/);
});

t.test('file checks', async (t) => {
  const certs = await generateCertificates(path.join(tmp, 'a'));
  const other = await generateCertificates(path.join(tmp, 'b'));
  const good = { enabled: true as const, cert: certs.cert, key: certs.key, ca: certs.chain, passphrase: '' };

  const ok = checkTlsFiles(good);
  t.ok(ok.every((r) => r.ok), ok.map((r) => `${r.name}: ${r.detail}`).join('; '));
  t.match(ok.find((r) => r.name === 'TLS chain verifies')!.detail, /→.*→/, 'leaf → intermediate → root');

  const wrongKey = checkTlsFiles({ ...good, key: other.key });
  t.match(wrongKey.find((r) => r.name === 'TLS key matches certificate'), { ok: false, detail: /is not the key of/ });

  const wrongChain = checkTlsFiles({ ...good, ca: other.chain });
  t.match(wrongChain.find((r) => r.name === 'TLS chain verifies'), { ok: false, fix: /issuing CA chain/ });

  const expired = await createLeaf(path.join(tmp, 'a'), { cert: certs.intermediateCert, key: certs.intermediateKey }, { name: 'expired', days: 1, startDaysAgo: 10 });
  const exp = checkTlsFiles({ ...good, cert: expired.cert, key: expired.key });
  t.match(exp.find((r) => r.name === 'TLS certificate validity'), { ok: false, detail: /expired on/ });

  const missing = checkTlsFiles({ ...good, cert: path.join(tmp, 'nope.pem') });
  t.match(missing[0], { ok: false, name: 'TLS certificate files' });

  const garbage = path.join(tmp, 'garbage.key');
  fs.writeFileSync(garbage, 'not a key');
  t.match(checkTlsFiles({ ...good, key: garbage }).find((r) => r.name === 'TLS key matches certificate'), { ok: false, detail: /cannot read/ });
});

t.test('the served chain file is leaf + chain, private', async (t) => {
  const certs = await generateCertificates(path.join(tmp, 'c'));
  const chain = buildChainFile({ enabled: true, cert: certs.cert, key: certs.key, ca: certs.chain, passphrase: '' });
  t.equal(fs.statSync(chain.file).mode & 0o777, 0o600);
  const served = readCertificates(chain.file);
  t.equal(served.length, 1 + readCertificates(certs.chain).length);
  t.equal(served[0]!.fingerprint256, readCertificates(certs.cert)[0]!.fingerprint256);
  chain.remove();
  t.notOk(fs.existsSync(chain.file));
});
