/**
 * The manager commands of `stream-coordinator` (login, whoami, logout, targets, streams,
 * donors, keys, users): a client of the admin API for scripts and people. They run in the
 * same bin as `serve` so there is one command to install and one `--help`; they load no
 * server code beyond what main.ts already imports and use only Node built-ins.
 */
import { commandUsage, type Ctx, type Resource } from './args';
import { ApiClient } from './client';
import { resolveConnection } from './config';
import { CliError, EXIT, type ExitCode } from './exit';
import type { Output } from './output';
import { donors, keys, users } from './people';
import { login, logout, whoami } from './session';
import { streams } from './streams';
import { targets } from './targets';

const RESOURCES: Record<string, Resource> = { login, logout, whoami, targets, streams, donors, keys, users };

/** First words that select a manager command. */
export const MANAGER_COMMANDS: ReadonlySet<string> = new Set(Object.keys(RESOURCES));

/** The manager part of `stream-coordinator --help`. */
export const MANAGER_USAGE = `Manager commands (a client of the admin API; see docs/cli.md):
  login --url URL [--ca FILE] [--token T]   save server, CA and token (0600 file)
  whoami | logout
  targets list|show|create|update|delete
  streams list|show|add|stop|start|delete|download
  donors top [N]
  keys create|list|revoke                   (admins)
  users create|token|list
  Add --json for JSON output, --help after a command for its flags. Exit codes: 0 ok,
  1 failure, 2 usage, 3 token refused, 4 not found, 5 request refused, 6 server or network.
`;

/** Where a run reads and writes; the process's own by default. */
export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  out?: NodeJS.WritableStream;
  err?: Output['err'];
}

/**
 * Runs a manager command (argv starts with the command word) and returns the exit code.
 * Errors are reported on stderr as one line; they never throw out of here.
 */
export async function runManager(argv: string[], opts: RunOptions = {}): Promise<ExitCode> {
  const env = opts.env ?? process.env;
  const o: Output = { out: opts.out ?? process.stdout, err: opts.err ?? process.stderr, json: argv.includes('--json') };
  const [command, ...rest] = argv;
  const resource = RESOURCES[command!];
  if (!resource) {
    o.err.write(`stream-coordinator: unknown command "${command}"\n`);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    o.out.write(`${commandUsage(resource.usage, rest[0])}\n`);
    return EXIT.ok;
  }
  const sub = rest[0] !== undefined && !rest[0].startsWith('-') ? rest[0] : undefined;
  const args = sub === undefined ? rest : rest.slice(1);
  let client: ApiClient | undefined;
  const ctx: Ctx = {
    o,
    env,
    client() {
      if (!client) {
        const conn = resolveConnection(env, (l) => o.err.write(`${l}\n`));
        if (!conn.token) throw new CliError('no token: run "stream-coordinator login" or set STREAM_COORDINATOR_TOKEN', EXIT.auth);
        client = new ApiClient(conn);
      }
      return client;
    },
  };
  try {
    await resource.run(sub, args, ctx);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CliError) {
      o.err.write(`stream-coordinator: ${err.message}\n`);
      if (err.exitCode === EXIT.usage && !/^(no server|no token|cannot read|cannot write|no CA)/.test(err.message)) o.err.write(`\n${resource.usage}\n`);
      return err.exitCode;
    }
    // A local file or folder that cannot be read or written: its one line says which and why.
    const local = err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
    o.err.write(`stream-coordinator: ${err instanceof Error ? (local ? err.message : (err.stack ?? err.message)) : String(err)}\n`);
    return EXIT.failed;
  } finally {
    client?.close();
  }
}


