/**
 * The assignment message is written without JSON.stringify over its files (src/core/
 * assignment-message.ts): it must still be exactly the JSON of the same object, whatever the
 * file names and option values hold.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { assignmentEncoder, newBuffer, toBase64File, type AssignmentFile } from '../src/core/assignment-message';

t.test('parses back to the message JSON.stringify would have sent', async (t) => {
  const fields = { type: 'assignment', id: 7, stream_id: 's1', target_id: 't1', frames: 12, options: { temp: 300, label: 'é "q" \\ \u2028 ✓', nested: { a: [1, null, true] } }, resume_token: 's1.abc' };
  // Sizes around the encoder's 48 KiB slices and every remainder mod 3; one file a view into a larger buffer.
  const backing = crypto.randomBytes(100_000);
  const files: Record<string, Uint8Array> = {
    'state.xml': crypto.randomBytes(200 * 1024 + 1),
    'sys "x" é.bin': crypto.randomBytes(3),
    'empty': Buffer.alloc(0),
    'slice.bin': crypto.randomBytes(48 * 1024),
    'slice+1.bin': crypto.randomBytes(48 * 1024 + 1),
    'slice+2.bin': new Uint8Array(crypto.randomBytes(96 * 1024 + 2)),
    'view.bin': backing.subarray(1_001, 60_002),
  };
  const bytes = assignmentEncoder(fields, files)(newBuffer);
  t.ok(Buffer.isBuffer(bytes));
  const base64 = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  t.same(JSON.parse(bytes.toString('utf8')), { ...fields, files: base64 });
  t.equal(bytes.toString('utf8'), JSON.stringify({ ...fields, files: base64 }), 'byte for byte what JSON.stringify writes');
});

t.test('files already in base64 (the seed cache) go in as they are, beside raw ones', async (t) => {
  const state = crypto.randomBytes(200 * 1024 + 2);
  const system = crypto.randomBytes(2048);
  const encoded = toBase64File(state);
  t.equal(encoded.ascii.toString('latin1'), state.toString('base64'), 'toBase64File writes the base64');
  const files: Record<string, AssignmentFile> = { 'state.xml': encoded, 'system.xml': system };
  const fields = { type: 'assignment', id: 3 };
  const bytes = assignmentEncoder(fields, files)(newBuffer);
  t.equal(bytes.toString('utf8'), JSON.stringify({ ...fields, files: { 'state.xml': state.toString('base64'), 'system.xml': system.toString('base64') } }));
});

t.test('no files: an empty files object', async (t) => {
  t.same(JSON.parse(assignmentEncoder({ type: 'assignment', id: 1 }, {})(newBuffer).toString('utf8')), { type: 'assignment', id: 1, files: {} });
});

t.test('written into a buffer the caller gives, and reused: each message whole, the rest of the buffer not sent', async (t) => {
  const shared = Buffer.alloc(1024 * 1024, 0x7b);
  const asked: number[] = [];
  const into = (bytes: number): Buffer => {
    asked.push(bytes);
    return shared;
  };
  for (const size of [300_000, 1_000, 120_001]) {
    const files = { 'state.xml': crypto.randomBytes(size) };
    const fields = { type: 'assignment', id: size };
    const bytes = assignmentEncoder(fields, files)(into);
    t.equal(bytes.buffer, shared.buffer, 'written into the given buffer');
    t.equal(bytes.length, asked.at(-1), 'exactly the size it asked for');
    t.equal(bytes.toString('utf8'), JSON.stringify({ ...fields, files: { 'state.xml': files['state.xml'].toString('base64') } }));
  }
});

t.test('what can fail fails when the encoder is made, not when a transport runs it', async (t) => {
  t.throws(() => assignmentEncoder({ type: 'assignment', id: 1, options: { n: 1n } }, { 'a.bin': Buffer.from('x') }), TypeError, 'a BigInt option');
  const encode = assignmentEncoder({ type: 'assignment', id: 2 }, { 'a.bin': Buffer.from('xyz') });
  t.equal(encode(newBuffer).toString('utf8'), '{"type":"assignment","id":2,"files":{"a.bin":"eHl6"}}');
});
