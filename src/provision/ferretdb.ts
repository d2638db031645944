/**
 * FerretDB v1.24.2 (MongoDB wire protocol on SQLite) as the test and dev MongoDB when no
 * `mongod` is installed. There is no package for it in the Debian registries, so it is
 * built once from the Go module proxy and cached by version outside the repository.
 * See DESIGN.md, "FerretDB recipe", for why each step exists.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { delay, freePort, hostPort, run, spawnService, waitForPort, which, type LogFn, type RunningService } from './exec';

/** The FerretDB release used: the last v1 (SQLite backend), May 2025. */
export const FERRETDB_VERSION = 'v1.24.2';
/**
 * Our build of it: the release plus {@link FERRETDB_PATCHES} and {@link FERRETDB_FILES}.
 * Part of the cache key, so a binary built without the patches is never picked up; bump it
 * when the patches change.
 */
export const FERRETDB_BUILD = `${FERRETDB_VERSION}-sc3`;
const MODULE = 'github.com/FerretDB/FerretDB';

/** A started MongoDB-compatible server: {@link RunningService} plus its connection string. */
export interface MongoService extends RunningService {
  /** `mongodb://host:port/?tls=true`; the caller adds `tlsCAFile`. */
  uri: string;
}

/** Options of {@link ensureFerretDB}. */
export interface EnsureFerretDBOptions {
  /** Where the binary is cached (default `${XDG_CACHE_HOME:-~/.cache}/stream-coordinator/ferretdb/v1.24.2-sc3`). */
  cacheDir?: string;
  log?: LogFn;
}

/** The default per-version cache directory of the FerretDB binary. */
export function defaultFerretDBCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'stream-coordinator', 'ferretdb', FERRETDB_BUILD);
}

/** True when `bin` exists, runs, and reports the expected version. */
async function binaryWorks(bin: string): Promise<boolean> {
  if (!fs.existsSync(bin)) return false;
  try {
    const { stdout } = await run(bin, ['--version'], { timeoutMs: 30_000 });
    return stdout.includes(FERRETDB_VERSION);
  } catch {
    return false;
  }
}

/** A lock older than this is assumed abandoned (a build takes 1-2 minutes; the holder refreshes it). */
const LOCK_STALE_MS = 10 * 60_000;
const LOCK_REFRESH_MS = 30_000;

