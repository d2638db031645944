/**
 * `streams list|show|add|stop|start|delete|download`: the streams of a target.
 */
import fs from 'node:fs';
import path from 'node:path';
import { list, num, parse, positionals, seg, str, type Ctx, type Resource } from './args';
import { CliError, EXIT, usage } from './exit';
import { bytes, print, progressBar, table } from './output';
import { FILE_NAME_PATTERN, type Partitions, type Stream, type StreamCreated, type StreamList } from '../../http/api-schemas';


/** File names the server accepts (PROTOCOL §2). */
const FILE_NAME = new RegExp(FILE_NAME_PATTERN);
const STATUSES = ['ok', 'stopped', 'failed'];

const COLUMNS = [
  { header: 'ID', get: (s: Stream) => s.id },
  { header: 'STATUS', get: (s: Stream) => s.status },
  { header: 'FRAMES', get: (s: Stream) => s.frames, right: true },
  { header: 'ERRORS', get: (s: Stream) => s.error_count, right: true },
  { header: 'ACTIVE', get: (s: Stream) => (s.active ? `${s.engine ?? '?'}${s.donor ? ` (${s.donor})` : ''}` : '-') },
  { header: 'CREATED', get: (s: Stream) => s.created_at },
];

/** Reads the files of one stream: `{name: base64}`; names are the files' base names. */
function readFiles(paths: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of paths) {
    const name = path.basename(p);
    if (!FILE_NAME.test(name)) throw usage(`${p}: "${name}" is not a valid file name (letters, digits, . _ -, starting with a letter or digit, at most 128)`);
    if (out[name] !== undefined) throw usage(`${p}: two ${what} named "${name}"`);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(p);
    } catch (err) {
      throw usage(`cannot read ${p}: ${(err as Error).message}`);
    }
    out[name] = bytes.toString('base64');
  }
  return out;
}

/**
 * The regular files directly in a directory (hidden ones skipped), sorted. A stream's seed
 * files have plain names, so folders inside are not taken: `note` says which were left out.
 */
function filesIn(dir: string, note: (line: string) => void): string[] {
  const entries = fs.readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  const names = entries
    .filter((e) => e.isFile())
    .map((e) => path.join(dir, e.name))
    .sort();
  const folders = entries.filter((e) => e.isDirectory()).map((e) => `${e.name}/`);
  if (folders.length > 0) note(`${dir}: folders inside are not seed files, left out: ${folders.sort().join(' ')}`);
  if (names.length === 0) throw usage(`${dir}: no files to use as seed files`);
  return names;
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch (err) {
    throw usage(`cannot read ${p}: ${(err as Error).message}`);
  }
}

/** Every stream of a target, page by page (the server caps a page at limits.maxListItems). */
async function allStreams(ctx: Ctx, target: string, max: number): Promise<Stream[]> {
  const out: Stream[] = [];
  let after: string | undefined;
  while (out.length < max) {
    const q = new URLSearchParams({ ...(after ? { after } : {}) });
    const page = await ctx.client().call<StreamList>('GET', `/v1/targets/${seg(target)}/streams${q.size > 0 ? `?${q}` : ''}`);
    if (page.streams.length === 0) break;
    out.push(...page.streams);
    after = page.streams[page.streams.length - 1]!.id;
    // `total` saves the last, empty request; a stream added while listing may be missed, as in any snapshot.
    if (page.total !== undefined && out.length >= page.total) break;
  }
  return out.slice(0, max);
}

/** Runs one call per id; reports failures on stderr and fails with the first one's exit code after trying all. */
async function each<T>(ctx: Ctx, ids: string[], fn: (id: string) => Promise<T>): Promise<T[]> {
  const done: T[] = [];
  let first: CliError | undefined;
  for (const id of ids) {
    try {
      done.push(await fn(id));
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      first ??= err;
      if (ids.length > 1) ctx.o.err.write(`stream-coordinator: ${id}: ${err.message}\n`);
    }
  }
  if (first) {
    if (ids.length > 1 && done.length > 0) print(ctx.o, done, () => `${done.length} of ${ids.length} done`);
    throw ids.length > 1 ? new CliError(`${ids.length - done.length} of ${ids.length} failed`, first.exitCode, first.status, first.code) : first;
  }
  return done;
}

