#!/usr/bin/env node
/**
 * The `stream-coordinator` command: serve, init, preflight, dev, config, simulate, and the
 * manager commands (login, targets, streams, ...; see ./manager).
 * Exit codes: 0 success, 1 a check or operation failed, 2 bad usage or configuration
 * (the manager commands add 3-6, see docs/cli.md).
 */
import { parseArgs } from 'node:util';
import type { Settings } from '../config/settings';
import type { Logger } from '../telemetry/log';
import { VERSION } from '../version';
// Server modules (MongoDB driver, convict, pino, uWS) load on demand: the manager
// commands start in a fraction of the time without them.
import { MANAGER_COMMANDS, MANAGER_USAGE, runManager } from './manager';

const USAGE = `stream-coordinator ${VERSION}

Usage: stream-coordinator <command> [--config FILE]... [options]

Commands:
  serve        run the server (default)
  init         create indexes and the first admin; prints its token once
               (--name NAME, default "admin"; --force on a database that has users)
  preflight    check open-files limit, TLS files, MongoDB, Redis and the port
  dev          run a complete local stack (certificates, Redis, MongoDB-compatible
               store, init, server on https://localhost:8443); Ctrl-C stops it
  config       print the effective configuration (secrets redacted);
               --defaults prints conf/default.json, --markdown the key table
  simulate     run simulated cores against a server:
               --url wss://localhost:8443/core/v1 --engine-key KEY [--donor-token T]
               [--ca certs/dev/ca.pem] [--cores 10] [--frame-bytes 4096]
               [--checkpoint-every 10] [--checkpoints 5] [--error-rate 0]
               [--duration 0 (until Ctrl-C)] [--rate 100 (messages/s per core; 0 unpaced)] [--target ID]

Options:
  --config FILE   a JSON config file applied over conf/default.json (repeatable)
  --port N, --host ADDR, --workers N|auto, --log-level L, --preflight-mode enforce|warn,
  --data-dir DIR  override the matching keys (see docs/config.md)
  -h, --help      this text

${MANAGER_USAGE}`;

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function fail(text: string, code: number): never {
  process.stderr.write(`stream-coordinator: ${text}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] !== undefined && MANAGER_COMMANDS.has(argv[0])) process.exit(await runManager(argv));
  const { values, positionals } = parseCommandLine(argv);
  const command = positionals[0] ?? 'serve';
  if (values.help || command === 'help') return out(USAGE);
  if (values.version) return out(VERSION);
  const files = (values.config as string[] | undefined) ?? [];
  const { ConfigError, loadConfig, redactedSettings } = await import('../config/settings');
  const { configDefaults, configTable } = await import('../config/docs');

  if (command === 'config' && values.defaults) return out(JSON.stringify(configDefaults(), null, 2));
  if (command === 'config' && values.markdown) return out(configTable());
  if (command === 'simulate') return runSimulate(values as Record<string, string | undefined>);
  if (command === 'dev') {
    const { runDev } = await import('./dev');
    return runDev({ files, args: argv });
  }

  let settings: Settings;
  try {
    settings = loadConfig({ files, args: argv });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
  const { createLogger } = await import('../telemetry/log');
  const { formatResults, runPreflight } = await import('../config/preflight');
  const log = createLogger({ level: settings.log.level, pretty: settings.log.pretty });

  switch (command) {
    case 'config':
      return out(JSON.stringify(redactedSettings(settings), null, 2));
    case 'preflight': {
      const results = await runPreflight(settings);
      out(formatResults(results));
      process.exit(results.every((r) => r.ok) ? 0 : 1);
    }
    // falls through (process.exit never returns)
    case 'init':
      return runInit(settings, { force: values.force === true, name: values.name as string | undefined });
    case 'serve':
      return runServe(settings, log);
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`, 2);
  }
}

/**
 * The command line of every command but the manager's. Strict: a mistyped flag (`--wokers 4`)
 * or a flag without its value is bad usage (exit 2), not silently ignored.
 */
function parseCommandLine(argv: string[]): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        // The configuration keys' own flags (convict reads them from argv: docs/config.md).
        port: { type: 'string' },
        host: { type: 'string' },
        workers: { type: 'string' },
        transport: { type: 'string' },
        'log-level': { type: 'string' },
        'preflight-mode': { type: 'string' },
        'data-dir': { type: 'string' },
        config: { type: 'string', multiple: true },
        force: { type: 'boolean' },
        name: { type: 'string' },
        defaults: { type: 'boolean' },
        markdown: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        url: { type: 'string' },
        'engine-key': { type: 'string' },
        'donor-token': { type: 'string' },
        ca: { type: 'string' },
        cores: { type: 'string' },
        'frame-bytes': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        checkpoints: { type: 'string' },
        'error-rate': { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        target: { type: 'string' },
      },
    });
  } catch (err) {
    const unknown = /^Unknown option '([^']+)'/.exec((err as Error).message)?.[1];
    fail(`${unknown ? `unknown option ${unknown}` : (err as Error).message}; see --help`, 2);
  }
}

