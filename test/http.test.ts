import t from 'tap';
import { AppError } from '../src/errors';
import { Router, json } from '../src/http/router';

t.test('router matches exact and parameter routes', async (t) => {
  const r = new Router(100);
  const h = () => json(200, {});
  r.add('GET', '/v1/streams/:id', h).add('POST', '/v1/streams/:id/stop', h, { bodyLimit: 5 }).add('GET', '/', h);
  t.same(r.match('GET', '/v1/streams/a%20b').params, { id: 'a b' });
  t.equal(r.match('POST', '/v1/streams/x/stop').bodyLimit, 5);
  t.equal(r.match('GET', '/v1/streams/x').bodyLimit, 100);
  t.equal(r.match('HEAD', '/').route, '/', 'HEAD falls back to GET');
  t.equal(r.maxBodyLimit(), 100);
});

t.test('router errors', async (t) => {
  const r = new Router(100);
  r.add('GET', '/a/:id', () => json(200, {}));
  t.throws(() => r.match('GET', '/b'), { code: 'not_found', status: 404 });
  t.throws(() => r.match('GET', '/a/'), { code: 'not_found' }, 'empty parameter');
  t.throws(() => r.match('DELETE', '/a/1'), { code: 'method_not_allowed', status: 405 });
  try {
    r.match('DELETE', '/a/1');
  } catch (err) {
    t.equal((err as AppError).headers.allow, 'GET');
  }
  t.throws(() => r.match('GET', '/a/%E0%A4%A'), { code: 'bad_request' });
  t.throws(() => r.add('GET', '/a/:id', () => json(200, {})), /duplicate/);
});
