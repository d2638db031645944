/**
 * The leaderboard (GET /v1/donors), which anyone may ask: every answer is a prefix of one
 * read per process per http.leaderboardCacheMs, so a flood of requests, whatever their `top`,
 * costs the store one sorted read of all donors per interval rather than one per request.
 */
import t from 'tap';
import { commandsDuring, useCoreFixture } from './helpers/core';

const fixture = useCoreFixture({ 'http.leaderboardCacheMs': 60_000, 'donors.leaderboardMax': 50 }, { monitored: true });

t.test('a flood of leaderboard requests, of any size, costs one read', async (t) => {
  const f = fixture();
  const names: string[] = [];
  for (let i = 0; i < 5; i++) names.push((await f.api<{ name: string }>('POST', '/v1/donors', undefined, { name: `lb-${i}-${Date.now()}` }, 201)).name);
  const donors = f.ts.server.storage.mongo.db.collection('donors');
  for (const [i, name] of names.entries()) await donors.updateOne({ name }, { $set: { frames: 1_000_000 + i } });

  const board = (top: number): Promise<{ donors: Array<{ name: string; frames: number }> }> => f.api('GET', `/v1/donors?top=${top}`, undefined);
  let answers: Array<{ donors: Array<{ name: string }> }> = [];
  const reads = (await commandsDuring(f.ts.server.storage.mongo.client, async () => {
    answers = await Promise.all(Array.from({ length: 60 }, (_, i) => board((i % 5) + 1)));
  })).filter((e) => e.commandName === 'find' && (e.command as { find?: string }).find === 'donors');
  t.equal(reads.length, 1, '60 requests, one read of the donors');
  t.same(answers[4]!.donors.map((d) => d.name), [...names].reverse(), 'top 5, by frames');
  t.same(answers[1]!.donors.map((d) => d.name), [names[4], names[3]], 'top 2 is its prefix');
  t.ok((await f.api<{ donors: unknown[] }>('GET', '/v1/donors', undefined)).donors.length >= 5, 'no `top`: the default, held to donors.leaderboardMax (50 here)');

  // Within the interval the board does not move: credit shows at the next read.
  await donors.updateOne({ name: names[0] }, { $set: { frames: 9_000_000 } });
  t.equal((await board(1)).donors[0]!.name, names[4], 'kept for http.leaderboardCacheMs');
});
