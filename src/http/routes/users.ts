/**
 * Users (admins and managers) and their tokens; `/v1/me` for any token.
 */
import { object, ok, type ApiRoute } from '../declared-routes';
import type { Principal } from '../../auth/users';
import { AppError } from '../../errors';
import { hashToken, newToken } from '../../auth/tokens';
import { NAME, NAME_PARAMS, TIME, WEIGHT, iso, unique, type ApiDeps } from './common';
import type { UserDoc } from '../../model';

const ROLE = { type: 'string', enum: ['manager', 'admin'] };
const USER = object({ name: NAME, role: ROLE, weight: WEIGHT, created_at: TIME }, ['name', 'role', 'weight', 'created_at']);

function view(u: UserDoc) {
  return { name: u.name, role: u.role, weight: u.weight, created_at: iso(u.createdAt) };
}

/** The user routes. */
export function userRoutes(d: ApiDeps): ApiRoute[] {
  const users = d.db.collection<UserDoc>('users');

  async function existing(name: string): Promise<UserDoc> {
    const u = await users.findOne({ name });
    if (!u) throw new AppError('not_found', `No user named "${name}"`);
    return u;
  }

  return [
    {
      method: 'GET',
      path: '/v1/me',
      tag: 'users',
      summary: 'Who this token belongs to',
      access: 'token',
      responses: { 200: { description: 'The caller', schema: object({ name: NAME, role: { type: 'string', enum: ['admin', 'manager', 'donor'] } }, ['name', 'role']) } },
      handler: ({ principal }) => ok({ name: principal!.name, role: principal!.role }),
    },
    {
      method: 'POST',
      path: '/v1/users',
      tag: 'users',
      summary: 'Create a manager or admin; the token is returned once',
      access: ['admin'],
      body: object({ name: NAME, role: ROLE, weight: WEIGHT }, ['name', 'role']),
      responses: { 201: { description: 'Created', schema: object({ name: NAME, role: ROLE, token: { type: 'string' } }, ['name', 'role', 'token']) } },
      handler: async ({ body }: { body: { name: string; role: 'admin' | 'manager'; weight?: number } }) => {
        const token = newToken();
        await unique(`A user named "${body.name}"`, () =>
          users.insertOne({ name: body.name, role: body.role, weight: body.weight ?? 1, tokenHash: hashToken(token), createdAt: new Date() }),
        );
        d.log.info({ user: body.name, role: body.role }, 'user created');
        return ok({ name: body.name, role: body.role, token }, 201);
      },
    },
    {
      method: 'GET',
      path: '/v1/users',
      tag: 'users',
      summary: 'List users',
      access: ['admin'],
      responses: { 200: { description: 'Users', schema: object({ users: { type: 'array', items: USER } }, ['users']) } },
      handler: async () => ok({ users: (await users.find({}, { sort: { name: 1 }, limit: d.settings.limits.maxListItems }).toArray()).map(view) }),
    },
    {
      method: 'PATCH',
      path: '/v1/users/:name',
      tag: 'users',
      summary: "Change a user's weight or role",
      access: ['admin'],
      params: NAME_PARAMS,
      body: object({ weight: WEIGHT, role: ROLE }, [], { minProperties: 1 }),
      responses: { 200: { description: 'The user after the change', schema: USER } },
      handler: async ({ params, body }: { params: { name: string }; body: { weight?: number; role?: 'admin' | 'manager' } }) => {
        const before = await existing(params.name);
        if (body.role === 'manager' && before.role === 'admin') await keepOneAdmin(params.name);
        if (body.role === 'admin' && before.role === 'manager' && (await d.db.collection('targets').countDocuments({ owner: params.name }, { limit: 1 })) > 0) {
          throw new AppError('conflict', `"${params.name}" owns targets; an admin cannot own targets`);
        }
        const after = await users.findOneAndUpdate({ name: params.name }, { $set: body }, { returnDocument: 'after' });
        if (!after) throw new AppError('not_found', `No user named "${params.name}"`);
        if (body.role && body.role !== before.role) await d.auth.invalidate(before.tokenHash);
        if (body.weight !== undefined) await d.bus.publish('target.changed', { targetId: '*' });
        return ok(view(after));
      },
    },
    {
      method: 'DELETE',
      path: '/v1/users/:name',
      tag: 'users',
      summary: 'Remove a user (409 while it owns targets, or if it is the last admin)',
      access: ['admin'],
      params: NAME_PARAMS,
      responses: { 204: { description: 'Removed' } },
      handler: async ({ params }: { params: { name: string } }) => {
        const u = await existing(params.name);
        if (u.role === 'admin') await keepOneAdmin(u.name);
        if ((await d.db.collection('targets').countDocuments({ owner: u.name }, { limit: 1 })) > 0) {
          throw new AppError('conflict', `"${u.name}" owns targets; delete or hand them over first`);
        }
        await users.deleteOne({ name: u.name });
        await d.auth.invalidate(u.tokenHash);
        d.log.info({ user: u.name }, 'user removed');
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      path: '/v1/users/:name/token',
      tag: 'users',
      summary: "Rotate a user's token (admin, or the user itself); the old token stops working at once",
      access: ['admin', 'manager'],
      params: NAME_PARAMS,
      responses: { 200: { description: 'The new token, shown once', schema: object({ token: { type: 'string' } }, ['token']) } },
      handler: async ({ params, principal }: { params: { name: string }; principal: Principal }) => {
        if (principal.role !== 'admin' && principal.name !== params.name) throw new AppError('forbidden', 'Only an admin or the user itself may rotate this token');
        const token = newToken();
        const before = await users.findOneAndUpdate({ name: params.name }, { $set: { tokenHash: hashToken(token) } });
        if (!before) throw new AppError('not_found', `No user named "${params.name}"`);
        await d.auth.invalidate(before.tokenHash);
        d.log.info({ user: params.name }, 'token rotated');
        return ok({ token });
      },
    },
  ];

  async function keepOneAdmin(name: string): Promise<void> {
    if ((await users.countDocuments({ role: 'admin', name: { $ne: name } }, { limit: 1 })) === 0) {
      throw new AppError('conflict', `"${name}" is the last admin`);
    }
  }
}
