/**
 * Targets: a manager's projects, with the engines they accept, a stage deciding which
 * cores see them, a weight for fair share and free-form options (merged key by key).
 */
import { Type } from '@sinclair/typebox';
import { object, ok, type ApiRoute } from '../declared-routes';
import { bufferBody } from '../router';
import type { Db } from 'mongodb';
import type { Principal } from '../../auth/principals';
import { AppError } from '../../errors';
import { ID_PARAMS, WEIGHT, iso, mayOwn, requireOwner, route, streamTotal, type ApiDeps } from './common';
import { newId, type TargetDoc } from '../../model';
import { STAGE, TARGET_CREATED, targetSchemas } from '../api-schemas';
import type { Settings } from '../../config/settings';
import { countOwnedTargets, deleteTarget, insertTarget, listTargets, targetById, targetHeads, updateTargetAt } from '../../store/targets';

function view(t: TargetDoc) {
  return { id: t._id, owner: t.owner, engines: t.engines, stage: t.stage, weight: t.weight, options: t.options, created_at: iso(t.createdAt), updated_at: iso(t.updatedAt) };
}

/** Whether the principal may see the target: anyone a public one, its owner and admins any. */
export function maySee(t: Pick<TargetDoc, 'stage' | 'owner'>, principal: Principal | undefined): boolean {
  return t.stage === 'public' || mayOwn(principal, t.owner);
}

/**
 * The ids among `ids` of targets the principal may see ({@link maySee}): one query by `_id`.
 * Targets that no longer exist are not among them.
 */
export async function visibleIds(d: ApiDeps, ids: string[], principal: Principal | undefined): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const found = await targetHeads(d.db, ids);
  return new Set(found.filter((t) => maySee(t, principal)).map((t) => t._id));
}

/** Throws unless the principal may see the target. */
function visibleTo(t: TargetDoc, principal: Principal | undefined): void {
  if (maySee(t, principal)) return;
  if (!principal) throw new AppError('unauthorized', 'This target is not public; send the owner\'s token', { 'www-authenticate': 'Bearer' });
  throw new AppError('forbidden', 'This target is not public and belongs to another manager');
}

/** Loads a target the principal owns (or any, for an admin). */
export async function ownedTarget(d: ApiDeps, id: string, principal: Principal | undefined): Promise<TargetDoc> {
  const t = await targetById(d.db, id);
  if (!t) throw new AppError('not_found', `No target ${id}`);
  requireOwner(principal, t.owner, 'target');
  return t;
}

function checkOptions(d: ApiDeps, options: Record<string, unknown>): void {
  // The walk first: it bounds the depth that serializing below would recurse into.
  checkValue(options, 'body.options', 1, d.settings.limits.maxOptionsDepth);
  const size = Buffer.byteLength(JSON.stringify(options));
  if (size > d.settings.limits.maxOptionsBytes) throw new AppError('bad_request', `body.options: ${size} bytes as JSON, over the limit of ${d.settings.limits.maxOptionsBytes}`);
  // The body's own count is checked by its schema; merged into a target's options (PATCH) it must hold too.
  const keys = Object.keys(options).length;
  if (keys > d.settings.limits.maxOptionsKeys) throw new AppError('bad_request', `body.options: the target would have ${keys} option keys, over the limit of ${d.settings.limits.maxOptionsKeys}`);
}

/**
 * Refuses, at every depth, what MongoDB or JavaScript would treat specially or the store
 * cannot hold: keys starting with $, holding '.' or NUL, `__proto__` or over 128 characters;
 * nesting deeper than `maxDepth`; numbers that are not finite (JSON's 1e400 parses to
 * Infinity); arrays directly inside arrays (FerretDB refuses them).
 */
