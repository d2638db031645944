/**
 * Streams of a target: creation with seed and tag files, listing, start/stop, deletion,
 * and downloads of seed/tag files, single partition files and whole frame files (the
 * committed partitions concatenated in order, streamed with Content-Length).
 */
import { Type } from '@sinclair/typebox';
import { object, ok, oneOf, type ApiRoute } from '../declared-routes';
import type { Settings } from '../../config/settings';
import type { Principal } from '../../auth/principals';
import { AppError } from '../../errors';
import type { StreamBody } from '../router';
import type { ActiveStream } from '../../store/live';
import { LISTED_FIELDS, type ListedStream } from '../../store/streams';
import { partitionFile } from '../../store/partitions';
import { COMMITTED_FIELDS, committedPartitionId, committedPartitions, type CommittedLists } from '../../store/partition-pages';
import { frameFileBody, framePartsOf } from '../../store/downloads';
import { FILE_NAME, ID, ID_PARAMS, iso, requireOwner, route, streamTotal, type ApiDeps } from './common';
import { PARTITIONS, STREAM, STREAM_CREATED, STREAM_ERRORS, STREAM_LIST } from '../api-schemas';
import { ownedTarget } from './targets';
import type { PartitionFileKind, StreamDoc, StreamFileKind } from '../../model';

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const PARTITION_PARAMS = object({ id: ID, n: Type.String({ pattern: '^[1-9][0-9]{0,15}$' }), name: FILE_NAME });
const FILE_PARAMS = object({ id: ID, name: FILE_NAME });

/** `{name: base64}` maps of at most limits.maxFilesPerStream files. */
function fileMap(s: Settings) {
  return Type.Unsafe<Record<string, string>>({ type: 'object', propertyNames: FILE_NAME, additionalProperties: Type.String(), maxProperties: s.limits.maxFilesPerStream });
}
const OCTETS = { 'content-type': 'application/octet-stream' };
/** What a download answers besides 200 (the range support of http/range.ts). */
const PARTIAL = { description: 'The single byte range asked for with `Range: bytes=…` (Content-Range says which)', binary: true };
const NO_STREAM = 'No such stream';
const RANGE_416 = 'The Range starts at or past the end of the file; Content-Range gives its length';
/** Sortable fields of the stream list (query `sort`) and their document fields. */
const SORTS: Record<string, string> = { id: '_id', created_at: 'createdAt', status: 'status', frames: 'frames', error_count: 'errorCount' };
const SORT_KEYS = ['id', '-id', 'created_at', '-created_at', 'status', '-status', 'frames', '-frames', 'error_count', '-error_count'] as const;

/** Decodes a `{name: base64}` map, rejecting anything that is not canonical base64. */
function decodeFiles(map: Record<string, string> | undefined, where: string): Array<{ name: string; bytes: Buffer }> {
  return Object.entries(map ?? {}).map(([name, b64]) => {
    if (b64.length % 4 !== 0 || !B64.test(b64)) throw new AppError('bad_request', `${where}.${name}: not valid base64`);
    return { name, bytes: Buffer.from(b64, 'base64') };
  });
}

/**
 * The stream with `fields` (and `_id`, `owner`), when the principal may see it: not_found
 * when there is none, forbidden when it is another manager's. Each route names what it
 * reads, since a stream's lists grow with every committed partition.
 */
async function owned<K extends keyof StreamDoc>(d: ApiDeps, id: string, principal: Principal | undefined, fields: readonly K[]): Promise<Pick<StreamDoc, '_id' | 'owner' | K>> {
  const s = await d.streams.getFields(id, [...fields, 'owner']);
  if (!s) throw new AppError('not_found', `No stream ${id}`);
  requireOwner(principal, s.owner, 'stream');
  return s;
}

function viewWith(s: ListedStream, a: ActiveStream | null) {
  return {
    id: s._id,
    target_id: s.targetId,
    status: s.status,
    frames: s.frames,
    error_count: s.errorCount,
    active: a !== null,
    ...(a ? { engine: a.engine, ...(a.donor ? { donor: a.donor } : {}) } : {}),
    created_at: iso(s.createdAt),
  };
}

async function view(d: ApiDeps, s: ListedStream) {
  return viewWith(s, await d.live.active(s._id, s.targetId));
}

function download(body: StreamBody | undefined, what: string) {
  if (!body) throw new AppError('not_found', `No ${what}`);
  return { status: 200, headers: OCTETS, body };
}

async function partitionDownload(d: ApiDeps, params: { id: string; n: string; name: string }, principal: Principal | undefined, kind: PartitionFileKind) {
  const s = await owned(d, params.id, principal, COMMITTED_FIELDS);
  const n = Number(params.n);
  const docId = await committedPartitionId(d.db, s, n);
  if (!docId) throw new AppError('not_found', `Stream ${s._id} has no committed partition ${n}`);
  const f = await partitionFile(d.db, docId, kind, params.name);
  return download(f && d.files.body([f]), `${kind} file "${params.name}" in partition ${n}`);
}