/** Partitions shown by `show` beside their count; `--json` lists them all. */
const SHOWN_PARTITIONS = 10;

/** The partitions' count and the last few ends (a long stream has thousands). */
function partitionsLine(ends: number[]): string {
  if (ends.length === 0) return '-';
  if (ends.length <= SHOWN_PARTITIONS) return ends.join(' ');
  return `${ends.length} (the last ${SHOWN_PARTITIONS}: ${ends.slice(-SHOWN_PARTITIONS).join(' ')}; all with --json)`;
}

/**
 * Creates `dir` and its missing parents. Not `mkdirSync(…, { recursive: true })`: on a folder
 * that refuses new entries with ENOENT (/proc) Node retries for ever at full CPU.
 */
function makeDir(dir: string): void {
  const missing: string[] = [];
  let at = path.resolve(dir);
  while (!fs.existsSync(at)) {
    missing.unshift(at);
    const up = path.dirname(at);
    if (up === at) break;
    at = up;
  }
  if (!fs.statSync(at).isDirectory()) throw new CliError(`cannot write into --out ${dir}: ${at} is not a folder`, EXIT.usage);
  for (const d of missing) fs.mkdirSync(d);
}

async function download(ctx: Ctx, args: string[]): Promise<void> {
  const p = parse(args, { out: { type: 'string', short: 'o' }, seeds: { type: 'boolean' }, checkpoint: { type: 'boolean' }, partition: { type: 'string' }, 'no-resume': { type: 'boolean' } });
  const [id, ...wanted] = positionals(p, ['stream'], { rest: true });
  const partition = num(p, 'partition', 1, Number.MAX_SAFE_INTEGER, true);
  if (partition !== undefined && !p.values.checkpoint) throw usage('--partition goes with --checkpoint');
  if (p.values.checkpoint && p.values.seeds) throw usage('--checkpoint and --seeds download different files: use one');
  const dir = str(p, 'out') ?? '.';
  makeDir(dir);
  const client = ctx.client();
  const parts = await client.call<Partitions>('GET', `/v1/streams/${seg(id!)}/partitions`);
  const frameSet = new Set(parts.frame_files);
  const fileSet = new Set([...parts.seed_files, ...parts.tag_files]);
  let names: Array<{ name: string; url: string }>;
  if (p.values.checkpoint) {
    // The checkpoint a resume would start from: the last committed partition's, or the one asked for.
    const n = partition ?? parts.partitions.at(-1);
    if (n === undefined) throw new CliError(`stream ${id} has no committed checkpoint yet`, EXIT.notFound);
    if (!parts.partitions.includes(n)) throw new CliError(`stream ${id} has no committed partition ${n} (${partitionsLine(parts.partitions)})`, EXIT.notFound);
    const all = parts.checkpoint_files;
    for (const name of wanted) if (!all.includes(name)) throw new CliError(`stream ${id} has no checkpoint file "${name}" (checkpoint files: ${all.join(', ') || 'none'})`, EXIT.notFound);
    names = (wanted.length > 0 ? wanted : all).map((name) => ({ name, url: `/v1/streams/${seg(id!)}/partitions/${n}/checkpoint/${seg(name)}` }));
  } else if (wanted.length > 0) {
    names = wanted.map((name) => {
      if (frameSet.has(name)) return { name, url: `/v1/streams/${seg(id!)}/frames/${seg(name)}` };
      if (fileSet.has(name)) return { name, url: `/v1/streams/${seg(id!)}/files/${seg(name)}` };
      const hint = parts.checkpoint_files.includes(name) ? '; it is a checkpoint file: add --checkpoint' : '';
      throw new CliError(`stream ${id} has no frame, seed or tag file "${name}" (frame files: ${parts.frame_files.join(', ') || 'none yet'}${hint})`, EXIT.notFound);
    });
  } else {
    names = parts.frame_files.map((name) => ({ name, url: `/v1/streams/${seg(id!)}/frames/${seg(name)}` }));
    if (p.values.seeds) names.push(...[...fileSet].map((name) => ({ name, url: `/v1/streams/${seg(id!)}/files/${seg(name)}` })));
  }
  const results: Array<{ name: string; path: string; bytes: number; resumed_from: number }> = [];
  // Frame files only grow, so a partial one is a prefix of the file now; a checkpoint file of
  // another partition (the last one moves while the stream runs) is not: fetched whole.
  const resume = !p.values['no-resume'] && !p.values.checkpoint;
  for (const { name, url } of names) {
    // The server only ever sends names matching FILE_NAME; check anyway before using one as a path.
    if (!FILE_NAME.test(name)) throw new CliError(`refusing the file name "${name}" from the server`, EXIT.server);
    const final = path.join(dir, name);
    // Hidden: no stream's file name starts with a dot, so no file of the stream is taken for it.
    const partial = path.join(dir, `.${name}.part`);
    if (resume) adoptOldPartial(final, partial, url);
    const bar = progressBar(ctx.o, name);
    let r;
    try {
      r = await client.download(url, partial, { resume, progress: bar.update });
    } catch (err) {
      // Without names, every checkpoint file the stream ever had is asked for; this partition may lack some.
      if (p.values.checkpoint && wanted.length === 0 && err instanceof CliError && err.exitCode === EXIT.notFound) {
        const older = fs.existsSync(final) ? ` (the ${name} already in ${dir} is not of this partition)` : '';
        ctx.o.err.write(`stream-coordinator: ${name}: not in this partition's checkpoint, skipped${older}\n`);
        fs.rmSync(partial, { force: true });
        fs.rmSync(`${partial}.source`, { force: true });
        continue;
      }
      throw err;
    } finally {
      bar.end();
    }
    fs.renameSync(partial, final);
    results.push({ name, path: final, bytes: r.bytes, resumed_from: r.resumedFrom });
  }
  // Every file skipped: not a partition that lacks some, but a stream or partition gone meanwhile.
  if (p.values.checkpoint && names.length > 0 && results.length === 0) throw new CliError(`stream ${id}: none of its checkpoint files could be fetched (deleted meanwhile?)`, EXIT.notFound);
  print(ctx.o, results, () =>
    results.length === 0
      ? `stream ${id} has no committed frames yet`
      : table(results, [
          { header: 'FILE', get: (r) => r.path },
          { header: 'SIZE', get: (r) => bytes(r.bytes), right: true },
          { header: 'RESUMED AT', get: (r) => (r.resumed_from > 0 ? bytes(r.resumed_from) : '-'), right: true },
        ]),
  );
}