function checkValue(value: unknown, at: string, depth: number, maxDepth: number): void {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new AppError('bad_request', `${at}: numbers must be finite`);
  if (!value || typeof value !== 'object') return;
  if (depth > maxDepth) throw new AppError('bad_request', `${at}: nested deeper than limits.maxOptionsDepth (${maxDepth})`);
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      if (Array.isArray(v)) throw new AppError('bad_request', `${at}[${i}]: arrays directly inside arrays are not supported; wrap the inner one in an object`);
      checkValue(v, `${at}[${i}]`, depth + 1, maxDepth);
    });
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k.startsWith('$') || k.includes('.') || k.includes('\0') || k === '__proto__' || k.length > 128) {
      throw new AppError('bad_request', `${at}: key "${k.replace(/\0/g, '\\0').slice(0, 40)}" must not start with $, contain '.' or NUL, be __proto__, or exceed 128 characters`);
    }
    checkValue(v, `${at}.${k}`, depth + 1, maxDepth);
  }
}

/**
 * The anonymous GET /v1/targets answer, as bytes: every public target (up to `maxItems`,
 * oldest first) with its options. Built once per http.publicTargetsCacheMs (ApiDeps.publicTargets).
 */
export async function publicTargetsJson(db: Db, maxItems: number): Promise<Buffer> {
  const list = await listTargets(db, { stage: 'public' }, maxItems);
  return Buffer.from(JSON.stringify({ targets: list.map(view) }));
}

/** The 400 of routes that set options: what the schema cannot say (see checkOptions). */
const OPTIONS_400 = 'Bad input (see the message), or options over limits.maxOptionsBytes as JSON or nested deeper than limits.maxOptionsDepth, an option key (at any depth) starting with $, containing . or NUL, being __proto__ or over 128 characters, a number that is not finite, or an array directly inside an array';

async function streamCounts(d: ApiDeps, targetId: string) {
  const { byStatus, frames } = await d.streams.statsByTarget(targetId, streamTotal(d, targetId));
  return { ...byStatus, frames };
}

