/**
 * The OpenAPI document lists the statuses the handlers really answer: a route module that
 * throws `not_found` or `conflict` documents 404 or 409 on some route of its own, every
 * download documents the range answers (206, 416), and a route's own description of a
 * status is never replaced by the generic one. No storage is needed: declarations only.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../src/config/settings';
import { openApiDocument, type ApiRoute } from '../src/http/declared-routes';
import { apiRoutes } from '../src/http/routes';
import { donorRoutes } from '../src/http/routes/donors';
import { engineKeyRoutes } from '../src/http/routes/engine-keys';
import { liveRoutes } from '../src/http/routes/live';
import { reliabilityRoutes } from '../src/http/routes/reliability';
import { streamRoutes } from '../src/http/routes/streams';
import { targetRoutes } from '../src/http/routes/targets';
import { userRoutes } from '../src/http/routes/users';

const ROOT = path.resolve(__dirname, '..', '..');
const SOURCES = path.join(ROOT, 'src', 'http', 'routes');
const settings = loadConfig({ env: {} });

type Operation = { responses: Record<string, { description: string; content?: Record<string, unknown> }> };

/** The document of some routes, by `METHOD path`. */
function operations(routes: Array<ApiRoute<unknown>>): Map<string, Operation> {
  const doc = openApiDocument(routes as Array<ApiRoute<never>>) as { paths: Record<string, Record<string, Operation>> };
  const ops = new Map<string, Operation>();
  for (const [p, methods] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(methods)) ops.set(`${m.toUpperCase()} ${p}`, op);
  return ops;
}

/** Each route module with its source and its routes (a module missing here fails the first test). */
const modules = Object.entries({
  'donors.ts': donorRoutes(settings),
  'engine-keys.ts': engineKeyRoutes(settings),
  'live.ts': liveRoutes(),
  'reliability.ts': reliabilityRoutes(settings),
  'streams.ts': streamRoutes(settings),
  'targets.ts': targetRoutes(settings),
  'users.ts': userRoutes(),
}).map(([file, routes]) => ({ file, source: fs.readFileSync(path.join(SOURCES, file), 'utf8'), routes: routes as Array<ApiRoute<unknown>> }));

/** Source patterns that mean a status some route of the file can answer. */
const THROWS: Array<{ status: string; pattern: RegExp }> = [
  // ownedTarget/visibleTarget (targets.ts) answer `not_found` for a missing target.
  { status: '404', pattern: /AppError\('not_found'|\b(?:ownedTarget|visibleTarget)\(/ },
  // `unique()` (common.ts) turns a duplicate key into `conflict`.
  { status: '409', pattern: /AppError\('conflict'|\bunique\(/ },
];

t.test('the route modules are every declared route', async (t) => {
  const files = fs.readdirSync(SOURCES).filter((f) => f.endsWith('.ts') && !['common.ts', 'index.ts', 'system.ts'].includes(f));
  t.same(files.sort(), modules.map((m) => m.file).sort(), 'every route module of src/http/routes is checked');
  const all = apiRoutes(settings).map((r) => `${r.method} ${r.path}`).sort();
  t.same(modules.flatMap((m) => m.routes.map((r) => `${r.method} ${r.path}`)).sort(), all, 'each route is found in exactly one module');
});

t.test('a module throwing not_found or conflict documents 404 or 409 on one of its routes', async (t) => {
  let checked = 0;
  for (const m of modules) {
    const ops = operations(m.routes);
    for (const { status, pattern } of THROWS) {
      if (!pattern.test(m.source)) continue;
      checked++;
      const documented = [...ops].filter(([, op]) => op.responses[status]).map(([k]) => k);
      t.ok(documented.length > 0, `${m.file} can answer ${status}: some route of it documents ${status}`);
    }
  }
  t.ok(checked >= 6, `the patterns matched (${checked} module/status pairs), so the check means something`);
});

t.test('every download documents 206 and 416 (http/range.ts applies to every streamed 200)', async (t) => {
  const downloads = [...operations(apiRoutes(settings))].filter(([, op]) => op.responses['200']?.content?.['application/octet-stream']);
  t.ok(downloads.length >= 4, `downloads found (${downloads.length})`);
  for (const [k, op] of downloads) {
    t.ok(op.responses['206']?.content?.['application/octet-stream'], `${k}: 206 with a binary body`);
    t.ok(op.responses['416'], `${k}: 416`);
  }
});

t.test("a route's own description of a status wins over the generic one", async (t) => {
  const ops = operations(apiRoutes(settings));
  let declared = 0;
  for (const r of apiRoutes(settings)) {
    const op = ops.get(`${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`)!;
    for (const [status, description] of Object.entries(r.errors ?? {})) {
      declared++;
      t.equal(op.responses[status]?.description, description, `${r.method} ${r.path}: ${status}`);
    }
  }
  t.ok(declared > 0, 'some routes declare their own errors');
  t.equal(ops.get('DELETE /v1/engine-keys/{id}')!.responses['503']!.description.includes('announcement'), true, 'the engine-key revocation keeps its own 503');
});
