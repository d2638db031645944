/**
 * `npm run docs`: regenerates what is derived from code — conf/default.json, the config
 * tables in README.md and docs/config.md, docs/openapi.json and docs/api.md. Tests fail
 * when these are stale.
 */
import fs from 'node:fs';
import path from 'node:path';
import { apiMarkdown } from '../src/http/api-docs';
import { loadConfig } from '../src/config/settings';
import { configDefaults, configTable } from '../src/config/docs';
import { openApiFor } from '../src/http/routes';

const ROOT = path.resolve(__dirname, '..', '..');
const START = '<!-- config-table:start -->';
const END = '<!-- config-table:end -->';

function replaceTable(file: string): void {
  const p = path.join(ROOT, file);
  const text = fs.readFileSync(p, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${file} lacks the ${START} … ${END} markers`);
  fs.writeFileSync(p, `${text.slice(0, a + START.length)}\n${configTable()}\n${text.slice(b)}`);
}

fs.writeFileSync(path.join(ROOT, 'conf', 'default.json'), `${JSON.stringify(configDefaults(), null, 2)}\n`);
replaceTable('README.md');
replaceTable('docs/config.md');
const doc = openApiFor(loadConfig({ env: {} }));
fs.writeFileSync(path.join(ROOT, 'docs', 'openapi.json'), `${JSON.stringify(doc, null, 2)}\n`);
fs.writeFileSync(path.join(ROOT, 'docs', 'api.md'), apiMarkdown(doc));
process.stdout.write('regenerated conf/default.json, README.md and docs/config.md tables, docs/openapi.json, docs/api.md\n');