/** The target routes. */
export function targetRoutes(s: Settings): Array<ApiRoute<ApiDeps>> {
  const { OPTIONS, ENGINES, TARGET, TARGETS } = targetSchemas(s.limits);
  return [
    route({
      method: 'POST',
      path: '/v1/targets',
      tag: 'targets',
      summary: 'Create a target',
      access: ['manager'],
      body: object({ engines: ENGINES, stage: Type.Optional(STAGE), weight: Type.Optional(WEIGHT), options: Type.Optional(OPTIONS) }),
      errors: { 400: OPTIONS_400, 409: 'The manager already has limits.maxTargetsPerManager targets' },
      responses: { 201: { description: 'Created', schema: TARGET_CREATED } },
      handler: async ({ principal, body }, d) => {
        checkOptions(d, body.options ?? {});
        // Managers creating at the same moment may pass it by a few: it bounds, it does not count exactly.
        const max = d.settings.limits.maxTargetsPerManager;
        if ((await countOwnedTargets(d.db, principal.name, max)) >= max) {
          throw new AppError('conflict', `You have ${max} targets, the most a manager may have (limits.maxTargetsPerManager); delete one first`);
        }
        const now = new Date();
        const t: TargetDoc = { _id: newId(), owner: principal.name, engines: body.engines, stage: body.stage ?? 'private', weight: body.weight ?? 1, options: body.options ?? {}, createdAt: now, updatedAt: now, version: 1 };
        await insertTarget(d.db, t);
        await d.bus.publish('target.changed', { targetId: t._id });
        return ok({ target_id: t._id }, 201);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/targets',
      tag: 'targets',
      summary: "A manager's own targets; public targets for everyone else (all targets for admins)",
      access: 'public',
      responses: { 200: { description: 'Targets', schema: TARGETS } },
      handler: async ({ principal }, d) => {
        if (principal?.role !== 'admin' && principal?.role !== 'manager') {
          // Anyone may ask, as often as they like: one shared answer, sent a chunk at a time.
          return { status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: bufferBody(await d.publicTargets.get()) };
        }
        const list = await listTargets(d.db, principal.role === 'admin' ? {} : { owner: principal.name }, d.settings.limits.maxListItems);
        return ok({ targets: list.map(view) });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/targets/:id',
      tag: 'targets',
      summary: 'One target with its stream counts by status (public targets: anyone; others: the owner)',
      access: 'public',
      errors: { 401: 'The target is not public and no token was sent, or the token is unknown', 403: 'The target is not public and belongs to another manager', 404: 'No such target' },
      params: ID_PARAMS,
      responses: { 200: { description: 'The target', schema: TARGET } },
      handler: async ({ params, principal }, d) => {
        // Dashboards poll this: the target and its counts come from a short per-process cache
        // (http.targetCacheMs), dropped on every change to the target, and computed once for
        // all who ask at the same time, whoever they are.
        const answer = await d.targetViews.answer(params.id, async () => {
          const t = await targetById(d.db, params.id);
          if (!t) throw new AppError('not_found', `No target ${params.id}`);
          return { target: t, body: { ...view(t), streams: await streamCounts(d, t._id) } };
        });
        visibleTo(answer.target, principal);
        return ok(answer.body);
      },
    }),
    route({
      method: 'PATCH',
      path: '/v1/targets/:id',
      tag: 'targets',
      summary: 'Change stage, engines, weight or options (options merge key by key; a null value removes the key)',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      body: object({ engines: Type.Optional(ENGINES), stage: Type.Optional(STAGE), weight: Type.Optional(WEIGHT), options: Type.Optional(OPTIONS) }, { minProperties: 1 }),
      errors: { 400: OPTIONS_400, 404: 'No such target', 409: 'The target kept changing under this request (http.targetUpdateAttempts); retry' },
      responses: { 200: { description: 'The target after the change', schema: TARGET } },
      handler: async ({ params, principal, body }, d) => {
        for (let attempt = 0; attempt < d.settings.http.targetUpdateAttempts; attempt++) {
          const t = await ownedTarget(d, params.id, principal);
          checkValue(body.options ?? {}, 'body.options', 1, d.settings.limits.maxOptionsDepth);
          const options: Record<string, unknown> = { ...t.options };
          for (const [k, v] of Object.entries(body.options ?? {})) {
            if (v === null) delete options[k];
            else options[k] = v;
          }
          checkOptions(d, options);
          const set = { ...body, options, updatedAt: new Date() };
          // Optimistic concurrency: two PATCHes of different option keys must both land.
          const after = await updateTargetAt(d.db, t._id, t.version, set);
          if (!after) continue;
          await d.bus.publish('target.changed', { targetId: t._id });
          if (body.stage === 'disabled' && t.stage !== 'disabled') {
            d.log.info({ target: t._id }, 'target disabled');
            for (const a of await d.live.activeOfTarget(t._id)) await d.bus.publish('stream.stop', { streamId: a.stream_id, reason: 'target_disabled' });
          }
          return ok({ ...view(after), streams: await streamCounts(d, t._id) });
        }
        throw new AppError('conflict', 'The target kept changing under this request; retry');
      },
    }),
    route({
      method: 'DELETE',
      path: '/v1/targets/:id',
      tag: 'targets',
      summary: 'Delete a target (409 while it has streams)',
      access: ['manager', 'admin'],
      params: ID_PARAMS,
      errors: { 404: 'No such target', 409: 'The target still has streams' },
      responses: { 204: { description: 'Deleted' } },
      handler: async ({ params, principal }, d) => {
        const t = await ownedTarget(d, params.id, principal);
        if ((await d.streams.countByTarget(t._id, undefined, 1)) > 0) {
          throw new AppError('conflict', 'The target still has streams; delete them first');
        }
        // Its counts go first: with no streams left nothing can count to it again, and a Redis
        // failure here fails the request while the target can still be deleted again, instead
        // of leaving the counts of a target that is gone.
        await d.progress.forget(t._id);
        await deleteTarget(d.db, t._id);
        // Its streams are gone, so its queues normally are too; leases still held by their
        // sessions keep it in the sweep's set until they end (Leases.pruneTarget).
        await d.leases.pruneTarget(t._id);
        await d.bus.publish('target.changed', { targetId: t._id });
        return { status: 204 };
      },
    }),
  ];
}
