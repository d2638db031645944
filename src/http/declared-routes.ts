/**
 * Admin API routes are declared, not hand-wired: each {@link ApiRoute} names its method,
 * path, who may call it, and JSON Schemas for its path parameters, query and body. From
 * those one place does, in order: authorize → read and parse the body → validate → call
 * the handler; and the same declarations produce the OpenAPI 3.1 document. Schemas are
 * written with TypeBox, so each handler's context is typed from the same schemas that
 * validate it.
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import type { Static, TObject, TSchema, TUndefined } from '@sinclair/typebox';
import { ERROR_BODY, object } from './api-schemas';
import type { Auth, Principal, Role } from '../auth/principals';
import { allowed, authGate, withArticle } from './auth-gate';
import { AppError } from '../errors';
import { json, type Reply, type Request, type Router } from './router';
import { VERSION } from '../version';

/** A JSON Schema (2020-12) object; TypeBox schemas are plain JSON Schema objects too. */
export type Schema = Record<string, unknown>;

/** Who may call a route. */
export type Access =
  /** Anyone; a token, when sent, must be valid. */
  | 'public'
  /** Any valid token. */
  | 'token'
  /** Only these roles. */
  | Role[];

/** The caller a route's access guarantees: always one, except on public routes. */
export type PrincipalFor<A extends Access> = A extends 'public' ? Principal | undefined : Principal;

/** What a handler receives. Params, query and body have passed their schemas. */
export interface ApiContext<P = Record<string, string>, Q = Record<string, unknown>, B = unknown, W = Principal | undefined> {
  req: Request;
  principal: W;
  params: P;
  query: Q;
  body: B;
}

/**
 * One admin API route, as declared: schemas are TypeBox (JSON Schema) objects and the
 * handler's context is derived from them. `D` is what handlers need at run time (storage,
 * bus…); it is handed to them per call, so a declaration can exist without any — which is
 * how the OpenAPI document is built without connections.
 */
export interface RouteDecl<D, P extends TSchema, Q extends TSchema, B extends TSchema, A extends Access> {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Router pattern, e.g. `/v1/targets/:id`. */
  path: string;
  summary: string;
  tag: string;
  access: A;
  params?: P;
  query?: Q;
  body?: B;
  /** Largest body in bytes; the router default (http.maxBodyBytes) otherwise. */
  bodyLimit?: number;
  /**
   * Further error statuses this route can answer, for the document. Every route is documented
   * with 400, 401, 429 and 503, and 403 (role routes) or 408, 413 and 415 (routes with a body); a
   * status given here replaces that generic description, so it should cover its meaning too.
   */
  errors?: Record<number, string>;
  /** Response schemas by status, for the OpenAPI document. */
  responses: Record<number, { description: string; schema?: TSchema; binary?: boolean }>;
  /** Acts and replies. */
  handler(ctx: ApiContext<Static<P>, Static<Q>, Static<B>, PrincipalFor<A>>, deps: D): Promise<Reply> | Reply;
}

/** A declared route with its types erased, as the router and the document generator see it. */
export type ApiRoute<D = unknown> = RouteDecl<D, TSchema, TSchema, TSchema, Access>;

/** The schema type of an absent params or query declaration. */
type NoFields = TObject<Record<never, never>>;

/**
 * The route declaration helper for handlers needing `D`: `routeFor<Deps>()({ ... })` infers
 * the handler's params, query, body and principal from the schemas and the access.
 * Params and query default to no fields, the body to none (`undefined`).
 */
export function routeFor<D>() {
  return function route<P extends TSchema = NoFields, Q extends TSchema = NoFields, B extends TSchema = TUndefined, A extends Access = Access>(
    decl: RouteDecl<D, P, Q, B, A>,
  ): ApiRoute<D> {
    return decl as unknown as ApiRoute<D>;
  };
}

// The schema helpers live with the shared schemas (api-schemas.ts, importable by the UI).
export { object, oneOf, str } from './api-schemas';

// verbose: an error carries its schema and data, so the message can list what is allowed.
const ajv = new Ajv2020({ strict: true, allErrors: false, verbose: true });
const ajvQuery = new Ajv2020({ strict: true, allErrors: false, verbose: true, coerceTypes: true, useDefaults: true });

