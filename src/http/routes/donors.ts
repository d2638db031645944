/**
 * Donors: registration (rate-limited per client address, closable by config), the
 * leaderboard and one donor's statistics. Totals are kept on the donor document with
 * `$inc` as fragments are recorded; per-target figures live in `donor_targets`.
 */
import { object, ok, type ApiRoute } from '../declared-routes';
import { AppError } from '../../errors';
import { hashToken, newToken } from '../../auth/tokens';
import { ID, NAME, NAME_PARAMS, TIME, iso, unique, type ApiDeps } from './common';
import type { DonorDoc } from '../../model';

const STATS = { frames: { type: 'integer' }, core_seconds: { type: 'number' } };
const DONOR = object({ name: NAME, ...STATS, created_at: TIME }, ['name', 'frames', 'core_seconds']);

/** Counts a registration from `address` in the current hour window; throws `rate_limited` past the limit. */
async function rateLimit(d: ApiDeps, address: string): Promise<void> {
  const hour = Math.floor(Date.now() / 3_600_000);
  const key = `${d.settings.redis.keyPrefix}rl:donors:${address}:${hour}`;
  const count = await d.redis.incr(key);
  if (count === 1) await d.redis.expire(key, 3600);
  if (count > d.settings.donors.registrationsPerHour) {
    const retry = 3600 - Math.floor((Date.now() / 1000) % 3600);
    throw new AppError('rate_limited', `At most ${d.settings.donors.registrationsPerHour} donor registrations per hour from one address`, { 'retry-after': String(retry) });
  }
}

/** The donor routes. */
export function donorRoutes(d: ApiDeps): ApiRoute[] {
  const donors = d.db.collection<DonorDoc>('donors');
  return [
    {
      method: 'POST',
      path: '/v1/donors',
      tag: 'donors',
      summary: 'Register a donor; the token is returned once (rate-limited per address; admins only when registration is closed)',
      access: 'public',
      body: object({ name: NAME, beta: { type: 'boolean' } }, ['name']),
      errors: { 403: 'Registration is closed (donors.openRegistration) and the caller is not an admin', 409: 'The name is taken', 429: 'Too many registrations from this address (donors.registrationsPerHour); see Retry-After' },
      responses: { 201: { description: 'Registered', schema: object({ name: NAME, token: { type: 'string' } }, ['name', 'token']) } },
      handler: async ({ req, principal, body }) => {
        const isAdmin = principal?.role === 'admin';
        if (!d.settings.donors.openRegistration && !isAdmin) throw new AppError('forbidden', 'Donor registration is closed; ask an admin');
        if (!isAdmin) await rateLimit(d, req.clientAddress);
        const token = newToken();
        const b = body as { name: string; beta?: boolean };
        await unique(`A donor named "${b.name}"`, () =>
          donors.insertOne({ name: b.name, beta: b.beta === true, tokenHash: hashToken(token), frames: 0, coreSeconds: 0, createdAt: new Date() }),
        );
        return ok({ name: b.name, token }, 201);
      },
    },
    {
      method: 'GET',
      path: '/v1/donors',
      tag: 'donors',
      summary: 'Leaderboard: donors by committed frames',
      access: 'public',
      query: object({ top: { type: 'integer', minimum: 1, maximum: d.settings.donors.leaderboardMax, default: 100 } }),
      responses: { 200: { description: 'Top donors', schema: object({ donors: { type: 'array', items: DONOR } }, ['donors']) } },
      handler: async ({ query }: { query: { top: number } }) => {
        const top = await donors.find({}, { sort: { frames: -1, name: 1 }, limit: query.top, projection: { tokenHash: 0 } }).toArray();
        return ok({ donors: top.map((x) => ({ name: x.name, frames: x.frames, core_seconds: x.coreSeconds, created_at: iso(x.createdAt) })) });
      },
    },
    {
      method: 'GET',
      path: '/v1/donors/:name',
      tag: 'donors',
      summary: "One donor's frames and core-seconds, in total and per target",
      access: 'public',
      params: NAME_PARAMS,
      responses: {
        200: {
          description: 'The donor',
          schema: object({ name: NAME, ...STATS, created_at: TIME, targets: { type: 'array', items: object({ target_id: ID, ...STATS }, ['target_id', 'frames', 'core_seconds']) } }, ['name', 'frames', 'core_seconds', 'targets']),
        },
      },
      handler: async ({ params }: { params: { name: string } }) => {
        const x = await donors.findOne({ name: params.name }, { projection: { tokenHash: 0 } });
        if (!x) throw new AppError('not_found', `No donor named "${params.name}"`);
        const per = await d.db.collection('donor_targets').find({ donor: params.name }, { sort: { frames: -1 }, limit: d.settings.limits.maxListItems }).toArray();
        return ok({
          name: x.name,
          frames: x.frames,
          core_seconds: x.coreSeconds,
          created_at: iso(x.createdAt),
          targets: per.map((p) => ({ target_id: p.targetId as string, frames: p.frames as number, core_seconds: p.coreSeconds as number })),
        });
      },
    },
  ];
}
