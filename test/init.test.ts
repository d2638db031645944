import t from 'tap';
import { createMongo } from '../src/store/mongo';
import { loadConfig } from '../src/config/settings';
import { hashToken } from '../src/auth/tokens';
import { runCli, stackOverrides, writeConfig } from './helpers/server';
import { stopStack } from '../test-support/stack';

t.teardown(stopStack);

t.test('init creates indexes and the first admin, then refuses without --force', async (t) => {
  const overrides = await stackOverrides();
  const conf = writeConfig(overrides);
  const first = runCli(['init', '--config', conf]);
  t.equal((await first.exited).code, 0, first.output());
  const token = /\n\s+([A-Za-z0-9_-]{43})\n/.exec(first.output())?.[1];
  t.ok(token, 'token printed once');
  t.match(first.output(), /Created admin "admin"/);

  const settings = loadConfig({ env: {}, overrides });
  const mongo = createMongo(settings);
  t.teardown(() => mongo.client.close());
  const user = await mongo.db.collection('users').findOne({ name: 'admin' });
  t.equal(user?.role, 'admin');
  t.equal(user?.tokenHash, hashToken(token!), 'stored as its SHA-256 hash');
  t.notOk(JSON.stringify(user).includes(token!), 'the token itself is not stored');
  const names = (await mongo.db.collection('users').listIndexes().toArray()).map((i) => i.name);
  t.ok(names.includes('name_unique') && names.includes('tokenHash_unique'), 'indexes');

  const again = runCli(['init', '--config', conf]);
  t.equal((await again.exited).code, 1);
  t.match(again.output(), /init refused: database ".*" already has 1 user\(s\).*Nothing was changed.*--force/s);
  t.equal(await mongo.db.collection('users').countDocuments(), 1, 'nothing changed');

  const forced = runCli(['init', '--config', conf, '--force', '--name', 'admin2']);
  t.equal((await forced.exited).code, 0);
  t.match(forced.output(), /WARNING: --force/);
  t.match(forced.output(), /already had 1 user\(s\); another admin was added/);
  t.equal(await mongo.db.collection('users').countDocuments(), 2);

  const dup = runCli(['init', '--config', conf, '--force', '--name', 'admin2']);
  t.equal((await dup.exited).code, 1);
  t.match(dup.output(), /a user named "admin2" already exists/);
});

t.test('init replaces the indexes of an earlier version (RETIRED_INDEXES): streams.target_frames and target_status by target_frames_id and target_status_id', async (t) => {
  const overrides = await stackOverrides();
  const settings = loadConfig({ env: {}, overrides });
  const mongo = createMongo(settings);
  t.teardown(() => mongo.client.close());
  await mongo.db.collection('streams').createIndex({ targetId: 1, frames: 1 }, { name: 'target_frames' });
  await mongo.db.collection('streams').createIndex({ targetId: 1, status: 1 }, { name: 'target_status' });

  const init = runCli(['init', '--config', writeConfig(overrides)]);
  t.equal((await init.exited).code, 0, init.output());
  t.match(init.output(), /created [^\n]*streams\.target_frames_id[^\n]*; dropped streams\.target_frames, streams\.target_status \(replaced\)/);
  const names = (await mongo.db.collection('streams').listIndexes().toArray()).map((i) => i.name as string);
  t.ok(names.includes('target_frames_id') && names.includes('target_status_id'), `the new indexes are there: ${names.join(', ')}`);
  t.notOk(names.includes('target_frames') || names.includes('target_status'), 'the retired ones are gone');
});