/** At most this many allowed values or unknown fields are named in one message. */
const NAMED_AT_MOST = 10;

/** Quoted names, the first {@link NAMED_AT_MOST} of them. */
function named(values: readonly unknown[]): string {
  const shown = values.slice(0, NAMED_AT_MOST).map((v) => JSON.stringify(typeof v === 'string' ? v.slice(0, 140) : v));
  return `${shown.join(', ')}${values.length > NAMED_AT_MOST ? ', …' : ''}`;
}

/** Fields of `data` its object schema does not declare (a missing field is often one of them misspelt). */
function unknownFields(e: ErrorObject): string[] {
  const props = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties;
  if (!props || typeof e.data !== 'object' || e.data === null || Array.isArray(e.data)) return [];
  return Object.keys(e.data).filter((k) => !Object.hasOwn(props, k));
}

function describeError(where: string, e: ErrorObject): string {
  // Keys in the path are the client's: a message names at most the first 300 characters of it.
  const path = `${where}${e.instancePath.replace(/\//g, '.')}`;
  const at = path.length > 300 ? `${path.slice(0, 300)}…` : path;
  const name = (e as ErrorObject & { propertyName?: string }).propertyName;
  if (name !== undefined) return `${at}: name "${name.slice(0, 140)}" ${e.message ?? 'is invalid'}`;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty.slice(0, 140)}"`;
    case 'required': {
      const unknown = unknownFields(e);
      return `${at}: missing required field "${(e.params as { missingProperty: string }).missingProperty}"${unknown.length > 0 ? ` (unknown: ${named(unknown)})` : ''}`;
    }
    case 'enum':
      return `${at}: must be one of ${named((e.params as { allowedValues: unknown[] }).allowedValues)}`;
    case 'pattern':
      return `${at}: ${e.message?.replace(/"/g, "'")}`;
    default:
      return `${at}: ${e.message ?? 'is invalid'}`;
  }
}

function validator(schema: Schema | undefined, coerce = false): ValidateFunction | undefined {
  return schema ? (coerce ? ajvQuery : ajv).compile(schema) : undefined;
}

function check(validate: ValidateFunction | undefined, value: unknown, where: string): void {
  if (validate && !validate(value)) throw new AppError('bad_request', describeError(where, validate.errors![0]!));
}

/** Parses a JSON body: needs `Content-Type: application/json` and well-formed JSON. */
export function parseJsonBody(req: Request, raw: Buffer): unknown {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new AppError('unsupported_media_type', 'Send the body as JSON with Content-Type: application/json');
  if (raw.length === 0) throw new AppError('bad_request', 'The request body is empty; a JSON object is expected');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new AppError('bad_request', `Malformed JSON body: ${(err as Error).message}`);
  }
}

const NO_QUERY = object({});

/**
 * Registers API routes on the router, each wrapped in authorize → parse → validate → act;
 * `deps` is handed to every handler call.
 */
export function registerApi<D>(router: Router, auth: Auth, routes: Array<ApiRoute<D>>, deps: D): void {
  for (const route of routes) {
    const vParams = validator(route.params);
    const vQuery = validator(route.query ?? NO_QUERY, true);
    const vBody = validator(route.body);
    router.add(
      route.method,
      route.path,
      async (req) => {
        const principal = await auth.fromHeader(req.headers.authorization);
        allowed(route.access, principal);
        const params = { ...req.params };
        check(vParams, params, 'path');
        const query: Record<string, unknown> = Object.fromEntries(req.query);
        check(vQuery, query, 'query');
        let body: unknown;
        if (vBody) {
          body = parseJsonBody(req, await req.body());
          check(vBody, body, 'body');
        }
        return route.handler({ req, principal, params, query, body }, deps);
      },
      // The token is checked before the body is read (http/auth-gate.ts).
      { bodyLimit: route.bodyLimit, gate: authGate(auth, route.access) },
    );
  }
}

const ERROR_SCHEMA = ERROR_BODY;

/** Leading keys of a schema in the document, for reading; the rest keep their order. */
const FIRST_KEYS = ['type', 'properties', 'required', 'items'];

