/**
 * Users (admins and managers) and their tokens; `/v1/me` for any token.
 */
import { Type } from '@sinclair/typebox';
import { object, ok, type ApiRoute } from '../declared-routes';
import { AppError } from '../../errors';
import { hashToken, newToken } from '../../auth/tokens';
import { withLock, type LockOptions } from '../../store/lock';
import { NAME, NAME_PARAMS, WEIGHT, iso, route, unique, type ApiDeps } from './common';
import { ME, TOKEN, USER, USERS, USER_CREATED, USER_ROLE as ROLE } from '../api-schemas';
import type { UserDoc } from '../../model';
import { countOwnedTargets } from '../../store/targets';
import { anotherAdmin, deleteUser, insertUser, listUsers, replaceUserToken, updateUser, userByName } from '../../store/users';


function view(u: UserDoc) {
  return { name: u.name, role: u.role, weight: u.weight, created_at: iso(u.createdAt) };
}

async function existing(d: ApiDeps, name: string): Promise<UserDoc> {
  const u = await userByName(d.db, name);
  if (!u) throw new AppError('not_found', `No user named "${name}"`);
  return u;
}

async function keepOneAdmin(d: ApiDeps, name: string): Promise<void> {
  if (!(await anotherAdmin(d.db, name))) {
    throw new AppError('conflict', `"${name}" is the last admin`);
  }
}

/** Whether the user owns a target (an admin may not; a user who does may not be removed). */
async function ownsTargets(d: ApiDeps, name: string): Promise<boolean> {
  return (await countOwnedTargets(d.db, name, 1)) > 0;
}

/** Role changes and user removals hold it 10 s at most; others wait up to about 2 s, then 409. */
const ROLES_LOCK: LockOptions = { ttlMs: 10_000, attempts: 100, retryMs: 20, busy: () => new AppError('conflict', 'Another change of roles or users is in progress; retry') };

/**
 * Runs a role change or a user removal holding one lock for all nodes, so two requests
 * cannot both pass {@link keepOneAdmin} and together leave no admin: its check and the write
 * are separate store commands.
 */
function rolesLocked<T>(d: ApiDeps, fn: () => Promise<T>): Promise<T> {
  return withLock(d.redis, `${d.settings.redis.keyPrefix}lock:roles`, ROLES_LOCK, fn);
}

/** PATCH /v1/users/:name: a weight or role change (a role change runs under {@link rolesLocked}). */
async function changeUser(d: ApiDeps, name: string, body: { weight?: number; role?: 'admin' | 'manager' }) {
  const before = await existing(d, name);
  if (body.role === 'manager' && before.role === 'admin') await keepOneAdmin(d, name);
  if (body.role === 'admin' && before.role === 'manager' && (await ownsTargets(d, name))) {
    throw new AppError('conflict', `"${name}" owns targets; an admin cannot own targets`);
  }
  const after = await updateUser(d.db, name, body);
  if (!after) throw new AppError('not_found', `No user named "${name}"`);
  if (body.role && body.role !== before.role) {
    // The token may have been rotated between the read and the write: drop both from the caches.
    await d.auth.invalidate(before.tokenHash);
    if (after.tokenHash !== before.tokenHash) await d.auth.invalidate(after.tokenHash);
  }
  if (body.weight !== undefined) await d.bus.publish('target.changed', { targetId: '*' });
  return ok(view(after));
}

/** The user routes. */
export function userRoutes(): Array<ApiRoute<ApiDeps>> {
  return [
    route({
      method: 'GET',
      path: '/v1/me',
      tag: 'users',
      summary: 'Who this token belongs to',
      access: 'token',
      responses: { 200: { description: 'The caller', schema: ME } },
      handler: ({ principal }) => ok({ name: principal.name, role: principal.role }),
    }),
    route({
      method: 'POST',
      path: '/v1/users',
      tag: 'users',
      summary: 'Create a manager or admin; the token is returned once',
      access: ['admin'],
      body: object({ name: NAME, role: ROLE, weight: Type.Optional(WEIGHT) }),
      errors: { 409: 'The name is taken' },
      responses: { 201: { description: 'Created', schema: USER_CREATED } },
      handler: async ({ body }, d) => {
        const token = newToken();
        await unique(`A user named "${body.name}"`, () =>
          insertUser(d.db, { name: body.name, role: body.role, weight: body.weight ?? 1, tokenHash: hashToken(token), createdAt: new Date() }),
        );
        d.log.info({ user: body.name, role: body.role }, 'user created');
        // The hubs' target caches hold managers' weights (a manager they do not know counts 1).
        if (body.weight !== undefined && body.weight !== 1) await d.bus.publish('target.changed', { targetId: '*' });
        return ok({ name: body.name, role: body.role, token }, 201);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/users',
      tag: 'users',
      summary: 'List users',
      access: ['admin'],
      responses: { 200: { description: 'Users', schema: USERS } },
      handler: async (_, d) => ok({ users: (await listUsers(d.db, d.settings.limits.maxListItems)).map(view) }),
    }),
    route({
      method: 'PATCH',
      path: '/v1/users/:name',
      tag: 'users',
      summary: "Change a user's weight or role",
      access: ['admin'],
      params: NAME_PARAMS,
      body: object({ weight: Type.Optional(WEIGHT), role: Type.Optional(ROLE) }, { minProperties: 1 }),
      errors: { 404: 'No such user', 409: 'Demoting the last admin, or making a manager that owns targets an admin' },
      responses: { 200: { description: 'The user after the change', schema: USER } },
      handler: ({ params, body }, d) => (body.role === undefined ? changeUser(d, params.name, body) : rolesLocked(d, () => changeUser(d, params.name, body))),
    }),
    route({
      method: 'DELETE',
      path: '/v1/users/:name',
      tag: 'users',
      summary: 'Remove a user (409 while it owns targets, or if it is the last admin)',
      access: ['admin'],
      params: NAME_PARAMS,
      errors: { 404: 'No such user', 409: 'The user owns targets, or is the last admin' },
      responses: { 204: { description: 'Removed' } },
      handler: ({ params }, d) => rolesLocked(d, async () => {
        const u = await existing(d, params.name);
        if (u.role === 'admin') await keepOneAdmin(d, u.name);
        if (await ownsTargets(d, u.name)) {
          throw new AppError('conflict', `"${u.name}" owns targets; delete or hand them over first`);
        }
        await deleteUser(d.db, u.name);
        await d.auth.invalidate(u.tokenHash);
        d.log.info({ user: u.name }, 'user removed');
        return { status: 204 };
      }),
    }),
    route({
      method: 'POST',
      path: '/v1/users/:name/token',
      tag: 'users',
      summary: "Rotate a user's token (admin, or the user itself); the old token stops working at once",
      access: ['admin', 'manager'],
      params: NAME_PARAMS,
      errors: { 404: 'No such user' },
      responses: { 200: { description: 'The new token, shown once', schema: TOKEN } },
      handler: async ({ params, principal }, d) => {
        if (principal.role !== 'admin' && principal.name !== params.name) throw new AppError('forbidden', 'Only an admin or the user itself may rotate this token');
        const token = newToken();
        const before = await replaceUserToken(d.db, params.name, hashToken(token));
        if (!before) throw new AppError('not_found', `No user named "${params.name}"`);
        await d.auth.invalidate(before.tokenHash);
        d.log.info({ user: params.name }, 'token rotated');
        return ok({ token });
      },
    }),
  ];
}