/** The streams commands. */
export const streams: Resource = {
  usage: `stream-coordinator streams <command>

  list <target> [--status ok|stopped|failed] [--limit N]
                                  a target's streams (all pages, or the first N)
  show <stream>                   one stream with its partitions and files
  add <target> <file>... [--tag FILE]...
                                  one stream whose seed files are the given files
  add <target> <dir>...           one stream per directory, its files as seed files
  stop <stream>...                stop; a core working on it is told to stop
  start <stream>...               make stopped or failed streams assignable again
  delete <stream>...              delete with all files and partitions
  download <stream> [<name>...] [--out DIR] [--seeds] [--no-resume]
                                  frame files (all committed partitions, concatenated)
                                  into DIR (default .); named seed or tag files too, or
                                  all of them with --seeds. An interrupted download
                                  leaves .<name>.part; the same command resumes it.
  download <stream> --checkpoint [<name>...] [--partition N] [--out DIR]
                                  the checkpoint files of the last committed partition
                                  (what a resume starts from), or of partition N`,

  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    const { o } = ctx;
    switch (sub) {
      case 'list': {
        const p = parse(args, { status: { type: 'string' }, limit: { type: 'string' } });
        const [target] = positionals(p, ['target']);
        const status = str(p, 'status');
        if (status !== undefined && !STATUSES.includes(status)) throw usage(`--status must be one of ${STATUSES.join(', ')}`);
        const max = num(p, 'limit', 1, Number.MAX_SAFE_INTEGER, true) ?? Number.MAX_SAFE_INTEGER;
        const rows = (await allStreams(ctx, target!, status ? Number.MAX_SAFE_INTEGER : max)).filter((s) => !status || s.status === status).slice(0, max);
        return print(o, rows, () => table(rows, COLUMNS));
      }
      case 'show': {
        const [id] = positionals(parse(args), ['stream']);
        const c = ctx.client();
        const [s, parts] = await Promise.all([c.call<Stream>('GET', `/v1/streams/${seg(id!)}`), c.call<Partitions>('GET', `/v1/streams/${seg(id!)}/partitions`)]);
        const v = { ...s, ...parts };
        return print(o, v, () =>
          table(
            [
              ...COLUMNS.map((c) => [c.header.toLowerCase(), c.get(s)] as const),
              ['target', s.target_id] as const,
              ['partitions', partitionsLine(parts.partitions)] as const,
              ['seed files', parts.seed_files.join(' ') || '-'] as const,
              ['tag files', parts.tag_files.join(' ') || '-'] as const,
              ['frame files', parts.frame_files.join(' ') || '-'] as const,
              ['checkpoint files', parts.checkpoint_files.join(' ') || '-'] as const,
            ],
            [
              { header: 'FIELD', get: (r) => r[0] },
              { header: 'VALUE', get: (r) => r[1] },
            ],
          ),
        );
      }
      case 'add': {
        const p = parse(args, { tag: { type: 'string', multiple: true } });
        const [target, ...paths] = positionals(p, ['target', 'file or directory'], { rest: true });
        const dirs = paths.filter(isDir);
        if (dirs.length > 0 && dirs.length < paths.length) throw usage('give either files (one stream) or directories (one stream each), not both');
        const tags = readFiles(list(p, 'tag'), 'tag files');
        const groups = dirs.length > 0 ? dirs.map((d) => ({ source: d, files: filesIn(d, (line) => ctx.o.err.write(`stream-coordinator: ${line}\n`)) })) : [{ source: paths.join(' '), files: paths }];
        const bodies = groups.map((g) => ({ source: g.source, body: { files: readFiles(g.files, 'seed files'), ...(Object.keys(tags).length > 0 ? { tags } : {}) } }));
        const created: Array<{ source: string; stream_id: string }> = [];
        for (const b of bodies) {
          try {
            const r = await ctx.client().call<StreamCreated>('POST', `/v1/targets/${seg(target!)}/streams`, b.body);
            created.push({ source: b.source, stream_id: r.stream_id });
          } catch (err) {
            if (created.length > 0 && err instanceof CliError) {
              print(o, created, () => table(created, [{ header: 'STREAM', get: (r) => r.stream_id }, { header: 'FROM', get: (r) => r.source }]));
              throw new CliError(`${b.source}: ${err.message} (${created.length} stream(s) were added before this one, listed above)`, err.exitCode, err.status, err.code);
            }
            throw err;
          }
        }
        return print(o, created, () => table(created, [{ header: 'STREAM', get: (r) => r.stream_id }, { header: 'FROM', get: (r) => r.source }]));
      }
      case 'stop':
      case 'start': {
        const ids = positionals(parse(args), ['stream'], { rest: true });
        const after = await each(ctx, ids, (id) => ctx.client().call<Stream>('POST', `/v1/streams/${seg(id)}/${sub}`));
        return print(o, after, () => table(after, COLUMNS));
      }
      case 'delete': {
        const ids = positionals(parse(args), ['stream'], { rest: true });
        const gone = await each(ctx, ids, async (id) => {
          await ctx.client().call('DELETE', `/v1/streams/${seg(id)}`);
          return id;
        });
        return print(o, { deleted: gone }, () => gone.map((id) => `deleted stream ${id}`).join('\n'));
      }
      case 'download':
        return download(ctx, args);
      default:
        throw usage(sub ? `unknown command "streams ${sub}"` : 'streams needs a command');
    }
  },
};

/**
 * Takes over a partial download an earlier version of the CLI left as `<name>.part` beside its record
 * `<name>.part.source`, when the record names exactly this download (a stream's own files of
 * those names would not hold that line): it is renamed to the hidden names and resumed.
 */
function adoptOldPartial(final: string, partial: string, url: string): void {
  const [oldPart, oldSource] = [`${final}.part`, `${final}.part.source`];
  try {
    if (fs.existsSync(partial) || fs.readFileSync(oldSource, 'utf8') !== `${url}\n`) return;
    fs.renameSync(oldPart, partial);
    fs.renameSync(oldSource, `${partial}.source`);
  } catch {
    // No old partial, or not one of this download's: nothing to take over.
  }
}
