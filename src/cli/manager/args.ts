/**
 * What every manager command shares: strict flag parsing (an unknown flag is a usage
 * error, exit 2), the common `--json` and `--help` flags, and the context a command runs in.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { ApiClient } from './client';
import { usage } from './exit';
import type { Output } from './output';

/** What a command runs with. */
export interface Ctx {
  o: Output;
  env: NodeJS.ProcessEnv;
  /** The API client for the configured server (created on first use; needs a configuration). */
  client(): ApiClient;
}

/** One resource's commands (`targets`, `streams`, ...). */
export interface Resource {
  /** Usage text shown by `--help` and on usage errors. */
  usage: string;
  /** Runs subcommand `sub` with the remaining arguments. */
  run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void>;
}

/**
 * The `--help` of one command of a group (`streams download --help`): its own entries of the
 * group's usage (a command may have several), the group's notes, and `--json`. The whole
 * usage when the group has no such entry (`login`, `donors top`).
 */
export function commandUsage(group: Resource['usage'], command: string | undefined): string {
  if (command === undefined || command.startsWith('-')) return group;
  const [head = '', ...lines] = group.split('\n');
  const firstBlank = lines.findIndex((l, i) => i > 0 && l.trim() === '');
  const list = firstBlank < 0 ? lines : lines.slice(0, firstBlank);
  const notes = firstBlank < 0 ? [] : lines.slice(firstBlank + 1);
  const own: string[] = [];
  let inOwn = false;
  for (const line of list) {
    // An entry starts two spaces in; its continuation lines are indented further.
    if (/^ {2}\S/.test(line)) inOwn = line.trim() === command || line.trim().startsWith(`${command} `);
    if (inOwn && line.trim() !== '') own.push(line);
  }
  if (own.length === 0) return group;
  const name = head.split(' <command>')[0]!.trim();
  return [`${name} ${command}`, '', ...own, ...(notes.length > 0 ? ['', ...notes] : []), '', '  --json                                 JSON on stdout instead of a table'].join('\n');
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flags and positionals. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/**
 * Ids (22 characters) and tokens (43) are base64url, so one in 32 starts with `-`. Such an
 * argument is a value, never a flag: no flag name is that long.
 */
const DASH_ID = /^-[A-Za-z0-9_-]{21,}$/;

/**
 * Parses flags strictly; `--json` and `-h/--help` are always accepted (and read by the
 * dispatcher). An argument shaped like an id is taken as a value even when it starts with `-`.
 */
export function parse(args: string[], options: Options = {}): Parsed {
  const ids = new Map<string, string>();
  const masked = args.map((a) => {
    if (!DASH_ID.test(a) || (a.startsWith('--') && a.slice(2) in options)) return a;
    const key = `id\u0000${ids.size}`;
    ids.set(key, a);
    return key;
  });
  const unmask = (v: string) => ids.get(v) ?? v;
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args: masked, allowPositionals: true, strict: true, options: { ...options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }) as Parsed;
  } catch (err) {
    const message = (err as Error).message.replace(/id\u0000\d+/g, unmask);
    // Node's own text for an unknown flag ends in broken quoting; say it plainly.
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    throw usage(unknown ? `unknown option ${unknown[1]} (a value starting with "-" goes after "--")` : message);
  }
  const values = Object.fromEntries(
    Object.entries(parsed.values).map(([k, v]) => [k, typeof v === 'string' ? unmask(v) : Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? unmask(x) : x)) : v]),
  ) as Parsed['values'];
  return { values, positionals: parsed.positionals.map(unmask) };
}

/** Exactly `n` positionals, named for the error message. */
export function positionals(p: Parsed, names: string[], opts: { rest?: boolean } = {}): string[] {
  if (p.positionals.length < names.length) throw usage(`missing ${names.slice(p.positionals.length).map((n) => `<${n}>`).join(' ')}`);
  if (!opts.rest && p.positionals.length > names.length) throw usage(`unexpected argument "${p.positionals[names.length]}"`);
  return p.positionals;
}

/** A string flag's value. */
export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A repeatable string flag's values. */
export function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
}

/** A number flag within bounds. */
export function num(p: Parsed, name: string, min: number, max: number, integer = false, label = `--${name}`): number | undefined {
  const raw = str(p, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    // Number.MIN_VALUE as the least means "above zero", which is how a reader says it.
    const range = min === Number.MIN_VALUE ? `above 0 and at most ${max}` : `from ${min} to ${max}`;
    throw usage(`${label} must be ${integer ? 'an integer' : 'a number'} ${range}`);
  }
  return v;
}

/** Path segment encoding for ids and names taken from the command line. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}
