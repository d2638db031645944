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

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flags and positionals. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/** Parses flags strictly; `--json` and `-h/--help` are always accepted (and read by the dispatcher). */
export function parse(args: string[], options: Options = {}): Parsed {
  try {
    return parseArgs({ args, allowPositionals: true, strict: true, options: { ...options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }) as Parsed;
  } catch (err) {
    throw usage((err as Error).message);
  }
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
export function num(p: Parsed, name: string, min: number, max: number, integer = false): number | undefined {
  const raw = str(p, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw usage(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return v;
}

/** Path segment encoding for ids and names taken from the command line. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}
