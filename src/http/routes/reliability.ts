/**
 * Reliability records and admin blocks (issue 12 §5): `GET /v1/reliability` shows a donor's
 * or a client address's record as every node counts it; `/v1/blocks` adds, lists and removes
 * blocks of a donor, an engine key or an address range. A change is announced on the bus so
 * every node reloads its block list and closes the blocked cores' sockets within a second.
 */
import { Type } from '@sinclair/typebox';
import { object, ok, str, type ApiRoute } from '../declared-routes';
import { AppError } from '../../errors';
import { ID_PARAMS, iso, route, type ApiDeps } from './common';
import { BLOCK, BLOCKS, BLOCK_KIND, RELIABILITY_RECORD } from '../api-schemas';
import type { Settings } from '../../config/settings';
import { BlockStore, type BlockDoc } from '../../store/blocks';
import { ReliabilityStore, type ReliabilityRecord } from '../../store/reliability';
import net from 'node:net';
import { addressKey } from '../../auth/address-key';
import { normalizeAddress } from '../client-address';
import { Blocklist } from '../../core/blocklist';

const KIND = BLOCK_KIND;
const RECORD = RELIABILITY_RECORD;

const blockView = (b: BlockDoc) => ({ id: b._id, kind: b.kind, value: b.value, reason: b.reason, created_at: iso(b.createdAt)!, created_by: b.createdBy });
const recordView = (r: ReliabilityRecord, windowS: number, block: BlockDoc | undefined) => ({
  kind: r.kind,
  id: r.id,
  window_s: windowS,
  assignments: r.assignments,
  commits: r.commits,
  stream_errors: r.stream_errors,
  protocol_errors: r.protocol_errors,
  error_rate: Math.min(1, (r.stream_errors + r.protocol_errors) / Math.max(1, r.assignments + r.protocol_errors)),
  sample: r.sample,
  judged_error_rate: r.errorRate,
  ...(r.coolingUntil ? { cooling_until: new Date(r.coolingUntil).toISOString() } : {}),
  ...(block ? { blocked_by: blockView(block) } : {}),
});

/** Tells every node to reload its blocks; a lost announcement must not look done. */
async function announce(d: ApiDeps): Promise<void> {
  if (!(await d.bus.publish('blocks.changed', {}))) {
    throw new AppError('unavailable', 'Stored, but Redis did not take the announcement; other nodes apply it within auth.cacheTtlS. Retry to apply it at once');
  }
}

/** The reliability and block routes. */
export function reliabilityRoutes(s: Settings): Array<ApiRoute<ApiDeps>> {
  return [
    route({
      method: 'GET',
      path: '/v1/reliability',
      tag: 'reliability',
      summary: 'The reliability record of a donor or a client address over reliability.windowS, with its cooling-off and any block',
      access: ['admin'],
      query: object({ donor: Type.Optional(str(64)), address: Type.Optional(str(64)) }),
      errors: { 400: 'Bad input (see the message), not exactly one of donor= and address=, or an address that is not an IP address' },
      responses: { 200: { description: 'The record (zeros when nothing was counted)', schema: RECORD } },
      handler: async ({ query }, d) => {
        if ((query.donor === undefined) === (query.address === undefined)) throw new AppError('bad_request', 'Give exactly one of donor= or address=');
        const store = new ReliabilityStore(d.redis, d.settings.redis.keyPrefix, d.settings.reliability);
        const blocks = new Blocklist(new BlockStore(d.db, d.settings.mongodb.opTimeoutMs));
        await blocks.reload();
        if (query.donor !== undefined) {
          const r = await store.read('donor', query.donor);
          return ok(recordView(r, s.reliability.windowS, blocks.match({ engine: '', keyId: '', donor: { name: query.donor, beta: false }, remote: '' })));
        }
        const address = normalizeAddress(query.address!);
        if (net.isIP(address) === 0) throw new AppError('bad_request', `"${query.address}" is not an IP address`);
        const r = await store.read('address', addressKey(address));
        return ok(recordView(r, s.reliability.windowS, blocks.matchAddress(address)));
      },
    }),
    route({
      method: 'POST',
      path: '/v1/blocks',
      tag: 'reliability',
      summary: 'Block a donor, an engine key (by id) or an address range (CIDR); their cores are disconnected on every node',
      access: ['admin'],
      body: object({ kind: KIND, value: str(64, { minLength: 1 }), reason: Type.Optional(Type.String({ maxLength: s.limits.maxDescriptionLength })) }),
      responses: { 201: { description: 'Blocked', schema: BLOCK }, 200: { description: 'Already blocked (the existing block)', schema: BLOCK } },
      errors: {
        400: 'Bad input (see the message), or an address value that is not an IP address or CIDR range',
        503: 'Storage unavailable, or stored but Redis did not take the announcement; retry',
      },
      handler: async ({ body, principal }, d) => {
        const { block, created } = await new BlockStore(d.db, d.settings.mongodb.opTimeoutMs).add(body.kind, body.value, body.reason ?? '', principal.name);
        await announce(d);
        d.log.info({ block: block._id, kind: block.kind, value: block.value, by: principal.name }, 'block added');
        return ok(blockView(block), created ? 201 : 200);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/blocks',
      tag: 'reliability',
      summary: 'List the blocks',
      access: ['admin'],
      responses: { 200: { description: 'Blocks, oldest first', schema: BLOCKS } },
      handler: async (_, d) => ok({ blocks: (await new BlockStore(d.db, d.settings.mongodb.opTimeoutMs).all()).map(blockView) }),
    }),
    route({
      method: 'DELETE',
      path: '/v1/blocks/:id',
      tag: 'reliability',
      summary: 'Remove a block',
      access: ['admin'],
      params: ID_PARAMS,
      responses: { 204: { description: 'Removed' } },
      errors: { 404: 'No such block', 503: 'Storage unavailable, or removed but Redis did not take the announcement; retry' },
      handler: async ({ params }, d) => {
        if (!(await new BlockStore(d.db, d.settings.mongodb.opTimeoutMs).remove(params.id))) throw new AppError('not_found', `No block ${params.id}`);
        await announce(d);
        d.log.info({ block: params.id }, 'block removed');
        return { status: 204 };
      },
    }),
  ];
}
