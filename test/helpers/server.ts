/**
 * Test servers: settings pointing at this file's stack, an in-process server on a free
 * port, a child-process CLI runner; `request` (re-exported from test-support/admin-api) is
 * the HTTPS client that trusts the dev root CA.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { loadConfig, type Settings } from '../../src/config/settings';
import type { Logger } from '../../src/telemetry/log';
import { REDACT_PATHS } from '../../src/telemetry/log';
import { startServer, type RunningServer } from '../../src/server';
import { getRedisCluster, getStack } from './stack';
import { writeConfigFile } from '../../test-support/config-file';

export { request, type RequestOptions, type Response } from '../../test-support/admin-api';

/** Path of the compiled CLI. */
export const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

/** Flat config overrides (`'server.port': 0`). */
export type Overrides = Record<string, unknown>;

/** Settings for a server on this file's stack: TLS on, loopback, ephemeral port. */
export async function stackOverrides(extra: Overrides = {}): Promise<Overrides> {
  const stack = await getStack();
  const cluster = await getRedisCluster();
  const redisCluster = cluster ? { 'redis.cluster': cluster.seeds } : {};
  return {
    env: 'test',
    dataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'sc-data-')),
    'server.host': '127.0.0.1',
    'server.port': 0,
    'server.shutdownTimeoutS': 5,
    'tls.cert': stack.certs.cert,
    'tls.key': stack.certs.key,
    'tls.ca': stack.certs.chain,
    'mongodb.uri': stack.mongo.uri,
    'mongodb.tlsCAFile': stack.mongoCAFile,
    'mongodb.database': `test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`,
    'mongodb.serverSelectionTimeoutMs': 3000,
    'redis.url': stack.redis.url,
    ...redisCluster,
    // Test files run side by side on one Redis: each file's servers get keys and a bus of their own.
    'redis.keyPrefix': `t${process.pid}:`,
    'log.level': 'info',
    // Tests make many deliberate bad-token requests from one address; sec-http-auth.test.ts tests the budget.
    'auth.failuresPerMinute': 1_000_000,
    // Tests provoke protocol and stream errors from one address on purpose; sec-reliability.test.ts
    // tests the cooling-off with its own thresholds.
    'reliability.minSample': 1_000_000_000,
    ...extra,
  };
}

/** A logger that keeps its JSON lines in memory. */
export function memoryLogger(): { log: Logger; lines: () => Array<Record<string, unknown>>; raw: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const log = pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  return {
    log,
    raw: () => text,
    lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** An in-process server on the stack, with its captured log. */
export interface TestServer {
  server: RunningServer;
  settings: Settings;
  url: string;
  ca: string;
  logLines: () => Array<Record<string, unknown>>;
  rawLog: () => string;
  close(): Promise<void>;
}

/** Starts a server in this process. */
export async function startTestServer(extra: Overrides = {}): Promise<TestServer> {
  const stack = await getStack();
  const settings = loadConfig({ env: {}, overrides: await stackOverrides(extra) });
  const mem = memoryLogger();
  const server = await startServer(settings, mem.log);
  keepLogOnFailure(mem.raw);
  return {
    server,
    settings,
    url: server.url.replace('localhost', '127.0.0.1'),
    ca: fs.readFileSync(stack.certs.caCert, 'utf8'),
    logLines: mem.lines,
    rawLog: mem.raw,
    close: () => server.close(),
  };
}

/** The logs of this file's servers, kept for {@link keepLogOnFailure}. */
const serverLogs: Array<() => string> = [];

/**
 * When this test file fails, writes each server's log (in-process, or a `serve` child's
 * output) to a temp file and prints its name and last lines on stderr: a rare failure in
 * CI is otherwise seen without the server's side of it.
 */
function keepLogOnFailure(raw: () => string): void {
  if (serverLogs.push(raw) > 1) return;
  process.once('exit', () => {
    if (t.passing()) return;
    serverLogs.forEach((log, i) => {
      const file = path.join(os.tmpdir(), `sc-test-server-${process.pid}-${i}.log`);
      fs.writeFileSync(file, log());
      const tail = log().trimEnd().split('\n').slice(-40).join('\n');
      process.stderr.write(`# server log ${i} of the failed test file: ${file}; its last lines:\n${tail}\n`);
    });
  });
}

/** Writes flat overrides as a JSON config file for the CLI. */
export function writeConfig(overrides: Overrides): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sc-conf-')), 'config.json');
  writeConfigFile(file, overrides);
  return file;
}

/** A CLI child process with its output collected. */
export interface CliProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Runs the CLI, optionally through a wrapper command (e.g. ['prlimit', '--nofile=512:512', '--']). */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; wrapper?: string[] } = {}): CliProcess {
  const cmd = [...(opts.wrapper ?? []), process.execPath, CLI, ...args];
  const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (args[0] === 'serve') keepLogOnFailure(() => out);
  return { child, output: () => out, exited };
}

/** Polls until `fn` resolves truthy or the time runs out. */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 15000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The port a CLI server bound, read from its "listening" log line. */
export async function listeningPort(p: CliProcess, timeoutMs = 30000): Promise<number> {
  return eventually(async () => {
    const m = /"url":"https?:\/\/[^"]*:(\d+)"/.exec(p.output());
    return m ? Number(m[1]) : undefined;
  }, timeoutMs, `a listening line in:\n${p.output()}`);
}