/** Every committed partition of a stream; `not_found` when it was deleted while being read. */
async function committedOf(d: ApiDeps, s: CommittedLists) {
  const all = await committedPartitions(d.db, s);
  if (!all) throw new AppError('not_found', `No stream ${s._id}`);
  return all;
}

/** The stream routes. */
export function streamRoutes(settings: Settings): Array<ApiRoute<ApiDeps>> {
  const FILE_MAP = fileMap(settings);

  return [
    route({
      method: 'POST',
      path: '/v1/targets/:id/streams',
      tag: 'streams',
      summary: 'Add a stream with its seed files (and optional tag files), base64 in JSON',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      body: object({ files: Type.Unsafe<Record<string, string>>({ ...FILE_MAP, minProperties: 1 }), tags: Type.Optional(FILE_MAP) }),
      bodyLimit: settings.http.maxStreamBodyBytes,
      errors: { 400: 'Bad input (see the message), or a file that is not canonical base64, or a tag file named like a seed file', 404: 'No such target' },
      responses: { 201: { description: 'Created', schema: STREAM_CREATED } },
      handler: async ({ params, principal, body }, d) => {
        const t = await ownedTarget(d, params.id, principal);
        const seeds = decodeFiles(body.files, 'body.files');
        const tags = decodeFiles(body.tags, 'body.tags');
        const clash = tags.find((x) => body.files[x.name] !== undefined);
        if (clash) throw new AppError('bad_request', `body.tags.${clash.name}: a seed file has the same name`);
        const doc = await d.streams.create(t, seeds, tags);
        return ok({ stream_id: doc._id }, 201);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/targets/:id/streams',
      tag: 'streams',
      summary: "A target's streams with status, frames and whether a core is working on them",
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      query: object({
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: settings.limits.maxListItems })),
        after: Type.Optional(ID),
        // Unbounded: skipping costs at most a scan of this target's streams, which `total` already pays.
        offset: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
        sort: Type.Optional(oneOf(SORT_KEYS)),
      }),
      errors: { 400: 'Bad input (see the message), or `after` with a sort other than id', 404: 'No such target' },
      responses: {
        200: {
          description:
            "Streams, by id unless `sort` names a field (`-` for descending; ties by id); pages by `after` (the last id, id order only) or by `offset`. `total` counts all the target's streams (kept per process until a stream of the target is created or deleted, at most http.streamTotalCacheMs)",
          schema: STREAM_LIST,
        },
      },
      handler: async ({ params, principal, query }, d) => {
        const t = await ownedTarget(d, params.id, principal);
        const sort = query.sort ?? 'id';
        const desc = sort.startsWith('-');
        const field = SORTS[desc ? sort.slice(1) : sort]!;
        if (query.after && field !== '_id') throw new AppError('bad_request', 'query.after: only with the id sort; use offset with other sorts');
        const [list, total] = await Promise.all([
          d.streams.listByTarget(t._id, { field, order: desc ? -1 : 1, ...(query.after ? { after: query.after } : {}), offset: query.offset ?? 0, limit: query.limit ?? d.settings.limits.maxListItems }),
          streamTotal(d, t._id),
        ]);
        const active = await d.live.activeMany(t._id, list.map((s) => s._id));
        return ok({ streams: list.map((s, i) => viewWith(s, active[i] ?? null)), total });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/streams/:id',
      tag: 'streams',
      summary: 'One stream',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      errors: { 404: NO_STREAM },
      responses: { 200: { description: 'The stream', schema: STREAM } },
      handler: async ({ params, principal }, d) => ok(await view(d, await owned(d, params.id, principal, LISTED_FIELDS))),
    }),
    route({
      method: 'POST',
      path: '/v1/streams/:id/start',
      tag: 'streams',
      summary: 'Make a stopped or failed stream assignable again (resets its error count)',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      errors: { 404: NO_STREAM },
      responses: { 200: { description: 'The stream after the change', schema: STREAM } },
      handler: async ({ params, principal }, d) => {
        const s = await owned(d, params.id, principal, ['targetId']);
        const after = await d.streams.start(s);
        if (!after) throw new AppError('not_found', `No stream ${s._id}`);
        return ok(await view(d, after));
      },
    }),
    route({
      method: 'POST',
      path: '/v1/streams/:id/stop',
      tag: 'streams',
      summary: 'Stop a stream; a core working on it is told to stop',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      errors: { 404: NO_STREAM },
      responses: { 200: { description: 'The stream after the change', schema: STREAM } },
      handler: async ({ params, principal }, d) => {
        return ok(await view(d, await d.streams.stop(await owned(d, params.id, principal, LISTED_FIELDS))));
      },
    }),
    route({
      method: 'DELETE',
      path: '/v1/streams/:id',
      tag: 'streams',
      summary: 'Delete a stream with its files and partitions; a core working on it is told to stop',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      errors: { 404: NO_STREAM },
      responses: { 204: { description: 'Deleted' } },
      handler: async ({ params, principal }, d) => {
        await d.streams.remove(await owned(d, params.id, principal, ['targetId', 'createdAt']));
        return { status: 204 };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/streams/:id/partitions',
      tag: 'files',
      summary: 'Committed partitions and the names of seed, tag, frame and checkpoint files',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      errors: { 404: NO_STREAM },
      responses: {
        200: {
          description: 'Partitions [5, 12, 38] mean frames (0,5] (5,12] (12,38]',
          schema: PARTITIONS,
        },
      },
      handler: async ({ params, principal }, d) => {
        const s = await owned(d, params.id, principal, [...COMMITTED_FIELDS, 'seedFiles', 'tagFiles', 'frameFiles', 'checkpointFiles']);
        const partitions = await committedOf(d, s);
        return ok({ partitions: partitions.map((p) => p.n), seed_files: s.seedFiles, tag_files: s.tagFiles, frame_files: s.frameFiles, checkpoint_files: s.checkpointFiles });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/streams/:id/files/:name',
      tag: 'files',
      summary: 'Download a seed or tag file',
      access: ['manager', 'admin'],
      params: FILE_PARAMS,
      errors: { 404: 'No such stream, or it has no seed or tag file of this name', 416: RANGE_416 },
      responses: { 200: { description: 'The bytes', binary: true }, 206: PARTIAL },
      handler: async ({ params, principal }, d) => {
        const s = await owned(d, params.id, principal, ['seedFiles', 'tagFiles']);
        const kind: StreamFileKind | undefined = s.seedFiles.includes(params.name) ? 'seed' : s.tagFiles.includes(params.name) ? 'tag' : undefined;
        const f = kind && (await d.streams.file(s._id, kind, params.name));
        return download(f ? d.files.body([f]) : undefined, `seed or tag file "${params.name}"`);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/streams/:id/partitions/:n/:name',
      tag: 'files',
      summary: 'Download one frame file of committed partition n',
      access: ['manager', 'admin'],
      params: PARTITION_PARAMS,
      errors: { 404: 'No such stream, no committed partition n, or no frame file of this name in it', 416: RANGE_416 },
      responses: { 200: { description: 'The bytes', binary: true }, 206: PARTIAL },
      handler: ({ params, principal }, d) => partitionDownload(d, params, principal, 'frame'),
    }),
    route({
      method: 'GET',
      path: '/v1/streams/:id/partitions/:n/checkpoint/:name',
      tag: 'files',
      summary: 'Download one checkpoint file of committed partition n',
      access: ['manager', 'admin'],
      params: PARTITION_PARAMS,
      errors: { 404: 'No such stream, no committed partition n, or no checkpoint file of this name in it', 416: RANGE_416 },
      responses: { 200: { description: 'The bytes', binary: true }, 206: PARTIAL },
      handler: ({ params, principal }, d) => partitionDownload(d, params, principal, 'checkpoint'),
    }),
    route({
      method: 'GET',
      path: '/v1/streams/:id/frames/:name',
      tag: 'files',
      summary: 'A frame file across all committed partitions, concatenated in order, streamed with Content-Length',
      access: ['manager', 'admin'],
      params: FILE_PARAMS,
      errors: { 404: 'No such stream, or it has no frame file of this name', 416: RANGE_416 },
      responses: { 200: { description: 'The bytes', binary: true }, 206: PARTIAL },
      handler: async ({ params, principal }, d) => {
        const s = await owned(d, params.id, principal, [...COMMITTED_FIELDS, 'frameFiles']);
        if (!s.frameFiles.includes(params.name)) throw new AppError('not_found', `No frame file "${params.name}" in stream ${s._id}`);
        return download(
          frameFileBody(d.db, d.files, await framePartsOf(d.db, await committedOf(d, s), params.name), params.name),
          `frame file "${params.name}"`,
        );
      },
    }),
    route({
      method: 'GET',
      path: '/v1/streams/:id/errors',
      tag: 'streams',
      summary: "The stream's error log, newest first",
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      errors: { 404: NO_STREAM },
      responses: {
        200: {
          description: 'Errors reported by cores',
          schema: STREAM_ERRORS,
        },
      },
      handler: async ({ params, principal }, d) => {
        const s = await owned(d, params.id, principal, []);
        const errs = await d.streams.errors(s._id, d.settings.limits.maxListItems);
        return ok({ errors: errs.map((e) => ({ at: iso(e.at as Date), message: e.message as string, ...(e.engine ? { engine: e.engine as string } : {}), ...(e.donor ? { donor: e.donor as string } : {}) })) });
      },
    }),
  ];
}
