/**
 * Live views over the shared state in Redis: active streams, open core sessions per
 * engine, and the coordinator processes alive.
 */
import { ok, type ApiRoute } from '../declared-routes';
import { mayOwn, route, type ApiDeps } from './common';
import { ACTIVE_CORES, ACTIVE_STREAMS, NODES } from '../api-schemas';

/** The live routes. */
export function liveRoutes(): Array<ApiRoute<ApiDeps>> {
  return [
    route({
      method: 'GET',
      path: '/v1/active-streams',
      tag: 'live',
      summary: 'Active streams by target: engine, donor, start time, buffered and committed frames; and each target\'s committed frames and commits so far, for rates (a manager sees its own targets, an admin all)',
      access: ['manager', 'admin'],
      responses: {
        200: {
          description: 'Active streams keyed by target id; `progress`: committed frames and commits of each target so far, keyed by target id (counters that only grow while Redis keeps them: a rate is the difference between two reads, over the difference of their `progress_at`, when the counts were read)',
          schema: ACTIVE_STREAMS,
        },
      },
      handler: async ({ principal }, d) => {
        const targets: Record<string, unknown[]> = {};
        const progress: Record<string, { frames: number; commits: number }> = {};
        const mine = (owner: string): boolean => mayOwn(principal, owner);
        // One read of each per process per http.activeStreamsCacheMs, filtered per caller.
        const [active, counted] = await Promise.all([d.live.sharedActive(), d.progress.sharedAll()]);
        for (const a of active) {
          if (!mine(a.owner)) continue;
          const { target_id, owner: _owner, ...rest } = a;
          (targets[target_id] ??= []).push(rest);
        }
        for (const p of counted.targets) if (mine(p.owner)) progress[p.target_id] = { frames: p.frames, commits: p.commits };
        return ok({ targets, progress, progress_at: new Date(counted.at).toISOString() });
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
