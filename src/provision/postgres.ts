/**
 * A private PostgreSQL cluster (Debian's `postgresql` package) for FerretDB's `postgresql`
 * handler, the store candidate measured beside SQLite (docs/performance.md, "Embedded store
 * at scale"). Like Redis it runs as a child process with everything on the command line:
 * initdb into the data directory, then `postgres` listening only on a Unix socket in that
 * directory (no TCP port, trust authentication for its own user only).
 *
 * PostgreSQL refuses to run as root; under root the cluster belongs to the `postgres`
 * account and the server is exec'd through `setpriv`, so no intermediate process sits
 * between us and it.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { delay, isRoot, run, spawnService, which, type LogFn, type RunningService } from './exec';

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /** Directory for the cluster (`pgdata/`) and its socket (created). */
  dir: string;
  startTimeoutMs?: number;
  log?: LogFn;
}

/** A started cluster: {@link RunningService} plus the URL FerretDB takes. */
export interface PostgresService extends RunningService {
  /** `postgres://ferretdb@/ferretdb?host=<socket dir>`. */
  ferretdbUrl: string;
}

/** The SQL role and database FerretDB uses. */
const ROLE = 'ferretdb';

/** Directory of the server binaries: PATH first, then Debian's versioned directory. */
function binDir(): string {
  const onPath = which('initdb');
  if (onPath) return path.dirname(fs.realpathSync(onPath));
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = versions.map((v) => path.join(base, v, 'bin')).find((d) => fs.existsSync(path.join(d, 'initdb')));
  if (!dir) throw new Error('PostgreSQL server binaries not found (Debian/Ubuntu: sudo apt-get install postgresql)');
  return dir;
}

/**
 * Settings of the cluster. `force_custom_plan` because FerretDB sends the field name of
 * every filter as a bind parameter: only a plan made with the actual value can match an
 * expression index on that field.
 */
const SERVER_SETTINGS = ['listen_addresses=', 'plan_cache_mode=force_custom_plan', 'fsync=on', 'shared_buffers=256MB', 'max_connections=200'];

/**
 * SQL run once per cluster: an event trigger that gives every btree index FerretDB creates
 * on a top-level field (`((_jsonb -> 'field'))`, including the unique `_id` index of every
 * new collection) a GIN twin on the same expression. FerretDB filters with
 * `_jsonb -> 'field' @> value`, which a btree cannot answer and GIN can.
 */
export const GIN_TRIGGER_SQL = `
CREATE OR REPLACE FUNCTION sc_ferretdb_gin() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE r record; def text; m text[]; tbl regclass;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' LOOP
    def := pg_get_indexdef(r.objid);
    m := regexp_match(def, 'USING btree \\(\\(\\(_jsonb -> ''([^'']+)''::text\\)\\)');
    CONTINUE WHEN m IS NULL;
    SELECT indrelid::regclass INTO tbl FROM pg_index WHERE indexrelid = r.objid;
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L) jsonb_path_ops)', left(md5(r.object_identity), 20) || '_gin', tbl, m[1]);
  END LOOP;
END $fn$;
DROP EVENT TRIGGER IF EXISTS sc_ferretdb_gin;
CREATE EVENT TRIGGER sc_ferretdb_gin ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION sc_ferretdb_gin();
`;

/** Starts (initialising on first use) a private cluster under `opts.dir`. */
export async function startPostgres(opts: StartPostgresOptions): Promise<PostgresService> {
  const bin = binDir();
  const dir = path.resolve(opts.dir);
  const data = path.join(dir, 'pgdata');
  const root = isRoot();
  // Under root, commands run as `postgres`, which must be able to reach and own the directory.
  const asOwner = (cmd: string, args: string[]): [string, string[]] => (root ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd, ...args]] : [cmd, args]);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  if (root) {
    await run('chown', ['postgres:postgres', dir]);
    for (let p = dir; p !== path.dirname(p); p = path.dirname(p)) {
      const st = await fsp.stat(p);
      if ((st.mode & 0o001) === 0) await fsp.chmod(p, st.mode | 0o001); // traversable, not listable
    }
  }
  const fresh = !fs.existsSync(path.join(data, 'PG_VERSION'));
  if (fresh) {
    opts.log?.(`Initialising a PostgreSQL cluster in ${data}`);
    const [cmd, args] = asOwner(path.join(bin, 'initdb'), ['-D', data, '-U', ROLE, '--auth=trust', '-E', 'UTF8', '--no-instructions']);
    await run(cmd, args, { timeoutMs: 120_000 });
  }
  const [cmd, args] = asOwner(path.join(bin, 'postgres'), ['-D', data, '-k', dir, ...SERVER_SETTINGS.flatMap((s) => ['-c', s])]);
  const socket = path.join(dir, '.s.PGSQL.5432');
  const svc = await spawnService({
    name: 'postgres',
    cmd,
    args,
    cwd: dir,
    host: dir,
    port: 5432,
    url: `postgres://${ROLE}@/${ROLE}?host=${dir}`,
    ready: async (signal) => {
      const until = Date.now() + (opts.startTimeoutMs ?? 60_000);
      while (!signal.aborted && Date.now() < until) {
        if (fs.existsSync(socket)) {
          const ok = await run(path.join(bin, 'pg_isready'), ['-h', dir, '-U', ROLE], { timeoutMs: 10_000 }).then(() => true, () => false);
          if (ok) return;
        }
        await delay(200);
      }
      throw new Error('PostgreSQL did not become ready');
    },
    startTimeoutMs: opts.startTimeoutMs ?? 60_000,
    log: opts.log,
  });
  if (fresh) {
    const psql = path.join(bin, 'psql');
    await run(psql, ['-h', dir, '-U', ROLE, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${ROLE}`], { timeoutMs: 60_000 });
    await run(psql, ['-h', dir, '-U', ROLE, '-d', ROLE, '-v', 'ON_ERROR_STOP=1', '-c', GIN_TRIGGER_SQL], { timeoutMs: 60_000 });
  }
  return { ...svc, ferretdbUrl: svc.url };
}
