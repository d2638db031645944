/**
 * The coordinator's CLI as a child process, for tests and benchmarks alike (no test
 * framework here): running it, waiting for it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { eventually } from './poll';

/** Path of the compiled CLI. */
export const CLI = path.resolve(__dirname, '..', 'src', 'cli', 'main.js');

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

/** Options of {@link runCli}. */
export interface RunCliOptions {
  env?: NodeJS.ProcessEnv;
  /** A command the CLI runs under, e.g. ['prlimit', '--nofile=512:512', '--']. */
  wrapper?: string[];
  /** Given the output of a `serve` child (the tests keep it for a failed file). */
  onServe?: (output: () => string) => void;
}

/** Runs the CLI in a child process; every child still running is killed when this process exits. */
export function runCli(args: string[], opts: RunCliOptions = {}): CliProcess {
  const cmd = [...(opts.wrapper ?? []), process.execPath, CLI, ...args];
  const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (args[0] === 'serve') opts.onServe?.(() => out);
  return { child, output: () => out, exited };
}

/** The port a CLI server bound, read from its "listening" log line. */
export async function listeningPort(p: CliProcess, timeoutMs = 30000): Promise<number> {
  return eventually(async () => {
    const m = /"url":"https?:\/\/[^"]*:(\d+)"/.exec(p.output());
    return m ? Number(m[1]) : undefined;
  }, timeoutMs, `a listening line in:\n${p.output()}`);
}
