/**
 * Test servers: settings pointing at this file's stack, an in-process server on a free
 * port, a child-process CLI runner; `request` (re-exported from test-support/admin-api) is
 * the HTTPS client that trusts the dev root CA.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { loadConfig, type Settings } from '../../src/config/settings';
import type { Logger } from '../../src/telemetry/log';
import { REDACT_PATHS } from '../../src/telemetry/log';
import { ClientLog } from '../../src/telemetry/client-log';
import { Metrics } from '../../src/telemetry/metrics';
import { TrustList } from '../../src/http/client-address';
import type { Router } from '../../src/http/router';
import type { HttpContext } from '../../src/http/exchange';
import { startServer, type RunningServer } from '../../src/server';
import { runCli as runCliChild, type CliProcess, type RunCliOptions } from '../../test-support/cli';
import { getStack, stackOverrides, type Overrides } from '../../test-support/stack';

export { request, type RequestOptions, type Response } from '../../test-support/admin-api';
export { CLI, listeningPort, type CliProcess } from '../../test-support/cli';
export { eventually } from '../../test-support/poll';
export { writeConfig } from '../../test-support/config-file';
export { stackOverrides, type Overrides } from '../../test-support/stack';

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

/**
 * The HTTP context of a transport served without a server around it (fresh metrics, no
 * trusted proxies, client lines within the default budget), plus `extra`.
 */
export function bareHttpContext(router: Router, log: Logger, extra: Partial<HttpContext> = {}): HttpContext {
  const metrics = new Metrics();
  return { router, trust: new TrustList([]), log, clientLog: new ClientLog(log, 1000, metrics.logLinesSkipped, 'http'), metrics, ...extra };
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
export function keepLogOnFailure(raw: () => string): void {
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

/** Runs the CLI in a child process (test-support/cli.ts); a `serve` child's output is kept if this file fails. */
export function runCli(args: string[], opts: Omit<RunCliOptions, 'onServe'> = {}): CliProcess {
  return runCliChild(args, { ...opts, onServe: keepLogOnFailure });
}
