/**
 * Live views over the shared state in Redis: active streams, open core sessions per
 * engine, and the coordinator processes alive.
 */
import { ok, type ApiRoute } from '../declared-routes';
import { route, type ApiDeps } from './common';
import { ACTIVE_CORES, ACTIVE_STREAMS, NODES } from '../api-schemas';

/** The live routes. */
export function liveRoutes(): Array<ApiRoute<ApiDeps>> {
  return [
    route({
      method: 'GET',
      path: '/v1/active-streams',
      tag: 'live',
      summary: 'Active streams by target: engine, donor, start time, buffered and committed frames (a manager sees its own targets, an admin all)',
      access: ['manager', 'admin'],
      responses: {
        200: {
          description: 'Active streams keyed by target id',
          schema: ACTIVE_STREAMS,
        },
      },
      handler: async ({ principal }, d) => {
        const targets: Record<string, unknown[]> = {};
        // One read per process per http.activeStreamsCacheMs, filtered per caller.
        for (const a of await d.live.sharedActive()) {
          if (principal.role !== 'admin' && a.owner !== principal.name) continue;
          const { target_id, owner: _owner, ...rest } = a;
          (targets[target_id] ??= []).push(rest);
        }
        return ok({ targets });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/active-cores',
      tag: 'live',
      summary: 'Open core sessions per engine, over all nodes',
      access: 'public',
      responses: { 200: { description: 'Counts', schema: ACTIVE_CORES } },
      handler: async (_, d) => {
        const engines = await d.live.coresByEngine();
        return ok({ engines, total: Object.values(engines).reduce((a, b) => a + b, 0) });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/nodes',
      tag: 'live',
      summary: 'Coordinator processes alive, with their session counts',
      access: ['admin'],
      responses: {
        200: {
          description: 'Nodes',
          schema: NODES,
        },
      },
      handler: async (_, d) => ok({ nodes: (await d.live.nodes()).sort((a, b) => a.node.localeCompare(b.node)) }),
    }),
  ];
}
