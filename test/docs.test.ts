import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { apiMarkdown } from '../src/http/api-docs';
import { loadConfig } from '../src/config/settings';
import { openApiFor } from '../src/http/routes';

const ROOT = path.resolve(__dirname, '..', '..');

t.test('docs/openapi.json and docs/api.md are generated from the route declarations (npm run docs)', async (t) => {
  const doc = openApiFor(loadConfig({ env: {} }));
  t.same(JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'openapi.json'), 'utf8')), doc, 'docs/openapi.json is current');
  t.equal(fs.readFileSync(path.join(ROOT, 'docs', 'api.md'), 'utf8'), apiMarkdown(doc), 'docs/api.md is current');
});

t.test('every PROTOCOL §3 route is in the document', async (t) => {
  const doc = openApiFor(loadConfig({ env: {} })) as { paths: Record<string, Record<string, unknown>> };
  const expected = [
    'get /', 'get /healthz', 'get /readyz', 'get /metrics', 'get /v1/me', 'post /v1/users', 'get /v1/users', 'patch /v1/users/{name}', 'delete /v1/users/{name}',
    'post /v1/users/{name}/token', 'post /v1/donors', 'get /v1/donors', 'get /v1/donors/{name}', 'post /v1/engine-keys', 'get /v1/engine-keys', 'delete /v1/engine-keys/{id}',
    'post /v1/targets', 'get /v1/targets', 'get /v1/targets/{id}', 'patch /v1/targets/{id}', 'delete /v1/targets/{id}', 'post /v1/targets/{id}/streams',
    'get /v1/targets/{id}/streams', 'get /v1/streams/{id}', 'post /v1/streams/{id}/start', 'post /v1/streams/{id}/stop', 'delete /v1/streams/{id}',
    'get /v1/streams/{id}/partitions', 'get /v1/streams/{id}/files/{name}', 'get /v1/streams/{id}/partitions/{n}/{name}', 'get /v1/streams/{id}/partitions/{n}/checkpoint/{name}',
    'get /v1/streams/{id}/frames/{name}', 'get /v1/streams/{id}/errors', 'get /v1/active-streams', 'get /v1/active-cores', 'get /v1/nodes',
  ];
  for (const e of expected) {
    const [m, p] = e.split(' ') as [string, string];
    t.ok(doc.paths[p]?.[m], e);
  }
});

t.test('README.md and docs/ link only to files inside the repository (or to the web)', async (t) => {
  const pages = ['README.md', 'CHANGELOG.md', 'bench/README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  let links = 0;
  for (const page of pages) {
    const text = fs.readFileSync(path.join(ROOT, page), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
      links++;
      const file = path.resolve(ROOT, path.dirname(page), target.split('#')[0]!);
      t.ok(file.startsWith(ROOT + path.sep) && fs.existsSync(file), `${page}: ${target} is a file of the repository`);
    }
  }
  t.ok(links > 10, `relative links were found and checked (${links})`);
});
