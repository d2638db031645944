/**
 * Donors: registration (rate-limited per client address, closable by config), the
 * leaderboard and one donor's statistics. Totals are kept on the donor document with
 * `$inc` as fragments are recorded; per-target figures live in `donor_targets`.
 */
import { Type } from '@sinclair/typebox';
import { object, ok, type ApiRoute } from '../declared-routes';
import { AppError } from '../../errors';
import { hashToken, newToken } from '../../auth/tokens';
import { ID, NAME, NAME_PARAMS, TIME, iso, route, unique, type ApiDeps } from './common';
import { DONORS, DONOR_STATS, type Donor } from '../api-schemas';
import { visibleIds } from './targets';
import type { Db } from 'mongodb';
import type { Settings } from '../../config/settings';
import { addressKey } from '../../auth/address-key';
import { donorByName, insertDonor, targetsOfDonor, topDonors } from '../../store/donors';
import { HourWindows } from '../../store/rate-windows';

const STATS = DONOR_STATS;

/** Core-seconds to the millisecond: totals are sums of many fractions, which leave float noise (48.508999999999986). */
function seconds(total: number): number {
  return Math.round(total * 1000) / 1000;
}

/**
 * Counts a registration from `address` (IPv4, or its IPv6 /64) and one in all, in the current
 * hour window (store/rate-windows.ts); throws `rate_limited` past donors.registrationsPerHour
 * or donors.registrationsPerHourTotal (an IPv6 /48 alone holds 65,536 /64s, so the
 * per-address limit alone does not bound the donors collection).
 */
async function rateLimit(d: ApiDeps, address: string): Promise<void> {
  const { registrationsPerHour, registrationsPerHourTotal } = d.settings.donors;
  const window = new HourWindows(d.redis, d.settings.redis.keyPrefix, 'donors').current();
  const who = addressKey(address);
  if ((await window.count(who)) > registrationsPerHour) {
    throw new AppError('rate_limited', `At most ${registrationsPerHour} donor registrations per hour from one address`, {}, window.secondsLeft);
  }
  if ((await window.count('*')) > registrationsPerHourTotal) {
    // Not this address's doing: give its attempt back.
    await window.giveBack(who);
    throw new AppError('rate_limited', `At most ${registrationsPerHourTotal} donor registrations per hour in all; try again later`, {}, window.secondsLeft);
  }
}

/**
 * The top `max` donors by committed frames (ties by name): what every leaderboard request is
 * a prefix of, read once per http.leaderboardCacheMs (ApiDeps.leaderboard).
 */
export async function leaderboardRows(db: Db, max: number): Promise<Donor[]> {
  const top = await topDonors(db, max);
  return top.map((x) => ({ name: x.name, frames: x.frames, core_seconds: seconds(x.coreSeconds), created_at: iso(x.createdAt) }));
}

/** The donor routes. */
export function donorRoutes(s: Settings): Array<ApiRoute<ApiDeps>> {
  return [
    route({
      method: 'POST',
      path: '/v1/donors',
      tag: 'donors',
      summary: 'Register a donor; the token is returned once (rate-limited per address; admins only when registration is closed)',
      access: 'public',
      body: object({ name: NAME, beta: Type.Optional(Type.Boolean()) }),
      errors: { 403: 'Registration is closed (donors.openRegistration) and the caller is not an admin', 409: 'The name is taken', 429: "Too many registrations from this address (donors.registrationsPerHour) or in all (donors.registrationsPerHourTotal), or failed authentications (auth.failuresPerMinute), or the node's memory budget for request bodies is exhausted; see Retry-After" },
      responses: { 201: { description: 'Registered', schema: object({ name: NAME, token: Type.String() }) } },
      handler: async ({ req, principal, body }, d) => {
        const isAdmin = principal?.role === 'admin';
        if (!d.settings.donors.openRegistration && !isAdmin) throw new AppError('forbidden', 'Donor registration is closed; ask an admin');
        if (!isAdmin) await rateLimit(d, req.clientAddress);
        const token = newToken();
        await unique(`A donor named "${body.name}"`, () =>
          insertDonor(d.db, { name: body.name, beta: body.beta === true, tokenHash: hashToken(token), frames: 0, coreSeconds: 0, createdAt: new Date() }),
        );
        return ok({ name: body.name, token }, 201);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/donors',
      tag: 'donors',
      summary: 'Leaderboard: donors by committed frames (read at most once per http.leaderboardCacheMs per process)',
      access: 'public',
      // `default` fills `top` in before the handler runs (the query validator applies defaults).
      query: object({ top: Type.Optional(Type.Integer({ minimum: 1, maximum: s.donors.leaderboardMax, default: Math.min(100, s.donors.leaderboardMax) })) }),
      responses: { 200: { description: 'Top donors', schema: DONORS } },
      // Anyone may ask, as often as they like: every answer is a prefix of one shared read.
      handler: async ({ query }, d) => ok({ donors: (await d.leaderboard.get()).slice(0, query.top) }),
    }),
    route({
      method: 'GET',
      path: '/v1/donors/:name',
      tag: 'donors',
      summary: "One donor's frames and core-seconds, in total and per target the caller may see (public targets; a manager's own; all for an admin)",
      access: 'public',
      params: NAME_PARAMS,
      errors: { 404: 'No such donor' },
      responses: {
        200: {
          description: 'The donor',
          schema: object({ name: NAME, ...STATS, created_at: Type.Optional(TIME), targets: Type.Array(object({ target_id: ID, ...STATS })) }),
        },
      },
      handler: async ({ params, principal }, d) => {
        const x = await donorByName(d.db, params.name);
        if (!x) throw new AppError('not_found', `No donor named "${params.name}"`);
        const all = await targetsOfDonor(d.db, params.name, d.settings.limits.maxListItems);
        // A private target's id is what lets a core ask for it: list only the targets the
        // caller may see (public ones; a manager's own; all for an admin).
        const visible = await visibleIds(d, [...new Set(all.map((p) => p.targetId))], principal);
        const per = all.filter((p) => visible.has(p.targetId));
        return ok({
          name: x.name,
          frames: x.frames,
          core_seconds: seconds(x.coreSeconds),
          created_at: iso(x.createdAt),
          targets: per.map((p) => ({ target_id: p.targetId, frames: p.frames, core_seconds: seconds(p.coreSeconds) })),
        });
      },
    }),
  ];
}
