import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AppError, CLOSES, ERRORS, errorBody, toAppError } from '../src/errors';

t.test('every catalogued error has a line in docs/errors.md', async (t) => {
  const doc = fs.readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'errors.md'), 'utf8');
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.ok(doc.includes(`| \`${code}\` | ${spec.status} | ${spec.doc} |`), code);
  }
});

t.test('errors carry code, status and body', async (t) => {
  const e = new AppError('rate_limited', 'slow down', { 'retry-after': '3' });
  t.equal(e.status, 429);
  t.same(JSON.parse(errorBody(e)), { error: { code: 'rate_limited', message: 'slow down' } });
  const wrapped = toAppError(new Error('boom'));
  t.equal(wrapped.code, 'internal');
  t.equal(wrapped.message, 'Internal server error', 'no internals leak');
  t.equal(toAppError(e), e);
});

t.test('retry-after: the catalog gives the default, a thrower may say otherwise', async (t) => {
  t.equal(new AppError('server_busy', 'full').retryAfterS, ERRORS.server_busy.retryAfterS, 'server_busy: from the catalog');
  t.equal(new AppError('server_busy', 'full', {}, 7).retryAfterS, 7, 'server_busy: as configured');
  t.equal(new AppError('bad_request', 'no').retryAfterS, undefined, 'errors that are not worth retrying carry none');
  const outage = Object.assign(new Error('Connection is closed.'), { name: 'Error' });
  t.equal(toAppError(outage).retryAfterS, ERRORS.unavailable.retryAfterS, 'a storage outage: unavailable with its retry-after');
});

t.test('every close of a core socket has a line in docs/errors.md, and no two share a reason', async (t) => {
  const doc = fs.readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'errors.md'), 'utf8');
  for (const [name, spec] of Object.entries(CLOSES)) {
    t.ok(doc.includes(`| ${spec.code} | \`${spec.reason}\` | ${spec.doc} |`), name);
    // A reason is sent in a close frame: at most 123 bytes (RFC 6455 §5.5).
    t.ok(Buffer.byteLength(spec.reason) <= 123, `${name}: its reason fits a close frame`);
  }
  t.equal(new Set(Object.values(CLOSES).map((c) => c.reason)).size, Object.keys(CLOSES).length);
});
