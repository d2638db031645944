/**
 * Loading the configuration (the schema is in schema.ts). Sources, lowest precedence
 * first: schema defaults, `conf/default.json`, `conf/<env>.json` when present, each
 * `--config FILE` in order, environment variables, command-line flags. A key marked
 * sensitive may also be read from a file named by `<ENV>_FILE` (e.g. `SC_MONGODB_URI_FILE`).
 */
import fs from 'node:fs';
import path from 'node:path';
import convict from 'convict';
import { schema, type Settings } from './schema';

export type { Settings } from './schema';

/** Directory holding default.json and example.json. */
export const CONF_DIR = path.resolve(__dirname, '..', '..', '..', 'conf');

/** A configuration problem that should stop start-up with a clear message. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Options for {@link loadConfig}. */
export interface LoadOptions {
  /** Extra config files, applied in order after conf/default.json (from `--config FILE`). */
  files?: string[];
  /** Environment; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Command-line flags, e.g. ['--port', '9000']; defaults to none. */
  args?: string[];
  /** Overrides applied last (used by tests and by the dev stack). */
  overrides?: Record<string, unknown>;
}

interface LeafSpec {
  env?: string;
  sensitive?: boolean;
  format?: unknown;
}

/** Lists every leaf key of the schema with its dotted path. */
export function schemaKeys(node: Record<string, unknown> = schema, prefix = ''): Array<[string, LeafSpec & { doc: string; default: unknown }]> {
  const out: Array<[string, LeafSpec & { doc: string; default: unknown }]> = [];
  for (const [k, v] of Object.entries(node)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && 'doc' in v) out.push([key, v as LeafSpec & { doc: string; default: unknown }]);
    else out.push(...schemaKeys(v as Record<string, unknown>, key));
  }
  return out;
}

function readSecretFiles(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const result = { ...env };
  for (const [key, spec] of schemaKeys()) {
    if (!spec.sensitive || !spec.env) continue;
    const file = env[`${spec.env}_FILE`];
    if (!file) continue;
    try {
      result[spec.env] = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(`${key}: cannot read ${spec.env}_FILE "${file}": ${(err as Error).message}`);
    }
  }
  return result;
}

function loadJson(config: convict.Config<unknown>, file: string): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  try {
    config.load(data as object);
  } catch (err) {
    throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
  }
}

/**
 * Loads and validates the configuration. Throws {@link ConfigError} naming the key, the
 * problem with its value and the expected format when anything is wrong; unknown keys in
 * files are errors too (a typo must not silently fall back to a default).
 */
export function loadConfig(opts: LoadOptions = {}): Settings {
  const env = readSecretFiles(opts.env ?? process.env);
  let config: convict.Config<unknown>;
  try {
    config = convict(schema as convict.Schema<unknown>, { env, args: opts.args ?? [] });
  } catch (err) {
    throw new ConfigError(describe((err as Error).message));
  }
  loadJson(config, path.join(CONF_DIR, 'default.json'));
  const envFile = path.join(CONF_DIR, `${String(config.get('env' as never))}.json`);
  if (fs.existsSync(envFile)) loadJson(config, envFile);
  for (const f of opts.files ?? []) loadJson(config, f);
  if (opts.overrides) {
    try {
      config.load(nest(opts.overrides) as object);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  try {
    config.validate({ allowed: 'strict' });
  } catch (err) {
    throw new ConfigError(describe((err as Error).message));
  }
  const settings = config.getProperties() as Settings;
  settings.dataDir = path.resolve(settings.dataDir);
  checkTogether(settings);
  return settings;
}

/** Keys whose values only make sense together. */
function checkTogether(s: Settings): void {
  // A message is held whole (in part) before it is delivered: a share below the largest
  // message would refuse every core that sends one, and the core retrying on 1013 forever.
  if (s.memory.partialMessagesBytes < s.core.maxMessageBytes) {
    throw new ConfigError(`memory.partialMessagesBytes (${s.memory.partialMessagesBytes}) must be at least core.maxMessageBytes (${s.core.maxMessageBytes}): a core message is held whole before it is delivered`);
  }
}

/** Nests flat `a.b.c` keys (`{'server.port': 0}`) as a config file holds them (`{server: {port: 0}}`). */
export function nest(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flat)) {
    const parts = k.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = v;
  }
  return out;
}

/** Adds the expected format and the environment variable to each convict message line. */
function describe(message: string): string {
  const keys = new Map(schemaKeys());
  const lines = message.split('\n').map((line) => {
    const m = /^([\w.]+): (.*)$/.exec(line.trim());
    const spec = m && keys.get(m[1]!);
    if (!m || !spec) return line.replace(/^configuration param '([\w.]+)' not declared in the schema/, 'unknown key "$1" (not in the schema; see docs/config.md)');
    const where = spec.env ? ` (env ${spec.env})` : '';
    const value = spec.sensitive ? m[2]!.replace(/: value was .*$/, '') : m[2];
    return `${m[1]}${where}: ${value}. Expected: ${formatName(spec.format)} — ${spec.doc}`;
  });
  return `invalid configuration:\n  ${lines.join('\n  ')}`;
}

/** A human name of a schema format, for error messages and docs. */
export function formatName(format: unknown): string {
  if (Array.isArray(format)) return `one of ${format.map((f) => JSON.stringify(f)).join(', ')}`;
  if (format === String) return 'a string';
  if (format === Boolean) return 'true or false';
  if (format === Number) return 'a number';
  if (format === Array) return 'a list of strings (comma-separated in env)';
  switch (format) {
    case 'port': return 'a TCP port (0–65535)';
    case 'workers': return 'an integer ≥ 1 or "auto"';
    case 'positive-int': return 'an integer ≥ 1';
    case 'nat': return 'an integer ≥ 0';
    case 'heartbeat-seconds': return 'an integer from 1 to 480';
    case 'ip-list': return 'a list of IP addresses or CIDR ranges (comma-separated in env)';
    case 'host-port-list': return 'a list of host:port (comma-separated in env)';
    case 'malloc-library': return '"auto", "glibc" or an absolute path';
    default: return String(format);
  }
}

/** Resolves `server.workers` to a count. */
export function workerCount(settings: Settings, cpus: number): number {
  return settings.server.workers === 'auto' ? Math.max(1, cpus) : settings.server.workers;
}

/**
 * One worker process's share of a budget set for the whole server (all `server.workers`
 * processes on one machine share one store), rounded up and at least 1.
 */
export function workerShare(total: number, settings: Settings, cpus: number): number {
  return Math.max(1, Math.ceil(total / workerCount(settings, cpus)));
}

/** A copy of the settings with every sensitive value replaced, safe to log or print. */
export function redactedSettings(settings: Settings): Settings {
  const copy = JSON.parse(JSON.stringify(settings)) as Record<string, Record<string, unknown>>;
  for (const [key, spec] of schemaKeys()) {
    if (!spec.sensitive) continue;
    const [a, b] = key.split('.') as [string, string];
    if (copy[a] && copy[a][b]) copy[a][b] = '[redacted]';
  }
  return copy as unknown as Settings;
}