/**
 * A schema as plain JSON for the document: TypeBox's symbol-keyed markers dropped and
 * `type`, `properties`, `required`, `items` first (TypeBox puts options first).
 */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (!value || typeof value !== 'object') return value;
  const v = value as Record<string, unknown>;
  const keys = [...FIRST_KEYS.filter((k) => k in v), ...Object.keys(v).filter((k) => !FIRST_KEYS.includes(k))];
  // `properties` maps field names (which may be "type") to schemas: its order is the author's.
  const at = (k: string): unknown =>
    k === 'properties' ? Object.fromEntries(Object.entries(v[k] as Record<string, unknown>).map(([name, sub]) => [name, plain(sub)])) : plain(v[k]);
  return Object.fromEntries(keys.map((k) => [k, at(k)]));
}

/** The OpenAPI 3.1 document of the given routes. */
export function openApiDocument(routes: Array<ApiRoute<never>>, extraPaths: Record<string, unknown> = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const params = Object.entries((r.params?.properties ?? {}) as Record<string, Schema>).map(([name, schema]) => ({ name, in: 'path', required: true, schema: plain(schema) }));
    const query = Object.entries((r.query?.properties ?? {}) as Record<string, Schema>).map(([name, schema]) => ({
      name,
      in: 'query',
      required: ((r.query?.required ?? []) as string[]).includes(name),
      schema: plain(schema),
    }));
    const responses: Record<string, unknown> = {};
    for (const [status, resp] of Object.entries(r.responses)) {
      responses[status] = {
        description: resp.description,
        ...(resp.schema ? { content: { 'application/json': { schema: plain(resp.schema) } } } : {}),
        ...(resp.binary ? { content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } } : {}),
      };
    }
    const errors: Record<string, string> = { '400': 'Bad input (see the message)' };
    if (r.access !== 'public') errors['401'] = 'No, unknown or revoked token';
    else errors['401'] = 'A token was sent but is unknown or revoked';
    if (Array.isArray(r.access)) errors['403'] = `Not ${withArticle(r.access.join(' or '))} token, or not the owner`;
    if (r.body) {
      errors['408'] = 'Body not arrived in time (http.bodyGraceS, http.minBodyBytesPerSecond); the connection closes';
      errors['413'] = 'Body over its limit';
      errors['415'] = 'Body not sent as application/json';
    }
    // Every route's auth gate spends the address's failed-authentication budget, and bodies
    // and replies are held only within the node's memory budget (http/exchange.ts): all answer 429.
    errors['429'] = `Too many failed authentications from this address (auth.failuresPerMinute), or the node's memory budget for ${r.body ? 'request bodies or ' : ''}replies being sent is exhausted; see Retry-After`;
    errors['503'] = 'Storage unavailable; retry later';
    // A route's own descriptions win over the generic ones above.
    for (const [status, description] of Object.entries(r.errors ?? {})) errors[status] = description;
    for (const [status, description] of Object.entries(errors)) {
      responses[status] ??= { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method.toLowerCase()}${r.path.replace(/\/:?(\w)/g, (_, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '')}`,
      ...(r.access === 'public' ? { security: [{}, { bearer: [] }] } : {}),
      ...(Array.isArray(r.access) ? { 'x-roles': r.access } : {}),
      ...(params.length + query.length > 0 ? { parameters: [...params, ...query] } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: plain(r.body) } } } } : {}),
      ...(r.bodyLimit ? { 'x-body-limit-bytes': r.bodyLimit } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'stream-coordinator admin API',
      version: VERSION,
      description: 'HTTPS admin API of stream-coordinator (the wire contract is docs/protocol.md). Errors are {"error":{"code","message"}}; codes are listed in docs/errors.md.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths: { ...extraPaths, ...paths },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A user, donor or admin token (43 base64url characters)' },
        metricsKey: { type: 'http', scheme: 'bearer', description: 'The configured metrics.key' },
      },
      schemas: { Error: plain(ERROR_SCHEMA) },
    },
    security: [{ bearer: [] }],
  };
}

/** A 200/201 JSON reply. */
export function ok(value: unknown, status = 200): Reply {
  return json(status, value);
}
