/**
 * Route declarations: handler contexts are typed from the TypeBox schemas (checked by the
 * compiler: each `@ts-expect-error` below fails the build if inference decays to `any`),
 * and the OpenAPI document follows the settings without any storage behind it.
 */
import { Type } from '@sinclair/typebox';
import t from 'tap';
import { loadConfig } from '../src/config/settings';
import { object, ok, openApiDocument } from '../src/http/declared-routes';
import { ID_PARAMS, NAME, route } from '../src/http/routes/common';
import { openApiFor } from '../src/http/routes';

const typed = route({
  method: 'PATCH',
  path: '/v1/things/:id',
  tag: 'things',
  summary: 'A route for the compiler',
  access: ['manager'],
  params: ID_PARAMS,
  query: object({ dry: Type.Optional(Type.Boolean()) }),
  body: object({ name: NAME, size: Type.Optional(Type.Integer()) }),
  responses: { 200: { description: 'Done' } },
  handler: ({ params, query, body, principal }) => {
    const id: string = params.id;
    const name: string = body.name;
    const size: number | undefined = body.size;
    const dry: boolean | undefined = query.dry;
    const owner: string = principal.name; // role access: a principal is guaranteed
    // @ts-expect-error body.size is optional
    const sure: number = body.size;
    // @ts-expect-error no such field in the body schema
    void body.colour;
    // @ts-expect-error no such path parameter
    void params.name;
    return ok({ id, name, size, dry, owner, sure });
  },
});

const open = route({
  method: 'GET',
  path: '/v1/open',
  tag: 'things',
  summary: 'A public route for the compiler',
  access: 'public',
  responses: { 200: { description: 'Done' } },
  handler: ({ principal, body }) => {
    // @ts-expect-error public routes may have no caller
    void principal.name;
    const none: undefined = body; // no body schema, no body
    return ok({ who: principal?.name ?? null, none });
  },
});

t.test('declared schemas reach the document as plain JSON Schema', async (t) => {
  const doc = openApiDocument([typed, open]) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> }; parameters?: unknown[] }>> };
  const op = doc.paths['/v1/things/{id}']!.patch!;
  t.same(op.requestBody!.content['application/json']!.schema, {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }, size: { type: 'integer' } },
    required: ['name'],
    additionalProperties: false,
  });
  t.same(op.parameters!.map((p) => (p as { name: string; in: string; required: boolean }).name), ['id', 'dry']);
  t.equal(Object.getOwnPropertySymbols(op.requestBody!.content['application/json']!.schema as object).length, 0, "TypeBox's markers stay out of the document");
});

t.test('the OpenAPI document follows the limits in the settings, with no storage configured or reachable', async (t) => {
  const settings = loadConfig({
    env: {},
    overrides: { 'limits.maxOptionsKeys': 17, 'limits.maxFilesPerStream': 9, 'limits.maxTargetEngines': 3, 'limits.maxDescriptionLength': 11, 'mongodb.uri': 'mongodb://127.0.0.1:1/none' },
  });
  type Bound = { maxProperties?: number; maxItems?: number; maxLength?: number };
  const doc = openApiFor(settings) as { paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { properties: Record<string, Bound> } }> } }>> };
  const body = (path: string, method: string) => doc.paths[path]![method]!.requestBody.content['application/json']!.schema.properties;
  t.equal(body('/v1/targets', 'post').options!.maxProperties, 17, 'target options: limits.maxOptionsKeys');
  t.equal(body('/v1/targets/{id}', 'patch').options!.maxProperties, 17);
  t.equal(body('/v1/targets/{id}/streams', 'post').files!.maxProperties, 9, 'stream files: limits.maxFilesPerStream');
  t.equal(body('/v1/targets', 'post').engines!.maxItems, 3, 'target engines: limits.maxTargetEngines');
  t.equal(body('/v1/engine-keys', 'post').description!.maxLength, 11, 'engine key description: limits.maxDescriptionLength');
});
