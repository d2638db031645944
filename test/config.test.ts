import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CONF_DIR, ConfigError, loadConfig, redactedSettings, schemaKeys, workerCount, workerShare } from '../src/config/settings';
import { configTable } from '../src/config/docs';
import { CLI } from './helpers/server';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-config-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, body: string): string => {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, body);
  return p;
};

t.test('defaults load and conf/default.json matches the schema defaults', async (t) => {
  const s = loadConfig({ env: {} });
  t.equal(s.server.port, 8443);
  t.equal(s.preflight.mode, 'enforce');
  const def = JSON.parse(fs.readFileSync(path.join(CONF_DIR, 'default.json'), 'utf8'));
  for (const [key, spec] of schemaKeys()) {
    const value = key.split('.').reduce((o: Record<string, unknown>, k) => o?.[k] as Record<string, unknown>, def);
    t.same(value, spec.default, `conf/default.json ${key}`);
  }
});

t.test('every key is documented with doc, format and env', async (t) => {
  for (const [key, spec] of schemaKeys()) {
    t.ok(spec.doc && spec.doc.length > 10, `${key} has a doc`);
    t.ok(spec.format !== undefined, `${key} has a format`);
    t.ok(spec.env, `${key} has an env var`);
  }
});

t.test('docs/config.md and README list every key', async (t) => {
  const docs = fs.readFileSync(path.join(CONF_DIR, '..', 'docs', 'config.md'), 'utf8');
  t.ok(docs.includes(configTable()), 'docs/config.md holds the generated table (npm run docs)');
  const readme = fs.readFileSync(path.join(CONF_DIR, '..', 'README.md'), 'utf8');
  t.ok(readme.includes(configTable()), 'README holds the generated table (npm run docs)');
});

t.test('example config is valid', async (t) => {
  const s = loadConfig({ env: {}, files: [path.join(CONF_DIR, 'example.json')] });
  t.ok(s.tls.cert.length > 0);
});

t.test('precedence: file < env < args', async (t) => {
  const f = file('p.json', JSON.stringify({ server: { port: 9001, workers: 2 } }));
  t.equal(loadConfig({ env: {}, files: [f] }).server.port, 9001);
  t.equal(loadConfig({ env: { SC_PORT: '9002' }, files: [f] }).server.port, 9002);
  t.equal(loadConfig({ env: { SC_PORT: '9002' }, files: [f], args: ['--port', '9003'] }).server.port, 9003);
  t.equal(loadConfig({ env: { SC_WORKERS: 'auto' } }).server.workers, 'auto');
  t.equal(workerCount(loadConfig({ env: { SC_WORKERS: 'auto' } }), 6), 6);
  t.same(loadConfig({ env: { SC_TRUST_PROXY: '127.0.0.1, 10.0.0.0/8' } }).server.trustProxy, ['127.0.0.1', '10.0.0.0/8']);
});

t.test('a budget set for the server is shared by its workers', async (t) => {
  const workers = (w: string): ReturnType<typeof loadConfig> => loadConfig({ env: { SC_WORKERS: w } });
  t.equal(workerShare(16, workers('1'), 2), 16, 'one process has it all');
  t.equal(workerShare(16, workers('14'), 2), 2, 'rounded up');
  t.equal(workerShare(16, workers('32'), 2), 1, 'at least one each');
  t.equal(workerShare(16, workers('auto'), 4), 4, '"auto" counts the CPUs');
});

t.test('secrets from *_FILE and redaction', async (t) => {
  const f = file('uri', 'mongodb://u:secret@db:27017/?tls=true\n');
  const s = loadConfig({ env: { SC_MONGODB_URI_FILE: f } });
  t.equal(s.mongodb.uri, 'mongodb://u:secret@db:27017/?tls=true');
  t.equal(redactedSettings(s).mongodb.uri, '[redacted]');
  t.throws(() => loadConfig({ env: { SC_METRICS_KEY_FILE: path.join(tmp, 'missing') } }), /metrics\.key: cannot read SC_METRICS_KEY_FILE/);
});

