/**
 * The assignment message is written without JSON.stringify over its files (src/core/
 * assignment-message.ts): it must still be exactly the JSON of the same object, whatever the
 * file names and option values hold.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { encodeAssignment } from '../src/core/assignment-message';

t.test('parses back to the message JSON.stringify would have sent', async (t) => {
  const fields = { type: 'assignment', id: 7, stream_id: 's1', target_id: 't1', frames: 12, options: { temp: 300, label: 'é "q" \\ \u2028 ✓', nested: { a: [1, null, true] } }, resume_token: 's1.abc' };
  const files = {
    'state.xml': crypto.randomBytes(200 * 1024 + 1).toString('base64'),
    'sys "x" é.bin': crypto.randomBytes(3).toString('base64'),
    'empty': '',
  };
  const bytes = encodeAssignment(fields, files);
  t.ok(Buffer.isBuffer(bytes));
  t.same(JSON.parse(bytes.toString('utf8')), { ...fields, files });
  t.equal(bytes.toString('utf8').length > 200 * 1024, true);
});

t.test('no files: an empty files object', async (t) => {
  t.same(JSON.parse(encodeAssignment({ type: 'assignment', id: 1 }, {}).toString('utf8')), { type: 'assignment', id: 1, files: {} });
});
