/**
 * The provisioned FerretDB build answers some filters in SQL on the strength of facts about
 * the coordinator's documents (src/provision/ferretdb-patches.ts, patches 4–6, 11 and 12): a
 * field of `scScalarFields` is a string or an ObjectId in every collection, never an array
 * (MongoDB's equality also matches an array element, the SQL one does not); a field of
 * `SCIntFields` is an integer in its collection (SQLite sums it and sorts by it), one of
 * `SCDateFields` a date (sorted as its milliseconds), one of `SCWordFields` a word of
 * [0-9A-Za-z_.:~-] (sorted as its JSON text). Those lists live in Go, apart from the code
 * that writes the documents, so this test reads them from the Go source and checks them
 * against every document a realistic session leaves in the store: a target with options,
 * streams with seed files, a core's frames and commits (one file large enough for GridFS),
 * a stop with an error, a donor's credit and a block.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ObjectId, type Document } from 'mongodb';
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { stopStack } from '../test-support/stack';

const GO = path.resolve(__dirname, '..', '..', 'src', 'provision', 'ferretdb-go', 'internal', 'backends', 'sqlite', 'sc_narrow.go');
const GO_INT = path.resolve(GO, '..', 'metadata', 'sc_index.go');

/** The keys of a Go map literal `var <name> = map[...]...{...}` (string keys only). */
function goMapLiteral(source: string, name: string): string {
  const m = new RegExp(`var ${name} = map\\[[^{]*\\{([\\s\\S]*?)\\n\\}`).exec(source);
  if (!m) throw new Error(`${name} not found in ${GO}`);
  return m[1]!;
}

/** `scScalarFields`: field names. */
function scalarFields(source: string): string[] {
  return [...goMapLiteral(source, 'scScalarFields').matchAll(/"([^"]+)":\s*true/g)].map((m) => m[1]!);
}

/** `SCIntFields`, `SCDateFields` or `SCWordFields`: collection → field names. */
function perCollection(source: string, name: string): Record<string, string[]> {
  const body = new RegExp(`var ${name} = map\\[string\\]map\\[string\\]bool\\{(.*)\\}\\n`).exec(source)?.[1];
  if (body === undefined) throw new Error(`${name} (per collection) not found in ${GO_INT}`);
  const out: Record<string, string[]> = {};
  for (const m of body.matchAll(/"([^"]+)":\s*\{([^}]*)\}/g)) out[m[1]!] = [...m[2]!.matchAll(/"([^"]+)":\s*true/g)].map((x) => x[1]!);
  return out;
}

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'storage.inlineMaxBytes': 64 * 1024 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

t.test('the field lists of the FerretDB patches hold for every document the coordinator writes', async (t) => {
  const source = fs.readFileSync(GO, 'utf8');
  const scalars = scalarFields(source);
  const perColl = fs.readFileSync(GO_INT, 'utf8');
  const ints = perCollection(perColl, 'SCIntFields');
  const dates = perCollection(perColl, 'SCDateFields');
  const words = perCollection(perColl, 'SCWordFields');
  t.ok(scalars.length >= 10, `scScalarFields read from the Go source: ${scalars.join(', ')}`);
  t.same(ints, { streams: ['frames', 'errorCount'], donors: ['frames'] }, 'SCIntFields read from the Go source');
  t.same(dates, { streams: ['createdAt'] }, 'SCDateFields read from the Go source');
  t.same(words, { streams: ['status'], donors: ['name'] }, 'SCWordFields read from the Go source');

  const target = await f.target({ options: { temperature: 300, name: 'a target', tags: ['x'] } });
  const streams = [await f.stream(target, crypto.randomBytes(200 * 1024)), await f.stream(target)];
  const core = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca: f.ts.ca });
  t.teardown(() => core.close());
  for (let round = 0; round < 2; round++) {
    t.match(await core.request({ type: 'assign', target_id: target }), { type: 'assignment' });
    t.match(await core.frame(1, { frames: 3 }), { type: 'ack' });
    t.match(await core.frame(2, { frames: 2 }), { type: 'ack' });
    t.match(await core.checkpoint(3, [{ name: 'state.xml', bytes: crypto.randomBytes(100 * 1024) }, { name: 'notes.txt', bytes: Buffer.from('small') }]), { type: 'committed', frames: 5 });
    t.match(await core.frame(4, { frames: 1 }), { type: 'ack' });
    t.match(await core.checkpoint(5), { type: 'committed' });
    t.match(await core.request({ type: 'stop', error: 'the integrator blew up' }), { type: 'stopped' });
  }
  await f.api('POST', '/v1/blocks', f.admin, { kind: 'address', value: '203.0.113.0/24', reason: 'test' }, 201);
  await f.api('GET', `/v1/targets/${target}`, f.manager);
  t.equal(streams.length, 2);

  const db = f.ts.server.storage.mongo.db;
  const seen = new Map<string, Set<string>>();
  const wrong: string[] = [];
  const met = new Set<string>();
  for (const { name: coll } of await db.listCollections({}, { nameOnly: true }).toArray()) {
    for (const doc of await db.collection<Document>(coll).find({}).toArray()) {
      for (const [field, value] of Object.entries(doc)) {
        if (scalars.includes(field)) {
          (seen.get(field) ?? seen.set(field, new Set()).get(field)!).add(coll);
          if (typeof value !== 'string' && !(value instanceof ObjectId)) wrong.push(`${coll}.${field} = ${JSON.stringify(value)}`);
        }
        if (ints[coll]?.includes(field) || dates[coll]?.includes(field) || words[coll]?.includes(field)) met.add(`${coll}.${field}`);
        if (ints[coll]?.includes(field) && !Number.isInteger(value)) wrong.push(`${coll}.${field} = ${JSON.stringify(value)} (not an integer)`);
        if (dates[coll]?.includes(field) && !(value instanceof Date)) wrong.push(`${coll}.${field} = ${JSON.stringify(value)} (not a date)`);
        if (words[coll]?.includes(field) && !(typeof value === 'string' && /^[0-9A-Za-z_.:~-]+$/.test(value))) wrong.push(`${coll}.${field} = ${JSON.stringify(value)} (not a word)`);
      }
    }
  }
  t.same(wrong, [], 'every listed field holds what its patch assumes');
  const listed = [ints, dates, words].flatMap((m) => Object.entries(m).flatMap(([coll, fields]) => fields.map((field) => `${coll}.${field}`)));
  t.same(listed.filter((f) => !met.has(f)), [], `every integer, date and word field was met in the store (${[...met].join(', ')})`);
  const unseen = scalars.filter((s) => !seen.has(s));
  t.same(unseen, [], `every scalar field was met in the store (${[...seen].map(([k, v]) => `${k}: ${[...v].join('/')}`).join('; ')})`);

  const partitions = await db.collection('partitions').countDocuments({ streamId: { $in: streams } });
  t.ok(partitions >= 4, `partitions written (${partitions}); their \`frames\` is a file list, outside SCIntFields`);
  const [sum] = await db.collection('partitions').aggregate<{ frames: unknown }>([{ $match: { streamId: streams[0] } }, { $group: { _id: null, frames: { $sum: '$frames' } } }]).toArray();
  t.same(sum, { _id: null, frames: 0 }, "MongoDB's $sum of a file list is 0, and no SQL sum answers it");
});