function num(values: Record<string, string | undefined>, key: string, def: number, min: number, max: number): number {
  const raw = values[key];
  if (raw === undefined) return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) fail(`--${key} must be a number from ${min} to ${max}`, 2);
  return v;
}

async function runSimulate(values: Record<string, string | undefined>): Promise<void> {
  if (!values.url || !values['engine-key']) fail('simulate needs --url and --engine-key (see --help)', 2);
  const { simulate } = await import('./simulate');
  const c = await simulate({
    url: values.url,
    engineKey: values['engine-key'],
    donorToken: values['donor-token'],
    caFile: values.ca,
    cores: num(values, 'cores', 10, 1, 20000),
    frameBytes: num(values, 'frame-bytes', 4096, 0, 64 * 1024 * 1024),
    checkpointEvery: num(values, 'checkpoint-every', 10, 1, 1e6),
    checkpointsPerAssignment: num(values, 'checkpoints', 5, 1, 1e6),
    errorRate: num(values, 'error-rate', 0, 0, 1),
    durationS: num(values, 'duration', 0, 0, 1e7),
    ratePerS: num(values, 'rate', 100, 0, 1e6),
    targetId: values.target,
    out: process.stderr,
  });
  process.exit(c.commits > 0 || c.frames > 0 ? 0 : 1);
}

async function runServe(settings: Settings, log: Logger): Promise<void> {
  const { formatResults, runPreflight } = await import('../config/preflight');
  const { serve } = await import('../workers');
  const cluster = await import('node:cluster');
  const { ConfigError } = await import('../config/settings');
  const { tlsMode } = await import('../transport/tls');
  try {
    // Settings that are wrong together (TLS partly configured) are bad configuration, like a
    // bad value: exit 2 before any check runs, whatever preflight.mode says.
    tlsMode(settings);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
  if (!cluster.default.isWorker) {
    const results = await runPreflight(settings);
    const failed = results.filter((r) => !r.ok);
    for (const r of results) (r.ok ? log.info : log.error).call(log, { check: r.name, ok: r.ok, detail: r.detail, fix: r.fix }, 'preflight');
    if (failed.length > 0) {
      if (settings.preflight.mode === 'enforce') {
        process.stderr.write(`${formatResults(results)}\n`);
        fail(`preflight failed (${failed.map((r) => r.name).join(', ')}); fix the above or set preflight.mode to "warn"`, 1);
      }
      log.warn({ failed: failed.map((r) => r.name) }, 'preflight failed; starting anyway because preflight.mode is "warn"');
    }
  }
  try {
    await serve(settings, log);
  } catch (err) {
    // A setting found wrong only as the server starts (TLS partly configured) is bad
    // configuration like any other: exit 2 with the message, no stack.
    if (err instanceof ConfigError) fail(err.message, 2);
    log.fatal({ err }, 'cannot start');
    fail((err as Error).message, 1);
  }
}

async function runInit(settings: Settings, opts: { force: boolean; name?: string }): Promise<void> {
  const { createMongo } = await import('../store/mongo');
  const { InitRefused, initDatabase } = await import('../store/init');
  let mongo;
  try {
    mongo = createMongo(settings);
    await mongo.client.connect();
  } catch (err) {
    fail(`cannot reach MongoDB: ${(err as Error).message}`, 1);
  }
  try {
    if (opts.force) {
      process.stderr.write(`WARNING: --force: init proceeds even if database "${settings.mongodb.database}" already holds users.\n`);
    }
    const r = await initDatabase(mongo.db, { force: opts.force, adminName: opts.name });
    if (r.existingUsers > 0) process.stderr.write(`WARNING: database "${settings.mongodb.database}" already had ${r.existingUsers} user(s); another admin was added.\n`);
    out(`Indexes: ${r.indexesCreated.length > 0 ? `created ${r.indexesCreated.join(', ')}` : 'all present'}${r.indexesDropped.length > 0 ? `; dropped ${r.indexesDropped.join(', ')} (replaced)` : ''}`);
    out(`Created admin "${r.name}". Its token is shown once and stored only as a hash; keep it now:\n\n  ${r.token}\n`);
  } catch (err) {
    if (err instanceof InitRefused) fail(`init refused: ${err.message}`, 1);
    throw err;
  } finally {
    await mongo.client.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    fail(err instanceof Error ? (err.stack ?? err.message) : String(err), 1);
  });
}
