/**
 * The system routes (`/`, `/healthz`, `/readyz`) are plain router routes documented by hand
 * in the OpenAPI document: their real answers must match the schemas it publishes.
 */
import Ajv2020 from 'ajv/dist/2020';
import t from 'tap';
import { useCoreFixture } from './helpers/core';
import { request } from './helpers/server';

const fx = useCoreFixture();

t.test('/, /healthz and /readyz answer what /openapi.json says', async (t) => {
  const doc = JSON.parse((await request(`${fx().ts.url}/openapi.json`, { ca: fx().ts.ca })).body.toString()) as {
    paths: Record<string, { get: { responses: Record<string, { content?: { 'application/json': { schema: object } } }> } }>;
  };
  const ajv = new Ajv2020({ strict: true });
  for (const path of ['/', '/healthz', '/readyz']) {
    const res = await request(`${fx().ts.url}${path}`, { ca: fx().ts.ca });
    t.equal(res.status, 200, path);
    const schema = doc.paths[path]?.get.responses['200']?.content?.['application/json'].schema;
    t.ok(schema, `${path} documents its JSON`);
    const validate = ajv.compile(schema!);
    t.ok(validate(JSON.parse(res.body.toString())), `${path} matches it: ${JSON.stringify(validate.errors ?? [])}`);
  }
});
