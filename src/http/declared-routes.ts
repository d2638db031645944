/**
 * Admin API routes are declared, not hand-wired: each {@link ApiRoute} names its method,
 * path, who may call it, and JSON Schemas for its path parameters, query and body. From
 * those one place does, in order: authorize → read and parse the body → validate → call
 * the handler; and the same declarations produce the OpenAPI 3.1 document.
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import type { Auth, Principal, Role } from '../auth/users';
import { AppError } from '../errors';
import { json, type Reply, type Request, type Router } from './router';
import { VERSION } from '../version';

/** A JSON Schema (2020-12) object. */
export type Schema = Record<string, unknown>;

/** Who may call a route. */
export type Access =
  /** Anyone; a token, when sent, must be valid. */
  | 'public'
  /** Any valid token. */
  | 'token'
  /** Only these roles. */
  | Role[];

/** What a handler receives. Params, query and body have passed their schemas. */
export interface ApiContext<P = Record<string, string>, Q = Record<string, unknown>, B = unknown> {
  req: Request;
  principal: Principal | undefined;
  params: P;
  query: Q;
  body: B;
}

/** One admin API route. */
export interface ApiRoute {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Router pattern, e.g. `/v1/targets/:id`. */
  path: string;
  summary: string;
  tag: string;
  access: Access;
  params?: Schema;
  query?: Schema;
  body?: Schema;
  /** Largest body in bytes; the router default (http.maxBodyBytes) otherwise. */
  bodyLimit?: number;
  /** Further error statuses this route can answer (beyond those implied by access and body), for the document. */
  errors?: Record<number, string>;
  /** Response schemas by status, for the OpenAPI document. */
  responses: Record<number, { description: string; schema?: Schema; binary?: boolean }>;
  /**
   * Acts and replies. Handlers annotate the context they rely on (e.g. `principal: Principal`
   * on routes whose access guarantees one), so the context is loosely typed here.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  handler(ctx: any): Promise<Reply> | Reply;
}

/** An object schema that rejects unknown fields. */
export function object(properties: Record<string, Schema>, required: string[] = [], extra: Schema = {}): Schema {
  return { type: 'object', properties, required, additionalProperties: false, ...extra };
}

/** A bounded string. */
export function str(maxLength: number, extra: Schema = {}): Schema {
  return { type: 'string', maxLength, ...extra };
}

const ajv = new Ajv2020({ strict: true, allErrors: false });
const ajvQuery = new Ajv2020({ strict: true, allErrors: false, coerceTypes: true, useDefaults: true });

function describeError(where: string, e: ErrorObject): string {
  const at = `${where}${e.instancePath.replace(/\//g, '.')}`;
  const name = (e as ErrorObject & { propertyName?: string }).propertyName;
  if (name !== undefined) return `${at}: name "${name.slice(0, 140)}" ${e.message ?? 'is invalid'}`;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
    case 'required':
      return `${at}: missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
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

function allowed(access: Access, principal: Principal | undefined): void {
  if (access === 'public') return;
  if (!principal) throw new AppError('unauthorized', 'This route needs Authorization: Bearer <token>', { 'www-authenticate': 'Bearer' });
  if (access === 'token') return;
  if (!access.includes(principal.role)) {
    throw new AppError('forbidden', `This route is for ${access.join(' or ')} tokens; this token is a ${principal.role}'s`);
  }
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

/** Registers API routes on the router, each wrapped in authorize → parse → validate → act. */
export function registerApi(router: Router, auth: Auth, routes: ApiRoute[]): void {
  for (const route of routes) {
    const vParams = validator(route.params);
    const vQuery = validator(route.query ?? object({}), true);
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
        return route.handler({ req, principal, params, query, body });
      },
      { bodyLimit: route.bodyLimit },
    );
  }
}

const ERROR_SCHEMA = object({ error: object({ code: { type: 'string' }, message: { type: 'string' } }, ['code', 'message']) }, ['error']);

/** The OpenAPI 3.1 document of the given routes. */
export function openApiDocument(routes: ApiRoute[], extraPaths: Record<string, unknown> = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const params = Object.entries((r.params?.properties ?? {}) as Record<string, Schema>).map(([name, schema]) => ({ name, in: 'path', required: true, schema }));
    const query = Object.entries((r.query?.properties ?? {}) as Record<string, Schema>).map(([name, schema]) => ({
      name,
      in: 'query',
      required: ((r.query?.required ?? []) as string[]).includes(name),
      schema,
    }));
    const responses: Record<string, unknown> = {};
    for (const [status, resp] of Object.entries(r.responses)) {
      responses[status] = {
        description: resp.description,
        ...(resp.schema ? { content: { 'application/json': { schema: resp.schema } } } : {}),
        ...(resp.binary ? { content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } } : {}),
      };
    }
    const errors: Record<string, string> = { '400': 'Bad input (see the message)' };
    if (r.access !== 'public') errors['401'] = 'No, unknown or revoked token';
    else errors['401'] = 'A token was sent but is unknown or revoked';
    if (Array.isArray(r.access)) errors['403'] = `Not a ${r.access.join(' or ')} token, or not the owner`;
    if (r.body) {
      errors['413'] = 'Body over its limit';
      errors['415'] = 'Body not sent as application/json';
    }
    for (const [status, description] of Object.entries(r.errors ?? {})) errors[status] = description;
    errors['503'] = 'Storage unavailable; retry later';
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
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: r.body } } } } : {}),
      ...(r.bodyLimit ? { 'x-body-limit-bytes': r.bodyLimit } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'stream-coordinator admin API',
      version: VERSION,
      description: 'HTTPS admin API of stream-coordinator (PROTOCOL.md §3). Errors are {"error":{"code","message"}}; codes are listed in docs/errors.md.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths: { ...extraPaths, ...paths },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A user, donor or admin token (43 base64url characters)' },
        metricsKey: { type: 'http', scheme: 'bearer', description: 'The configured metrics.key' },
      },
      schemas: { Error: ERROR_SCHEMA },
    },
    security: [{ bearer: [] }],
  };
}

/** A 200/201 JSON reply. */
export function ok(value: unknown, status = 200): Reply {
  return json(status, value);
}
