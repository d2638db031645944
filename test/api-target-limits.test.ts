/**
 * Targets per manager are bounded (limits.maxTargetsPerManager): every process keeps every
 * target with its options in memory for assignments, so one manager must not be able to
 * grow that without end.
 */
import t from 'tap';
import { useCoreFixture } from './helpers/core';

const fixture = useCoreFixture({ 'limits.maxTargetsPerManager': 3 });

t.test('a manager past limits.maxTargetsPerManager gets 409; others, and the same after a delete, do not', async (t) => {
  const f = fixture();
  const ids = [await f.target(), await f.target(), await f.target()];
  const r = await f.get('/v1/targets', f.manager);
  t.equal((JSON.parse(r.body.toString()) as { targets: unknown[] }).targets.length, 3);
  const refused = await f.api<{ error: { code: string; message: string } }>('POST', '/v1/targets', f.manager, { engines: ['openmm'] }, 409);
  t.equal(refused.error.code, 'conflict');
  t.match(refused.error.message, /limits\.maxTargetsPerManager/);

  const other = (await f.api<{ token: string }>('POST', '/v1/users', f.admin, { name: `other-${Date.now()}`, role: 'manager' }, 201)).token;
  t.ok(await f.target({ engines: ['openmm'] }, other), 'another manager has its own count');

  await f.api('DELETE', `/v1/targets/${ids[0]}`, f.manager, undefined, 204);
  t.ok(await f.target(), 'a deleted target makes room');
});
