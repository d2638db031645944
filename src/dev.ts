/**
 * `stream-coordinator dev` (`npm run dev`): a whole local stack in one command — a dev CA
 * and server certificate under certs/dev/, Redis, a TLS-only MongoDB-compatible store
 * (mongod when on PATH, else FerretDB), `init`, and the server on https://localhost:8443.
 * Data persists under data/dev/ between runs; Ctrl-C stops everything it started.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from './config';
import { initDatabase } from './init';
import { createLogger } from './log';
import { createMongo } from './mongo';
import { formatResults, runPreflight } from './preflight';
import { startStack } from './provision/stack';
import { startServer } from './server';

const ROOT = path.resolve(__dirname, '..', '..');

/** Options of {@link runDev}. */
export interface DevOptions {
  files: string[];
  args: string[];
}

function say(line: string): void {
  process.stderr.write(`[dev] ${line}\n`);
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
    const hasUsers = (await mongo.db.collection('users').countDocuments({}, { limit: 1 })) > 0;
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

  let server;
  try {
    server = await startServer(settings, log);
  } catch (err) {
    say(`cannot start the server: ${(err as Error).message}`);
    return stopAll(1);
  }

  const ca = path.relative(process.cwd(), stack.certs.caCert) || stack.certs.caCert;
  const url = server.url.replace('127.0.0.1', 'localhost');
  say('');
  say(`stream-coordinator is up: ${url}`);
  say(`  health   ${url}/readyz      metrics ${url}/metrics`);
  say(`  cores    wss://localhost:${server.port}/core/v1`);
  say(`  CA       ${ca}   (trust it, or pass --cacert)`);
  say(`  Redis    ${stack.redis.url}     MongoDB ${stack.mongo.uri}`);
  say(token ? `  admin token  ${token}` : '  admin token: unknown (data/dev/admin-token is gone); run `stream-coordinator init --force --name admin2` against this stack');
  say('');
  say(`try: curl --cacert ${ca} https://localhost:${server.port}/readyz`);
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
