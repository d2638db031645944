/**
 * The provisioned FerretDB build answers some filters in SQL on the strength of facts about
 * the coordinator's documents (src/provision/ferretdb-patches.ts, patches 4–6): a field of
 * `scScalarFields` is a string or an ObjectId in every collection, never an array (MongoDB's
 * equality also matches an array element, the SQL one does not); a field of `SCIntFields` is
 * an integer in its collection (SQLite sums it). Those lists live in Go, apart from the code
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

/** `SCIntFields`: collection → field names. */
function intFields(source: string): Record<string, string[]> {
  const body = /var SCIntFields = map\[string\]map\[string\]bool\{(.*)\}\n/.exec(source)?.[1];
  if (body === undefined) throw new Error(`SCIntFields (per collection) not found in ${GO_INT}`);
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
  const ints = intFields(fs.readFileSync(GO_INT, 'utf8'));
  t.ok(scalars.length >= 10, `scScalarFields read from the Go source: ${scalars.join(', ')}`);
  t.same(ints, { streams: ['frames', 'errorCount'] }, 'SCIntFields read from the Go source');

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
  for (const { name: coll } of await db.listCollections({}, { nameOnly: true }).toArray()) {
    for (const doc of await db.collection<Document>(coll).find({}).toArray()) {
      for (const [field, value] of Object.entries(doc)) {
        if (scalars.includes(field)) {
          (seen.get(field) ?? seen.set(field, new Set()).get(field)!).add(coll);
          if (typeof value !== 'string' && !(value instanceof ObjectId)) wrong.push(`${coll}.${field} = ${JSON.stringify(value)}`);
        }
        if (ints[coll]?.includes(field) && !Number.isInteger(value)) wrong.push(`${coll}.${field} = ${JSON.stringify(value)} (not an integer)`);
      }
    }
  }
  t.same(wrong, [], 'every listed field holds what its patch assumes');
  const unseen = scalars.filter((s) => !seen.has(s));
  t.same(unseen, [], `every scalar field was met in the store (${[...seen].map(([k, v]) => `${k}: ${[...v].join('/')}`).join('; ')})`);

  const partitions = await db.collection('partitions').countDocuments({ streamId: { $in: streams } });
  t.ok(partitions >= 4, `partitions written (${partitions}); their \`frames\` is a file list, outside SCIntFields`);
  const [sum] = await db.collection('partitions').aggregate<{ frames: unknown }>([{ $match: { streamId: streams[0] } }, { $group: { _id: null, frames: { $sum: '$frames' } } }]).toArray();
  t.same(sum, { _id: null, frames: 0 }, "MongoDB's $sum of a file list is 0, and no SQL sum answers it");
});
