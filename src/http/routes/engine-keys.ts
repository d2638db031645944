/**
 * Engine keys: what a core presents to prove its engine. Shown once, stored as a hash;
 * revoking one closes the sockets that used it on every node (through the bus).
 */
import { Type } from '@sinclair/typebox';
import { object, ok, type ApiRoute } from '../declared-routes';
import { AppError } from '../../errors';
import { hashToken, newToken } from '../../auth/tokens';
import { ENGINE, ID_PARAMS, iso, route, type ApiDeps } from './common';
import { ENGINE_KEYS, ENGINE_KEY_CREATED } from '../api-schemas';
import { newId } from '../../model';
import { insertEngineKey, listEngineKeys, revokeEngineKey } from '../../store/engine-keys';
import type { Settings } from '../../config/settings';


/** The engine key routes. */
export function engineKeyRoutes(s: Settings): Array<ApiRoute<ApiDeps>> {
  return [
    route({
      method: 'POST',
      path: '/v1/engine-keys',
      tag: 'engine keys',
      summary: 'Create an engine key; the key is returned once',
      access: ['admin'],
      body: object({ engine: ENGINE, description: Type.Optional(Type.String({ maxLength: s.limits.maxDescriptionLength })) }),
      responses: { 201: { description: 'Created', schema: ENGINE_KEY_CREATED } },
      handler: async ({ body }, d) => {
        const key = newToken();
        const id = newId();
        await insertEngineKey(d.db, { _id: id, engine: body.engine, description: body.description ?? '', keyHash: hashToken(key), createdAt: new Date(), revokedAt: null });
        d.log.info({ keyId: id, engine: body.engine }, 'engine key created');
        return ok({ id, engine: body.engine, key }, 201);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/engine-keys',
      tag: 'engine keys',
      summary: 'List engine keys (never the keys themselves)',
      access: ['admin'],
      responses: { 200: { description: 'Keys', schema: ENGINE_KEYS } },
      handler: async (_, d) => {
        const all = await listEngineKeys(d.db, d.settings.limits.maxListItems);
        return ok({ engine_keys: all.map((k) => ({ id: k._id, engine: k.engine, description: k.description, created_at: iso(k.createdAt), revoked_at: iso(k.revokedAt) })) });
      },
    }),
    route({
      method: 'DELETE',
      path: '/v1/engine-keys/:id',
      tag: 'engine keys',
      summary: 'Revoke an engine key; cores connected with it are disconnected',
      access: ['admin'],
      params: ID_PARAMS,
      responses: { 204: { description: 'Revoked' } },
      errors: { 404: 'No such engine key', 503: 'Storage unavailable, or revoked in MongoDB but Redis did not take the announcement; retry' },
      handler: async ({ params }, d) => {
        // A key already revoked is announced again: a retry after a failed announcement must
        // still close its sockets.
        const k = await revokeEngineKey(d.db, params.id);
        if (!k) throw new AppError('not_found', `No engine key ${params.id}`);
        const announced = (await d.bus.publish('auth.invalidate', { tokenHash: k.keyHash })) && (await d.bus.publish('engine-key.revoked', { keyId: k._id }));
        if (!announced) {
          // Stored as revoked, but other processes may not know yet: the admin must not be told it is done.
          d.log.warn({ keyId: k._id }, 'engine key revoked in MongoDB but the revocation could not be announced');
          throw new AppError('unavailable', 'The key is revoked but its open sockets could not be reached; retry the request');
        }
        d.log.info({ keyId: k._id, engine: k.engine }, 'engine key revoked');
        return { status: 204 };
      },
    }),
  ];
}
