/**
 * Live views over the shared state in Redis: active streams, open core sessions per
 * engine, and the coordinator processes alive.
 */
import { object, ok, type ApiRoute } from '../declared-routes';
import type { Principal } from '../../auth/users';
import { ENGINE, ID, NAME, TIME, type ApiDeps } from './common';

const ACTIVE = object(
  { stream_id: ID, engine: ENGINE, donor: NAME, node: { type: 'string' }, started_at: TIME, buffered_frames: { type: 'integer' }, frames: { type: 'integer' } },
  ['stream_id', 'engine', 'node', 'started_at', 'buffered_frames', 'frames'],
);

/** The live routes. */
export function liveRoutes(d: ApiDeps): ApiRoute[] {
  return [
    {
      method: 'GET',
      path: '/v1/active-streams',
      tag: 'live',
      summary: 'Active streams by target: engine, donor, start time, buffered and committed frames (a manager sees its own targets, an admin all)',
      access: ['manager', 'admin'],
      responses: {
        200: { description: 'Active streams keyed by target id', schema: object({ targets: { type: 'object', additionalProperties: { type: 'array', items: ACTIVE } } }, ['targets']) },
      },
      handler: async ({ principal }: { principal: Principal }) => {
        const targets: Record<string, unknown[]> = {};
        for (const a of await d.live.allActive()) {
          if (principal.role !== 'admin' && a.owner !== principal.name) continue;
          const { target_id, owner: _owner, ...rest } = a;
          (targets[target_id] ??= []).push(rest);
        }
        return ok({ targets });
      },
    },
    {
      method: 'GET',
      path: '/v1/active-cores',
      tag: 'live',
      summary: 'Open core sessions per engine, over all nodes',
      access: 'public',
      responses: { 200: { description: 'Counts', schema: object({ engines: { type: 'object', additionalProperties: { type: 'integer' } }, total: { type: 'integer' } }, ['engines', 'total']) } },
      handler: async () => {
        const engines = await d.live.coresByEngine();
        return ok({ engines, total: Object.values(engines).reduce((a, b) => a + b, 0) });
      },
    },
    {
      method: 'GET',
      path: '/v1/nodes',
      tag: 'live',
      summary: 'Coordinator processes alive, with their session counts',
      access: ['admin'],
      responses: {
        200: {
          description: 'Nodes',
          schema: object(
            {
              nodes: {
                type: 'array',
                items: object(
                  {
                    node: { type: 'string' },
                    host: { type: 'string' },
                    pid: { type: 'integer' },
                    worker: { type: 'integer' },
                    url: { type: 'string' },
                    started_at: TIME,
                    seen_at: TIME,
                    sessions: { type: 'integer' },
                    sessions_by_engine: { type: 'object', additionalProperties: { type: 'integer' } },
                  },
                  ['node', 'host', 'pid', 'worker', 'started_at', 'seen_at', 'sessions', 'sessions_by_engine'],
                ),
              },
            },
            ['nodes'],
          ),
        },
      },
      handler: async () => ok({ nodes: (await d.live.nodes()).sort((a, b) => a.node.localeCompare(b.node)) }),
    },
  ];
}
