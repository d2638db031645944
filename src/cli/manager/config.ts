/**
 * Where the manager commands find the server and their token: environment variables
 * first, then the file `stream-coordinator login` writes ($XDG_CONFIG_HOME, by default
 * ~/.config, /stream-coordinator/cli.json), created with mode 0600 in a 0700 directory
 * because it holds a bearer token.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, EXIT, usage } from './exit';

/** What a command needs to reach the server. */
export interface Connection {
  /** Base URL of the admin API, e.g. `https://coordinator.example.org:8443` (no trailing slash). */
  url: string;
  /** Path of a PEM file of CA certificates to trust besides the system's, if any. */
  ca?: string;
  /** A user token (admin or manager). */
  token?: string;
}

/** Environment variables, which win over the file. */
export const ENV = { url: 'STREAM_COORDINATOR_URL', token: 'STREAM_COORDINATOR_TOKEN', ca: 'STREAM_COORDINATOR_CA' } as const;

/** Path of the config file for an environment. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'stream-coordinator', 'cli.json');
}

/** Reads the config file; `{}` when there is none. Warns when others may read it. */
export function readConfigFile(file: string, warn: (line: string) => void): Partial<Connection> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`, EXIT.failed);
  }
  if ((fs.statSync(file).mode & 0o077) !== 0) warn(`warning: ${file} is readable by other users; run: chmod 600 ${file}`);
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const str = (k: string) => (typeof v[k] === 'string' && v[k] !== '' ? (v[k] as string) : undefined);
    return { url: str('url'), ca: str('ca'), token: str('token') };
  } catch (err) {
    throw new CliError(`${file} is not valid JSON (${(err as Error).message}); run login again`, EXIT.usage);
  }
}

/** Writes the config file atomically with mode 0600 (its directory 0700). */
export function writeConfigFile(file: string, conn: Connection): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify({ url: conn.url, ...(conn.ca ? { ca: conn.ca } : {}), token: conn.token }, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/** Checks and normalises a base URL: https, or http only to a loopback address (tokens must not cross a network in clear). */
export function normaliseUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw usage(`"${raw}" is not a URL (expected e.g. https://coordinator.example.org:8443)`);
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) throw usage(`${raw}: use https:// (plain http only to a loopback address)`);
  if (u.search || u.hash || u.username || u.password) throw usage(`${raw}: no query, fragment or credentials in the URL`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

/** The connection to use: environment variables over the config file. */
export function resolveConnection(env: NodeJS.ProcessEnv, warn: (line: string) => void): Connection {
  const file = readConfigFile(configPath(env), warn);
  const url = env[ENV.url] || file.url;
  if (!url) throw usage(`no server configured: run "stream-coordinator login --url URL" or set ${ENV.url}`);
  return { url: normaliseUrl(url), ca: env[ENV.ca] || file.ca, token: env[ENV.token] || file.token };
}
