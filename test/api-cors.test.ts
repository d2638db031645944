/**
 * CORS for browser dashboards: allowed origins get Access-Control headers on ordinary
 * responses (errors included) and on preflights; other origins get none; "*" allows any.
 */
import t, { type Test } from 'tap';
import { startApiServer, type ApiServer } from './helpers/api';
import { request, type Response } from './helpers/server';
import { stopStack } from '../test-support/stack';

const DASH = 'https://dash.example.org';

let listed: ApiServer;
let any: ApiServer;

t.before(async () => {
  [listed, any] = await Promise.all([
    startApiServer({ 'cors.allowedOrigins': [DASH], 'redis.keyPrefix': 'cors1:' }),
    startApiServer({ 'cors.allowedOrigins': ['*'], 'redis.keyPrefix': 'cors2:' }),
  ]);
});
t.teardown(async () => {
  await listed?.close();
  await any?.close();
  await stopStack();
});

function send(s: ApiServer, method: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return request(`${s.ts.url}${path}`, { method, headers, ca: s.ts.ca });
}

function preflight(s: ApiServer, path: string, origin: string, method = 'POST'): Promise<Response> {
  return send(s, 'OPTIONS', path, { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization, content-type' });
}

const CORS_HEADERS = ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-expose-headers', 'access-control-max-age', 'access-control-allow-credentials'];

/** The values of a header that may have been sent more than once (Node joins them with ", "). */
function values(res: Response, name: string): string[] {
  const v = res.headers[name];
  return v === undefined ? [] : String(v).split(/,\s*/);
}

/** Every Access-Control-Allow-Origin value is `origin` (see the todo test below about duplicates). */
function allowsOrigin(t: Test, res: Response, origin: string, what: string): void {
  const v = values(res, 'access-control-allow-origin');
  t.ok(v.length > 0 && v.every((x) => x === origin), `${what}: Access-Control-Allow-Origin ${origin} (got ${JSON.stringify(res.headers['access-control-allow-origin'])})`);
}

function noCors(t: Test, res: Response, what: string): void {
  for (const h of CORS_HEADERS) t.notOk(h in res.headers, `${what}: no ${h}`);
}

t.test('an allowed origin gets the headers on ordinary responses', async (t) => {
  const res = await send(listed, 'GET', '/v1/targets', { origin: DASH });
  t.equal(res.status, 200);
  t.equal(res.headers['access-control-allow-origin'], DASH);
  t.match(res.headers.vary, /\bOrigin\b/i);
  t.match(res.headers['access-control-expose-headers'], /retry-after/);
  t.match(res.headers['access-control-expose-headers'], /x-request-id/);
  t.notOk('access-control-allow-credentials' in res.headers, 'no credentials mode (tokens travel in a header)');

  const authed = await send(listed, 'GET', '/v1/me', { origin: DASH, authorization: `Bearer ${listed.admin.token}` });
  t.equal(authed.status, 200);
  t.equal(authed.headers['access-control-allow-origin'], DASH, 'with a token too');

  const err = await send(listed, 'GET', '/v1/me', { origin: DASH });
  t.equal(err.status, 401);
  t.equal(err.headers['access-control-allow-origin'], DASH, 'errors carry the headers, so the dashboard can read them');
  const nf = await send(listed, 'GET', '/v1/nope', { origin: DASH });
  t.equal(nf.status, 404);
  t.equal(nf.headers['access-control-allow-origin'], DASH);

  const upper = await send(listed, 'GET', '/v1/targets', { origin: 'https://DASH.example.org' });
  t.equal(upper.headers['access-control-allow-origin'], 'https://DASH.example.org', 'origins compare case-insensitively (hosts are)');
});

t.test('other origins get no CORS headers', async (t) => {
  for (const origin of ['https://evil.example.org', 'http://dash.example.org', 'https://dash.example.org:8443', 'https://dash.example.org.evil.net', 'null']) {
    const res = await send(listed, 'GET', '/v1/targets', { origin });
    t.equal(res.status, 200, `${origin}: the request itself is served`);
    noCors(t, res, origin);
  }
  noCors(t, await send(listed, 'GET', '/v1/targets'), 'no Origin');
});

t.test('preflight from an allowed origin', async (t) => {
  const res = await preflight(listed, '/v1/targets', DASH);
  t.equal(res.status, 204);
  t.equal(res.body.length, 0);
  allowsOrigin(t, res, DASH, 'preflight');
  const methods = String(res.headers['access-control-allow-methods']).split(/,\s*/);
  t.same(methods.sort(), ['GET', 'POST'], 'the methods of that route');
  const allowed = String(res.headers['access-control-allow-headers']).toLowerCase();
  t.match(allowed, /authorization/);
  t.match(allowed, /content-type/);
  t.equal(res.headers['access-control-max-age'], '600');
  t.match(res.headers.vary, /\bOrigin\b/i);

  const item = await preflight(listed, '/v1/targets/AAAAAAAAAAAAAAAAAAAAAA', DASH, 'PATCH');
  t.equal(item.status, 204);
  t.same(String(item.headers['access-control-allow-methods']).split(/,\s*/).sort(), ['DELETE', 'GET', 'PATCH'], 'patterned routes too');
  const stream = await preflight(listed, '/v1/targets/AAAAAAAAAAAAAAAAAAAAAA/streams', DASH);
  allowsOrigin(t, stream, DASH, 'stream creation preflight');

  const unknown = await preflight(listed, '/v1/nope', DASH);
  t.equal(unknown.status, 204, 'an unknown path: 204');
  t.notOk('access-control-allow-methods' in unknown.headers, 'an unknown path: no allowed methods, so the browser refuses');
});

t.test('a preflight carries exactly one Access-Control-Allow-Origin', async (t) => {
  const res = await preflight(listed, '/v1/targets', DASH);
  t.equal(res.headers['access-control-allow-origin'], DASH, 'one value');
  t.equal(res.headers.vary, 'Origin', 'Vary once');
  const star = await preflight(any, '/v1/targets', DASH);
  t.equal(star.headers['access-control-allow-origin'], '*', 'one value with *');
  const unknown = await preflight(listed, '/v1/nope', DASH);
  t.notOk('access-control-allow-origin' in unknown.headers, 'a preflight of an unknown path: no Access-Control-Allow-Origin');
  t.notOk('access-control-expose-headers' in unknown.headers, 'a preflight of an unknown path: no Access-Control-Expose-Headers');
});

t.test('preflight from a disallowed origin', async (t) => {
  for (const origin of ['https://evil.example.org', 'null']) {
    const res = await preflight(listed, '/v1/targets', origin);
    t.equal(res.status, 204, `${origin}: 204`);
    noCors(t, res, origin);
  }
  const noOrigin = await send(listed, 'OPTIONS', '/v1/targets', { 'access-control-request-method': 'POST' });
  noCors(t, noOrigin, 'preflight without Origin');
  const notPreflight = await send(listed, 'OPTIONS', '/v1/targets', { origin: DASH });
  t.equal(notPreflight.status, 405, 'OPTIONS without Access-Control-Request-Method is not a preflight');
});

t.test("with ['*'] any origin gets *", async (t) => {
  for (const origin of [DASH, 'https://anything.example.com', 'http://localhost:3000']) {
    const res = await send(any, 'GET', '/v1/targets', { origin });
    t.equal(res.status, 200);
    t.equal(res.headers['access-control-allow-origin'], '*', `${origin}: *`);
    const pre = await preflight(any, '/v1/targets', origin);
    t.equal(pre.status, 204);
    allowsOrigin(t, pre, '*', `${origin}: preflight`);
    t.match(pre.headers['access-control-allow-methods'], /POST/);
    t.equal(pre.headers['access-control-max-age'], '600');
  }
  noCors(t, await send(any, 'GET', '/v1/targets'), 'no Origin, no headers');
});
