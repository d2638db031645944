/**
 * `stream-coordinator dev` (`npm run dev`): a whole local stack in one command — a dev CA
 * and server certificate under certs/dev/, Redis, a TLS-only MongoDB-compatible store
 * (mongod when on PATH, else FerretDB), `init`, and the server on https://localhost:8443.
 * Data persists under data/dev/ between runs; Ctrl-C stops everything it started.
 */
import { anyUser } from '../store/users';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { ConfigError, loadConfig } from '../config/settings';
import { initDatabase } from '../store/init';
import { createLogger } from '../telemetry/log';
import { createMongo } from '../store/mongo';
import { formatResults, runPreflight } from '../config/preflight';
import { startStack } from '../provision/stack';
import { startServer } from '../server';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Options of {@link runDev}. */
export interface DevOptions {
  files: string[];
  args: string[];
}

function say(line: string): void {
  process.stderr.write(`[dev] ${line}\n`);
}

interface Demo {
  managerToken: string;
  engineKey: string;
  targetId: string;
  streams: number;
}

/**
 * On the first run, creates through the admin API a demo manager, a public target for
 * engine `openmm` with 20 streams, and an engine key, so `simulate` has work at once.
 * Kept in data/dev/demo.json (git-ignored) because tokens and keys are stored only hashed.
 */
async function ensureDemo(baseUrl: string, ca: Buffer, adminToken: string, dataDir: string): Promise<Demo> {
  const file = path.join(dataDir, 'demo.json');
  const call = async <T>(method: string, p: string, token: string, body: unknown): Promise<T> => {
    const res = await httpsJson(`${baseUrl}${p}`, ca, method, token, body);
    if (res.status >= 300) throw new Error(`${method} ${p}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as T;
  };
  if (fs.existsSync(file)) {
    const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as Demo;
    // Rotated since (POST /v1/users/demo/token): rotate again with the admin token, so the
    // token printed is one that works.
    if ((await httpsJson(`${baseUrl}/v1/me`, ca, 'GET', kept.managerToken, undefined)).status === 401) {
      kept.managerToken = (await call<{ token: string }>('POST', '/v1/users/demo/token', adminToken, {})).token;
      fs.writeFileSync(file, JSON.stringify(kept), { mode: 0o600 });
    }
    return kept;
  }
  const managerToken = (await call<{ token: string }>('POST', '/v1/users', adminToken, { name: 'demo', role: 'manager' })).token;
  const engineKey = (await call<{ key: string }>('POST', '/v1/engine-keys', adminToken, { engine: 'openmm', description: 'dev demo' })).key;
  const targetId = (await call<{ target_id: string }>('POST', '/v1/targets', managerToken, { engines: ['openmm'], stage: 'public', options: { title: 'dev demo' } })).target_id;
  const streams = 20;
  for (let i = 0; i < streams; i++) {
    await call('POST', `/v1/targets/${targetId}/streams`, managerToken, { files: { 'state.xml': Buffer.from(`<state seed="${i}"/>`).toString('base64') } });
  }
  const demo = { managerToken, engineKey, targetId, streams };
  fs.writeFileSync(file, JSON.stringify(demo), { mode: 0o600 });
  return demo;
}

function httpsJson(url: string, ca: Buffer, method: string, token: string, body: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : {} }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Runs the dev stack until SIGINT/SIGTERM. */
export async function runDev(opts: DevOptions): Promise<void> {
  const dataDir = path.join(ROOT, 'data', 'dev');
  const certsDir = path.join(ROOT, 'certs', 'dev');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  const stack = await startStack({ baseDir: dataDir, certsDir, persist: true, log: say });
  let stopping = false;
  const stopAll = async (code: number): Promise<never> => {
    stopping = true;
    await stack.stop().catch(() => undefined);
    process.exit(code);
  };

  let settings;
  try {
    settings = loadConfig({
      files: opts.files,
      args: opts.args,
      overrides: {
        env: 'development',
        dataDir,
        'server.host': '127.0.0.1',
        'tls.cert': stack.certs.cert,
        'tls.key': stack.certs.key,
        'tls.ca': stack.certs.chain,
        'mongodb.uri': stack.mongo.uri,
        'mongodb.tlsCAFile': stack.mongoCAFile,
        'redis.url': stack.redis.url,
        'log.pretty': true,
      },
    });
  } catch (err) {
    say(err instanceof ConfigError ? err.message : String(err));
    return stopAll(2);
  }
  const log = createLogger({ level: settings.log.level, pretty: settings.log.pretty });

  // The dev admin's token is kept in the (git-ignored) data dir so every run can show it.
  const tokenFile = path.join(dataDir, 'admin-token');
  const mongo = createMongo(settings);
  let token: string | undefined;
  try {
    await mongo.client.connect();
    const hasUsers = await anyUser(mongo.db);
    if (!hasUsers) {
      const r = await initDatabase(mongo.db);
      token = r.token;
      fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      say(`init: created admin "${r.name}" and indexes`);
    } else if (fs.existsSync(tokenFile)) {
      token = fs.readFileSync(tokenFile, 'utf8').trim();
    }
  } finally {
    await mongo.client.close();
  }

  const results = await runPreflight(settings);
  if (results.some((r) => !r.ok)) say(`preflight:\n${formatResults(results)}`);
  // The other checks only warn in development; a port another server holds would not work at all.
  const port = results.find((r) => !r.ok && r.name.startsWith('port '));
  if (port) {
    const other = settings.server.port + 1000 <= 65535 ? settings.server.port + 1000 : 9443;
    say(`cannot use port ${settings.server.port} (${port.detail}; another dev stack?): stop what holds it, or choose another port: npm run dev -- --port ${other}`);
    return stopAll(1);
  }

  let server;
  try {
    server = await startServer(settings, log);
  } catch (err) {
    say(`cannot start the server: ${(err as Error).message}`);
    return stopAll(1);
  }

  const demo = token ? await ensureDemo(server.url, fs.readFileSync(stack.certs.caCert), token, dataDir).catch((err: Error) => {
    say(`could not create the demo target: ${err.message}`);
    return undefined;
  }) : undefined;

  const ca = path.relative(process.cwd(), stack.certs.caCert) || stack.certs.caCert;
  const url = server.url.replace('127.0.0.1', 'localhost');
  say('');
  say(`stream-coordinator is up: ${url}`);
  say(`  health   ${url}/readyz      metrics ${url}/metrics`);
  say(`  dashboard ${url}/dashboard/   (sign in with a token below; the CA must be trusted by the browser)`);
  say(`  cores    wss://localhost:${server.port}/core/v1`);
  say(`  CA       ${ca}   (trust it, or pass --cacert)`);
  say(`  Redis    ${stack.redis.url}     MongoDB ${stack.mongo.uri}`);
  say(token ? `  admin token  ${token}` : '  admin token: unknown (data/dev/admin-token is gone); run `stream-coordinator init --force --name admin2` against this stack');
  if (demo) say(`  demo     manager "demo" (token ${demo.managerToken}), public target ${demo.targetId} with ${demo.streams} streams, engine key ${demo.engineKey}`);
  say('');
  say(`try: curl --cacert ${ca} https://localhost:${server.port}/readyz`);
  if (demo) say(`     npm run simulate -- --url wss://localhost:${server.port}/core/v1 --ca ${ca} --engine-key ${demo.engineKey} --cores 10`);
  say('Ctrl-C stops the server, Redis and the database.');

  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    say('stopping…');
    server
      .close()
      .catch(() => undefined)
      .then(() => stopAll(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
