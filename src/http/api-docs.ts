/** docs/api.md, rendered from the OpenAPI document so the two cannot disagree. */

interface Operation {
  summary: string;
  tags: string[];
  'x-roles'?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required: boolean; schema: Record<string, unknown> }>;
  requestBody?: { content: Record<string, { schema: unknown }> };
  'x-body-limit-bytes'?: number;
  responses: Record<string, { description: string; content?: Record<string, { schema?: unknown }> }>;
}

function who(op: Operation): string {
  if (op['x-roles']) return op['x-roles'].join(', ');
  if (op.security && op.security.length === 2 && JSON.stringify(op.security).includes('metricsKey')) return 'anyone, or metrics.key when set';
  if (op.security && op.security.length === 2) return 'anyone';
  if (op.security && op.security.length === 1 && Object.keys(op.security[0] as object).length === 0) return 'anyone';
  return 'any token';
}

function schemaText(schema: unknown): string {
  return JSON.stringify(schema, null, 1).replace(/\n\s*/g, ' ');
}

/** Markdown reference of every operation in an OpenAPI 3.1 document. */
export function apiMarkdown(doc: Record<string, unknown>): string {
  const paths = doc.paths as Record<string, Record<string, Operation>>;
  const ops: Array<{ method: string; path: string; op: Operation }> = [];
  for (const [path, methods] of Object.entries(paths)) for (const [method, op] of Object.entries(methods)) ops.push({ method: method.toUpperCase(), path, op });
  const lines: string[] = [
    '# Admin API reference',
    '',
    'Generated from the OpenAPI 3.1 document (`GET /openapi.json`, checked in as `docs/openapi.json`) by `npm run docs`; do not edit by hand.',
    'Conventions: JSON bodies need `Content-Type: application/json`; unknown fields are rejected (400);',
    'errors are `{"error":{"code","message"}}` (codes in [errors.md](errors.md)); timestamps are ISO-8601 UTC;',
    'POST that creates answers 201, DELETE answers 204; file downloads are `application/octet-stream` with `Content-Length`.',
    'Owners may act on their targets and streams; admins may act on any (an operator override).',
    'Connections: HTTP/1.1 with keep-alive. Do not pipeline: on the uws transport a request sent before the answer to the one before it is complete closes the connection (a uWebSockets.js rule), unless that answer was ready at once.',
    'A connection whose client reads none of an answer within `http.idleTimeoutS` (uws: 10 s) is closed.',
    'A request body must keep a pace (`http.bodyGraceS`, then `http.minBodyBytesPerSecond`): one that falls behind gets 408 `request_timeout`. An answer sent before its request body has all arrived (a refusal, a route that reads none) closes the connection.',
    '',
    '| method | path | who | what |',
    '|---|---|---|---|',
    ...ops.map(({ method, path, op }) => `| ${method} | \`${path}\` | ${who(op)} | ${op.summary} |`),
    '',
  ];
  for (const { method, path, op } of ops) {
    lines.push(`## ${method} ${path}`, '', op.summary, '', `Who: ${who(op)}.`, '');
    for (const p of op.parameters ?? []) lines.push(`- ${p.in} \`${p.name}\`${p.required ? '' : ' (optional)'}: \`${schemaText(p.schema)}\``);
    if (op.parameters?.length) lines.push('');
    const body = op.requestBody?.content['application/json']?.schema;
    if (body) {
      lines.push(`Body${op['x-body-limit-bytes'] ? ` (up to ${op['x-body-limit-bytes']} bytes)` : ''}:`, '', '```json', JSON.stringify(body, null, 2), '```', '');
    }
    lines.push('| status | meaning |', '|---|---|');
    for (const [status, r] of Object.entries(op.responses)) lines.push(`| ${status} | ${r.description} |`);
    const ok = Object.entries(op.responses).find(([s, r]) => s.startsWith('2') && r.content?.['application/json']?.schema);
    if (ok) lines.push('', `Response ${ok[0]}:`, '', '```json', JSON.stringify(ok[1].content!['application/json']!.schema, null, 2), '```');
    lines.push('');
  }
  return lines.join('\n');
}
