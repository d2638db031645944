/**
 * The dashboard's API types (src/dashboard/ui/types.ts) against the route schemas they mirror:
 * the same field names, and a field is optional in the UI exactly when the schema does not
 * require it. A route schema change without the UI following fails here.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { loadConfig } from '../src/config/settings';
import { openApiFor } from '../src/http/routes';

type Schema = { properties?: Record<string, Schema>; required?: string[]; items?: Schema; additionalProperties?: Schema | boolean };

const ROOT = path.resolve(__dirname, '..', '..');
const doc = openApiFor(loadConfig({ env: {} })) as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: Schema }> }> }>> };
const response = (p: string, method = 'get', status = '200'): Schema => doc.paths[p]![method]!.responses[status]!.content!['application/json']!.schema;

const MIRRORS: Record<string, Schema> = {
  Me: response('/v1/me'),
  Target: response('/v1/targets/{id}'),
  Stream: response('/v1/streams/{id}'),
  StreamList: response('/v1/targets/{id}/streams'),
  Partitions: response('/v1/streams/{id}/partitions'),
  StreamError: response('/v1/streams/{id}/errors').properties!.errors!.items!,
  ActiveStream: (response('/v1/active-streams').properties!.targets!.additionalProperties as Schema).items!,
  Donor: response('/v1/donors').properties!.donors!.items!,
  User: response('/v1/users').properties!.users!.items!,
  EngineKey: response('/v1/engine-keys').properties!.engine_keys!.items!,
  NodeInfo: response('/v1/nodes').properties!.nodes!.items!,
};

function interfaces(): Map<string, Map<string, boolean>> {
  const file = path.join(ROOT, 'src', 'dashboard', 'ui', 'types.ts');
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out = new Map<string, Map<string, boolean>>();
  source.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node)) return;
    const fields = new Map<string, boolean>();
    for (const m of node.members) if (ts.isPropertySignature(m)) fields.set(m.name.getText(source), m.questionToken !== undefined);
    out.set(node.name.text, fields);
  });
  return out;
}

t.test('every UI response type has the fields and optionality of its route schema', async (t) => {
  const ui = interfaces();
  for (const [name, schema] of Object.entries(MIRRORS)) {
    const fields = ui.get(name);
    if (!fields) {
      t.fail(`types.ts has no interface ${name}`);
      continue;
    }
    t.same([...fields.keys()].sort(), Object.keys(schema.properties ?? {}).sort(), `${name}: same field names as the schema`);
    const required = new Set(schema.required ?? []);
    t.same(
      [...fields].filter(([, optional]) => optional).map(([k]) => k).sort(),
      Object.keys(schema.properties ?? {}).filter((k) => !required.has(k)).sort(),
      `${name}: optional exactly where the schema does not require`,
    );
  }
});