/** True when the lock's owner is a process on this host that no longer exists. */
function ownerGone(lockDir: string): boolean {
  try {
    const [host, pidText] = fs.readFileSync(path.join(lockDir, 'owner'), 'utf8').trim().split(' ');
    if (host !== os.hostname()) return false;
    process.kill(Number(pidText), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Takes the build lock (a directory: mkdir is atomic), or returns null once another
 * process has produced a working binary while we waited.
 */
async function acquireLock(lockDir: string, bin: string, log?: LogFn): Promise<(() => Promise<void>) | null> {
  let told = false;
  for (;;) {
    try {
      await fsp.mkdir(lockDir);
      await fsp.writeFile(path.join(lockDir, 'owner'), `${os.hostname()} ${process.pid}\n`);
      // Keep the lock fresh so a slow build is not mistaken for an abandoned one.
      const refresh = setInterval(() => {
        const now = new Date();
        fsp.utimes(lockDir, now, now).catch(() => undefined);
      }, LOCK_REFRESH_MS);
      refresh.unref();
      return async () => {
        clearInterval(refresh);
        await fsp.rm(lockDir, { recursive: true, force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let stale = false;
    try {
      const st = await fsp.stat(lockDir);
      stale = Date.now() - st.mtimeMs > LOCK_STALE_MS || ownerGone(lockDir);
    } catch {
      continue; // released between mkdir and stat: try again at once
    }
    if (stale) {
      log?.(`Removing a stale FerretDB build lock (${lockDir})`);
      await fsp.rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (!told) {
      log?.(`Waiting for another process to finish building FerretDB ${FERRETDB_VERSION} (lock ${lockDir})…`);
      told = true;
    }
    await delay(1000);
    if (await binaryWorks(bin)) return null;
  }
}

/** Makes a copied tree writable: the Go module cache stores sources read-only. */
async function makeWritable(dir: string): Promise<void> {
  const addWrite = async (p: string): Promise<void> => fsp.chmod(p, (await fsp.stat(p)).mode | 0o200);
  await addWrite(dir);
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await makeWritable(p);
    else if (entry.isFile()) await addWrite(p);
  }
}

/**
 * Source edits applied before building. Patches 1 and 2 make lookups by `_id` use an index
 * on every table of every database, including tables created later (see
 * docs/performance.md, "Embedded store at scale"); patch 3 makes conditional updates
 * atomic, which the commit point depends on:
 *
 * 1. v1.24.2 filters on `_ferretdb_sjson->'$._id'` while the unique `_id_` index it creates
 *    with every table is on `_ferretdb_sjson->"_id"`: the same value, but SQLite's planner
 *    matches index expressions by their form, so every `_id` lookup was a full table scan.
 *    The query now uses the index's own form.
 * 2. v1.24.2 pushes a filter down to SQLite only when `_id` is its sole key, so a
 *    conditional update `{_id, frames}` scanned the table. Any filter with a scalar `_id` is
 *    now narrowed by `_id` in SQL; FerretDB still applies the whole filter to what SQL
 *    returns (find, update, findAndModify and delete all do), so results are unchanged.
 * 3. v1.24.2 runs `update`, `findAndModify` and `delete` as read, filter in Go, then write
 *    by `_id`, with nothing held in between: two conditional updates of one document
 *    (`{_id, frames: committed}`, the commit point) could both match and both be
 *    acknowledged, the second overwriting the first — an acknowledged commit lost. Each of
 *    these commands now holds a per-collection lock from its read to its write
 *    ({@link FERRETDB_FILES}), so they apply one after another as on MongoDB. Inserts and
 *    reads do not take it.
 * 4. v1.24.2 narrows nothing but `_id` in SQL, so every query by another field scanned and
 *    decoded the whole table (a target's streams, a stream's partitions, files and errors,
 *    GridFS chunks by `files_id`). A filter without a scalar `_id` is now narrowed by its
 *    first field compared for equality with a string or ObjectId, in the form of the indexes
 *    FerretDB creates (`_ferretdb_sjson->"field"`), so SQLite uses the index `init` made on
 *    that field; FerretDB still applies the whole filter afterwards. Only for the fields
 *    named in the patch, which the coordinator always stores as a string or ObjectId: on a
 *    field holding an array, MongoDB's equality also matches an element, which this SQL
 *    comparison would miss. Without such a field, a `createdAt` range (the janitor's window)
 *    is narrowed the same way: FerretDB stores a date as its milliseconds, which the index
 *    holds as text, and for dates between 2001 and 2286 (13 digits) text order is time
 *    order; bounds outside that range are left to FerretDB's own filter.
 */
export const FERRETDB_PATCHES: Array<{ file: string; from: string; to: string; count: number }> = [
  {
    file: 'internal/backends/sqlite/metadata/metadata.go',
    from: `IDColumn = DefaultColumn + "->'$._id'"`,
    to: 'IDColumn = DefaultColumn + `->"_id"`',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/collection.go',
    from: 'if params.Filter.Len() == 1 {',
    to: 'if params.Filter.Len() > 0 {',
    count: 2,
  },
  {
    file: 'internal/backends/sqlite/collection.go',
    from: '\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n',
    to: '\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n\t\tif whereClause == "" {\n\t\t\twhereClause, args = scNarrow(params.Filter)\n\t\t}\n',
    count: 2,
  },
  {
    file: 'internal/handler/msg_update.go',
    from: '\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n',
    to: '\tmatched, modified, upserted, err := func() (int32, int32, *types.Array, error) {\n\t\tdefer scLockCollection(params.DB, params.Collection)()\n\t\treturn h.updateDocument(connCtx, params)\n\t}()\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_findandmodify.go',
    from: '\tres, err := h.findAndModifyDocument(connCtx, params)\n',
    to: '\tres, err := func() (*findAndModifyResult, error) {\n\t\tdefer scLockCollection(params.DB, params.Collection)()\n\t\treturn h.findAndModifyDocument(connCtx, params)\n\t}()\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_delete.go',
    from: '\t\td, err = h.execDelete(connCtx, c, &p)\n',
    to: '\t\td, err = func() (int32, error) {\n\t\t\tdefer scLockCollection(params.DB, params.Collection)()\n\t\t\treturn h.execDelete(connCtx, c, &p)\n\t\t}()\n',
    count: 1,
  },
];

/** Files added to the source tree before building (path → contents). */
export const FERRETDB_FILES: Record<string, string> = {
  'internal/backends/sqlite/sc_narrow.go': `package sqlite

import (
\t"fmt"
\t"strconv"
\t"strings"
\t"time"

\t"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
\t"github.com/FerretDB/FerretDB/internal/handler/sjson"
\t"github.com/FerretDB/FerretDB/internal/types"
\t"github.com/FerretDB/FerretDB/internal/util/must"
)

// scScalarFields are the fields stream-coordinator always stores as a string or ObjectId,
// never as an array (on an array, MongoDB's equality also matches an element).
var scScalarFields = map[string]bool{
\t"streamId": true, "targetId": true, "owner": true, "status": true, "role": true, "name": true,
\t"donor": true, "kind": true, "tokenHash": true, "keyHash": true, "files_id": true,
}

// scNarrow returns a WHERE clause narrowing a query by the filter's first field of
// scScalarFields compared for equality with a string or ObjectId, else by its createdAt
// range, written like the indexes FerretDB creates so SQLite can use one
// (stream-coordinator patch 4, see src/provision/ferretdb.ts). The caller still applies
// the whole filter to the rows returned, so the clause may select more, never less.
func scNarrow(filter *types.Document) (string, []any) {
\tif filter == nil {
\t\treturn "", nil
\t}
\tfor _, k := range filter.Keys() {
\t\tif !scScalarFields[k] {
\t\t\tcontinue
\t\t}
\t\tv := must.NotFail(filter.Get(k))
\t\tswitch v.(type) {
\t\tcase string, types.ObjectID:
\t\t\treturn fmt.Sprintf(\` WHERE %s->"%s" = ?\`, metadata.DefaultColumn, k), []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
\t\t}
\t}
\tif r, _ := filter.Get("createdAt"); r != nil {
\t\tif ops, ok := r.(*types.Document); ok {
\t\t\treturn scDateRange(ops)
\t\t}
\t}
\treturn "", nil
}

// scDateRange turns $gt/$gte/$lt/$lte bounds that are dates of 13-digit milliseconds into
// text comparisons on the createdAt index expression; other bounds are left out.
func scDateRange(ops *types.Document) (string, []any) {
\tsqlOps := map[string]string{"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
\tvar terms []string
\tvar args []any
\tfor _, op := range ops.Keys() {
\t\tsqlOp, known := sqlOps[op]
\t\tt, isDate := must.NotFail(ops.Get(op)).(time.Time)
\t\tif !known || !isDate {
\t\t\tcontinue
\t\t}
\t\tms := t.UnixMilli()
\t\tif ms < 1_000_000_000_000 || ms >= 10_000_000_000_000 {
\t\t\tcontinue
\t\t}
\t\tterms = append(terms, fmt.Sprintf(\`%s->"createdAt" %s ?\`, metadata.DefaultColumn, sqlOp))
\t\targs = append(args, strconv.FormatInt(ms, 10))
\t}
\tif len(terms) == 0 {
\t\treturn "", nil
\t}
\treturn " WHERE " + strings.Join(terms, " AND "), args
}
`,
  'internal/handler/sc_collection_lock.go': `package handler

import "sync"

// scLocks holds one mutex per "db.collection": update, findAndModify and delete read the
// matching documents and then write them by _id, so without a lock held from the read to
// the write two conditional updates of one document could both match (stream-coordinator
// patch 3, see src/provision/ferretdb.ts).
var scLocks sync.Map

// scLockCollection locks the collection's mutex and returns the function that unlocks it.
func scLockCollection(db, collection string) func() {
\tv, _ := scLocks.LoadOrStore(db+"."+collection, new(sync.Mutex))
\tm := v.(*sync.Mutex)
\tm.Lock()
\treturn m.Unlock
}
`,
};

/** Applies {@link FERRETDB_PATCHES} and adds {@link FERRETDB_FILES} to a writable source tree; throws when a patch no longer fits. */
export async function patchSource(src: string): Promise<void> {
  for (const [file, text] of Object.entries(FERRETDB_FILES)) await fsp.writeFile(path.join(src, file), text);
  for (const p of FERRETDB_PATCHES) {
    const file = path.join(src, p.file);
    const text = await fsp.readFile(file, 'utf8');
    const found = text.split(p.from).length - 1;
    if (found !== p.count) throw new Error(`FerretDB patch does not fit ${p.file}: expected ${p.count} × ${JSON.stringify(p.from)}, found ${found}`);
    await fsp.writeFile(file, text.split(p.from).join(p.to));
  }
}

/** Environment for the go tool: the user's own GOPATH/GOMODCACHE/GOPROXY, plus two flags we need. */
function goEnv(): NodeJS.ProcessEnv {
  const flags = (process.env.GOFLAGS ?? '').split(/\s+/).filter((f) => f && !f.startsWith('-mod='));
  // -mod=mod lets go record missing go.sum lines itself; -buildvcs=false because the
  // cache may sit inside someone's git checkout, whose state is irrelevant to this build.
  flags.push('-mod=mod');
  if (!flags.some((f) => f.startsWith('-buildvcs'))) flags.push('-buildvcs=false');
  return { ...process.env, GOFLAGS: flags.join(' '), GOWORK: 'off' };
}

async function build(cacheDir: string, bin: string, go: string, log?: LogFn): Promise<void> {
  log?.(`Building FerretDB ${FERRETDB_VERSION} from the Go module proxy (first run only, about 1-2 minutes)…`);
  const started = Date.now();
  const env = goEnv();
  const work = path.join(cacheDir, 'build');
  await fsp.rm(work, { recursive: true, force: true });
  const mod = path.join(work, 'mod');
  await fsp.mkdir(mod, { recursive: true });
  // A throwaway module: `go install …@v1.24.2` fails because the proxy refuses this
  // module's version list, while `go get` of the exact version works.
  await run(go, ['mod', 'init', 'stream-coordinator.local/ferretdb-build'], { cwd: mod, env });
  await run(go, ['get', `${MODULE}/cmd/ferretdb@${FERRETDB_VERSION}`], { cwd: mod, env, timeoutMs: 15 * 60_000 });
  const { stdout } = await run(go, ['list', '-m', '-f', '{{.Dir}}', MODULE], { cwd: mod, env });
  const moduleDir = stdout.trim();
  if (!moduleDir || !fs.existsSync(moduleDir)) throw new Error(`go list did not report a source directory for ${MODULE}`);

  // The published module lacks the generated build/version/version.txt and the binary
  // panics at start without it, so build from a writable copy that has it.
  const src = path.join(work, 'src');
  await fsp.cp(moduleDir, src, { recursive: true });
  await makeWritable(src);
  await fsp.writeFile(path.join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
  await patchSource(src);
  // As the recipe does: the throwaway module now resolves FerretDB to the patched copy.
  await run(go, ['mod', 'edit', `-replace=${MODULE}=${src}`], { cwd: mod, env });

  // Built inside the copy (FerretDB is then the main module, whose build info the
  // version package checks before embedding version.txt); the copy carries its own
  // go.sum, and every dependency is already in the module cache from `go get`.
  const tmpBin = `${bin}.tmp-${process.pid}`;
  await run(go, ['build', '-o', tmpBin, './cmd/ferretdb'], { cwd: src, env, timeoutMs: 30 * 60_000 });
  if (!(await binaryWorks(tmpBin))) {
    await fsp.rm(tmpBin, { force: true });
    throw new Error(`the freshly built FerretDB (${tmpBin}) does not report ${FERRETDB_VERSION} with --version`);
  }
  await fsp.rename(tmpBin, bin);
  await fsp.rm(work, { recursive: true, force: true });
  log?.(`Built FerretDB ${FERRETDB_VERSION} in ${((Date.now() - started) / 1000).toFixed(0)} s: ${bin}`);
}

/**
 * Returns the path of a working FerretDB v1.24.2 binary, building it on first use
 * (≈ 75 s on 2 cores) and caching it. Concurrent callers (parallel test files) share one
 * build through a lock directory.
 *
 * @throws Error explaining the alternatives when `go` is not installed.
 */
export async function ensureFerretDB(opts: EnsureFerretDBOptions = {}): Promise<string> {
  const cacheDir = path.resolve(opts.cacheDir ?? defaultFerretDBCacheDir());
  const bin = path.join(cacheDir, 'ferretdb');
  if (await binaryWorks(bin)) return bin;
  const go = which('go');
  if (!go) {
    throw new Error(
      `No MongoDB server available: mongod is not on PATH and FerretDB ${FERRETDB_VERSION} is not built yet, ` +
        'which needs Go ≥ 1.24 (FerretDB v1.24.2 declares go 1.24; Debian 12\'s golang package is 1.19, too old): ' +
        'install Go from https://go.dev/dl/ and put it on PATH, or install MongoDB so that mongod is on PATH.',
    );
  }
  await fsp.mkdir(cacheDir, { recursive: true });
  const release = await acquireLock(path.join(cacheDir, '.build.lock'), bin, opts.log);
  if (!release) return bin;
  try {
    // Another process may have finished between our first check and taking the lock.
    if (!(await binaryWorks(bin))) await build(cacheDir, bin, go, opts.log);
  } finally {
    await release();
  }
  return bin;
}

/** Options of {@link startFerretDB}. */
export interface StartFerretDBOptions {
  /** SQLite data directory (created); with `postgresqlUrl`, only the working directory. */
  dataDir: string;
  /** Use the `postgresql` handler on this cluster (see postgres.ts) instead of SQLite. */
  postgresqlUrl?: string;
  /** FerretDB state directory (default `<dataDir>/state`). */
  stateDir?: string;
  /** TLS port (default: a free one). */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Certificate file served: leaf followed by its intermediates (Go sends every certificate in it). */
  cert: string;
  /** Private key of the leaf. */
  key: string;
  /** Binary to run (default: {@link ensureFerretDB}). */
  binary?: string;
  /** Cache directory for {@link ensureFerretDB}. */
  cacheDir?: string;
  startTimeoutMs?: number;
  log?: LogFn;
}

/**
 * Starts FerretDB TLS-only (the plaintext listener is off, so a plaintext client is
 * refused), with telemetry off, the debug HTTP listener off and logs at error level.
 *
 * @returns a handle with `uri` = `mongodb://host:port/?tls=true`.
 */
export async function startFerretDB(opts: StartFerretDBOptions): Promise<MongoService> {
  const bin = opts.binary ?? (await ensureFerretDB({ cacheDir: opts.cacheDir, log: opts.log }));
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const dataDir = path.resolve(opts.dataDir);
  const stateDir = path.resolve(opts.stateDir ?? path.join(dataDir, 'state'));
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await fsp.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const args = [
    ...(opts.postgresqlUrl
      ? ['--handler=postgresql', `--postgresql-url=${opts.postgresqlUrl}`]
      : // FerretDB wants a directory URI; the trailing slash is what marks it as one.
        ['--handler=sqlite', `--sqlite-url=file:${dataDir}/`]),
    // Empty turns the plaintext listener (default 127.0.0.1:27017) off.
    '--listen-addr=',
    `--listen-tls=${hostPort(host, port)}`,
    `--listen-tls-cert-file=${path.resolve(opts.cert)}`,
    `--listen-tls-key-file=${path.resolve(opts.key)}`,
    '--telemetry=disable',
    `--state-dir=${stateDir}`,
    '--log-level=error',
    // "-" disables the debug/metrics HTTP listener, whose fixed default 127.0.0.1:8088
    // would make a second instance on the same host fail to start.
    '--debug-addr=-',
  ];
  // FerretDB reads FERRETDB_* variables as flag defaults; a developer's own settings must not leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRETDB_')));
  const svc = await spawnService({
    name: 'ferretdb',
    cmd: bin,
    args,
    cwd: dataDir,
    env,
    host,
    port,
    url: `mongodb://${hostPort(host, port)}/?tls=true`,
    ready: (signal) => waitForPort(host, port, opts.startTimeoutMs ?? 30_000, { signal }),
    startTimeoutMs: opts.startTimeoutMs,
    log: opts.log,
  });
  return { ...svc, uri: svc.url };
}