t.test('bad values name the key, the problem and the expected format', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ SC_PORT: '70000' }, /server\.port .*range.*Expected: a TCP port/],
    [{ SC_WORKERS: 'many' }, /server\.workers .*Expected: an integer ≥ 1 or "auto"/],
    [{ SC_TRUST_PROXY: 'example.com' }, /server\.trustProxy .*"example\.com" is not an IP address or CIDR range/],
    [{ SC_PREFLIGHT_MODE: 'maybe' }, /preflight\.mode .*Expected: one of "enforce", "warn"/],
    [{ SC_MAX_CONNECTIONS: '0' }, /server\.maxConnections .*integer ≥ 1/],
    // Strings that are not exactly the type: convict's own coercion read these as true, 8443, 32.
    [{ SC_DONORS_OPEN_REGISTRATION: '0' }, /donors\.openRegistration .*value was "0".*Expected: true or false/],
    [{ SC_DONORS_OPEN_REGISTRATION: 'no' }, /donors\.openRegistration .*value was "no"/],
    [{ SC_DONORS_OPEN_REGISTRATION: '' }, /donors\.openRegistration/],
    [{ SC_PORT: '8443x' }, /server\.port .*value was "8443x"/],
    [{ SC_MAX_CONNECTIONS: '0x20' }, /server\.maxConnections .*value was "0x20"/],
    [{ SC_WORKERS: '2.5' }, /server\.workers .*value was "2\.5"/],
    // uWS takes at most 960 s of silence (twice the heartbeat): more would be cut short unsaid.
    [{ SC_CORE_HEARTBEAT_S: '481' }, /core\.heartbeatS .*Expected: an integer from 1 to 480/],
  ];
  for (const [env, re] of cases) {
    t.throws(() => loadConfig({ env }), re, JSON.stringify(env));
    t.throws(() => loadConfig({ env }), ConfigError);
  }
  t.throws(() => loadConfig({ env: {}, files: [file('typo.json', '{"server":{"prot":1}}')] }), /unknown key "server\.prot"/);
  t.throws(() => loadConfig({ env: {}, files: [file('bool.json', '{"donors":{"openRegistration":"no"}}')] }), /donors\.openRegistration .*value was "no"/, 'a string in a file where a boolean goes');
  t.equal(loadConfig({ env: { SC_DONORS_OPEN_REGISTRATION: 'FALSE' } }).donors.openRegistration, false, '"true" and "false" in any case');
  t.equal(loadConfig({ env: { SC_DONORS_OPEN_REGISTRATION: 'True' } }).donors.openRegistration, true);
  t.throws(() => loadConfig({ env: { SC_MEMORY_PARTIAL_MESSAGES_BYTES: '1048576', SC_CORE_MAX_MESSAGE_BYTES: '2097152' } }), /memory\.partialMessagesBytes \(1048576\) must be at least core\.maxMessageBytes \(2097152\)/);
  t.throws(() => loadConfig({ env: {}, files: [file('broken.json', '{"server":')] }), /not valid JSON/);
  t.throws(() => loadConfig({ env: {}, files: [path.join(tmp, 'nope.json')] }), /cannot read config file/);
  t.throws(() => loadConfig({ env: { SC_METRICS_KEY: 'x' }, files: [file('sec.json', '{"server":{"port":"abc"}}')] }), /server\.port/);
});

t.test('the command line is strict: a mistyped flag or a flag without its value is exit 2', async (t) => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NODE_ENV: 'test' } });
  const typo = cli('config', '--wokers', '4');
  t.equal(typo.status, 2, 'serve --wokers 4 would have started one worker');
  t.match(typo.stderr, /unknown option --wokers; see --help/);
  t.equal(cli('config', '--config').status, 2, '--config without a file');
  t.equal(cli('config', '--port').status, 2, '--port without a number');
  const ok = cli('config', '--port', '9000', '--workers', '2');
  t.equal(ok.status, 0, ok.stderr);
  t.match(JSON.parse(ok.stdout), { server: { port: 9000, workers: 2 } });
});
