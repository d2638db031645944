/**
 * The clients' API types come from the route schemas, not from copies: the dashboard's
 * types.ts only re-exports types derived (`Static<typeof X>`) in src/http/api-schemas.ts,
 * the routes answer with those very schemas, the CLI declares no response shapes of its own,
 * and the compiled UI modules keep nothing of those type imports (the browser loads only
 * the UI folder). The compiler checks the rest: a schema change that a UI or CLI use does
 * not fit fails `npm run build`.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import ts from 'typescript';
import type { TSchema } from '@sinclair/typebox';
import { loadConfig } from '../src/config/settings';
import { apiRoutes } from '../src/http/routes';
import * as S from '../src/http/api-schemas';
import { buildDashboardUi } from './helpers/browser';

const ROOT = path.resolve(__dirname, '..', '..');
const settings = loadConfig({ env: {} });
const routes = apiRoutes(settings);
/** JSON of a schema (TypeBox's symbol-keyed markers dropped). */
const json = (s: TSchema | undefined): unknown => (s === undefined ? undefined : JSON.parse(JSON.stringify(s)));

function responseOf(method: string, p: string, status: number): TSchema | undefined {
  const r = routes.find((x) => x.method === method && x.path === p);
  if (!r) throw new Error(`no route ${method} ${p}`);
  return r.responses[status]?.schema;
}

t.test('the routes answer with the shared schemas the clients derive their types from', async (t) => {
  const { TARGET, TARGETS } = S.targetSchemas(settings.limits);
  const uses: Array<[string, string, number, TSchema]> = [
    ['GET', '/v1/me', 200, S.ME],
    ['GET', '/v1/users', 200, S.USERS],
    ['POST', '/v1/users', 201, S.USER_CREATED],
    ['GET', '/v1/donors', 200, S.DONORS],
    ['GET', '/v1/engine-keys', 200, S.ENGINE_KEYS],
    ['POST', '/v1/engine-keys', 201, S.ENGINE_KEY_CREATED],
    ['GET', '/v1/targets', 200, TARGETS],
    ['GET', '/v1/targets/:id', 200, TARGET],
    ['PATCH', '/v1/targets/:id', 200, TARGET],
    ['POST', '/v1/targets', 201, S.TARGET_CREATED],
    ['GET', '/v1/streams/:id', 200, S.STREAM],
    ['GET', '/v1/targets/:id/streams', 200, S.STREAM_LIST],
    ['POST', '/v1/targets/:id/streams', 201, S.STREAM_CREATED],
    ['GET', '/v1/streams/:id/partitions', 200, S.PARTITIONS],
    ['GET', '/v1/streams/:id/errors', 200, S.STREAM_ERRORS],
    ['GET', '/v1/active-streams', 200, S.ACTIVE_STREAMS],
    ['GET', '/v1/active-cores', 200, S.ACTIVE_CORES],
    ['GET', '/v1/nodes', 200, S.NODES],
    ['GET', '/v1/blocks', 200, S.BLOCKS],
    ['GET', '/v1/reliability', 200, S.RELIABILITY_RECORD],
  ];
  for (const [method, p, status, schema] of uses) {
    const declared = responseOf(method, p, status);
    // The target schemas carry limits, so they are made per settings: equal, not identical.
    if (schema === TARGET || schema === TARGETS) t.same(json(declared), json(schema), `${method} ${p} ${status}: the target schema for these limits`);
    else t.equal(declared, schema, `${method} ${p} ${status}: the shared schema object itself`);
  }
});

t.test('types.ts declares no shapes of its own: it re-exports the derived types', async (t) => {
  const file = path.join(ROOT, 'src', 'dashboard', 'ui', 'types.ts');
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const exported: string[] = [];
  for (const st of source.statements) {
    const reexport = ts.isExportDeclaration(st) && st.isTypeOnly && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) && st.moduleSpecifier.text === '../../http/api-schemas';
    t.ok(reexport, `statement "${st.getText(source).slice(0, 60)}" is a type-only re-export from api-schemas`);
    if (reexport && st.exportClause && ts.isNamedExports(st.exportClause)) exported.push(...st.exportClause.elements.map((e) => e.name.text));
  }
  for (const name of ['Me', 'Target', 'Targets', 'Stream', 'StreamList', 'Partitions', 'StreamError', 'ActiveStream', 'Donor', 'User', 'EngineKey', 'NodeInfo', 'Blocks', 'ErrorBody']) {
    t.ok(exported.includes(name), `types.ts exports ${name}`);
  }
  // And each of them is a Static<> of a schema in api-schemas.ts, not a hand-written shape there either.
  const schemasFile = path.join(ROOT, 'src', 'http', 'api-schemas.ts');
  const schemas = ts.createSourceFile(schemasFile, fs.readFileSync(schemasFile, 'utf8'), ts.ScriptTarget.ES2022, true);
  const aliases = new Map<string, string>();
  schemas.forEachChild((n) => {
    if (ts.isTypeAliasDeclaration(n)) aliases.set(n.name.text, n.type.getText(schemas));
    if (ts.isInterfaceDeclaration(n)) t.equal(n.name.text, 'TargetLimits', `the only interface in api-schemas.ts is the limits parameter (found ${n.name.text})`);
  });
  for (const name of exported) {
    const def = aliases.get(name);
    t.ok(def && /^Static<|^Me\['role'\]$/.test(def), `${name} = ${def}`);
  }
});

t.test('the CLI takes its response types from api-schemas too', async (t) => {
  const dir = path.join(ROOT, 'src', 'cli', 'manager');
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    t.notMatch(text, /\.call<\{/, `${f}: no inline response shape in client.call<...>`);
  }
});

t.test('the compiled UI modules import only each other', async (t) => {
  buildDashboardUi();
  const dir = path.join(ROOT, 'dist', 'ui', 'dashboard', 'ui');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.js'));
  t.ok(files.includes('app.js') && files.includes('types.js'), 'the UI is built where the server reads it');
  for (const f of files) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/g), ...text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
    for (const s of specifiers) t.match(s, /^\.\/[A-Za-z0-9.]+\.js$/, `${f} imports ${s}`);
  }
  t.equal(fs.readFileSync(path.join(dir, 'types.js'), 'utf8').trim(), 'export {};', 'types.js is empty: the type-only imports were erased');
});
