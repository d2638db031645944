/**
 * deploy/grafana/stream-coordinator.json against a real server: every PromQL expression
 * (panels and variable queries) parses with the Prometheus project's own grammar, and
 * every metric it selects is exposed by /metrics (by its HELP and TYPE lines, so labelled
 * series that have no samples yet still count; `_bucket`, `_sum` and `_count` only for a
 * histogram, `_sum` and `_count` also for a summary).
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parser } from '@prometheus-io/lezer-promql';
import client from 'prom-client';
import { startApiServer, type ApiServer } from './helpers/api';
import { stopStack } from '../test-support/stack';

const FILE = path.resolve(__dirname, '..', '..', 'deploy', 'grafana', 'stream-coordinator.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}

/** Grafana's variables replaced by values of the kind Grafana puts there, so the text is plain PromQL. */
function substitute(expr: string): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
    .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, '.*');
}

/** The metric names an expression selects; throws on a syntax error. */
function metricNames(expr: string): string[] {
  const text = substitute(expr);
  const tree = parser.parse(text);
  const names: string[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name === 'VectorSelector') {
        const id = node.node.getChild('Identifier');
        if (id) names.push(text.slice(id.from, id.to));
        else throw new Error(`a selector without a metric name in: ${expr}`);
      }
    },
  });
  if (errors.length > 0) throw new Error(`PromQL syntax error at offset ${errors[0]} of: ${text}`);
  return names;
}

/** Metric families of an exposition: name → type, from the TYPE lines; names with HELP lines. */
function families(text: string): { types: Map<string, string>; help: Set<string> } {
  const types = new Map<string, string>();
  const help = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const h = /^# HELP (\S+) /.exec(line);
    if (h) help.add(h[1]!);
  }
  return { types, help };
}

/** The family a queried name belongs to, or undefined when the exposition has none. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!m) return undefined;
  const type = types.get(m[1]!);
  if (type === 'histogram' || (type === 'summary' && m[2] !== 'bucket')) return m[1];
  return undefined;
}

let srv: ApiServer;
t.before(async () => {
  srv = await startApiServer();
});
t.teardown(async () => {
  await srv?.close();
  await stopStack();
});

t.test('the metric name extraction', async (t) => {
  t.same(metricNames('histogram_quantile(0.9, sum by (le, instance) (rate(a_seconds_bucket{job=~"$job"}[$__rate_interval])))'), ['a_seconds_bucket']);
  t.same(metricNames('sum(rate(x_total{status=~"5..", route="/v1/by(x)"}[5m])) / on(instance) group_left y offset 1h'), ['x_total', 'y']);
  t.throws(() => metricNames('sum(rate(x_total[5m])'), /syntax error/);
  const { types } = families('# HELP h_seconds x\n# TYPE h_seconds histogram\n# TYPE c_total counter\n# TYPE s summary\n');
  t.equal(familyOf('h_seconds_bucket', types), 'h_seconds');
  t.equal(familyOf('c_total', types), 'c_total');
  t.equal(familyOf('c_total_count', types), undefined, '_count is not a suffix of a counter');
  t.equal(familyOf('s_count', types), 's');
  t.equal(familyOf('s_bucket', types), undefined, 'summaries have no buckets');
  t.equal(familyOf('nope_total', types), undefined);
});

t.test('every metric the dashboard queries exists in /metrics, of one process and of a worker group', async (t) => {
  const dash = JSON.parse(fs.readFileSync(FILE, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: Array<{ name: string; type: string; query?: { query: string } | string }> } };
  // Touch the API so the HTTP series have samples (the check itself only needs HELP/TYPE).
  await srv.api.expect(200, 'GET', '/v1/targets');
  const res = await srv.api.call('GET', '/metrics');
  t.equal(res.status, 200);
  // With server.workers > 1 the primary serves the workers' metrics aggregated, and the
  // aggregation drops some (process start time): the board must work on that exposition too.
  const single = families(res.body.toString());
  const aggregated = families(await client.AggregatorRegistry.aggregate([await srv.ts.server.metrics.registry.getMetricsAsJSON()]).metrics());
  const types = new Map([...single.types].filter(([name]) => aggregated.types.has(name)));
  const help = new Set([...single.help].filter((name) => aggregated.help.has(name)));
  t.ok(types.size < single.types.size, `the aggregated exposition lacks ${single.types.size - types.size} of the families`);
  t.ok(types.size > 10, `the exposition has ${types.size} families`);

  const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const exprs: Array<{ where: string; expr: string }> = [];
  for (const p of panels) {
    if (p.type === 'row') continue;
    t.ok(p.targets && p.targets.length > 0, `panel "${p.title}" has queries`);
    t.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" uses the data source variable`);
    for (const q of p.targets ?? []) exprs.push({ where: `panel "${p.title}"`, expr: q.expr });
  }
  for (const v of dash.templating.list.filter((v) => v.type === 'query')) {
    const q = typeof v.query === 'string' ? v.query : v.query!.query;
    const m = /^label_values\((.+),\s*\w+\)$/.exec(q);
    t.ok(m, `variable ${v.name} is a label_values query`);
    exprs.push({ where: `variable ${v.name}`, expr: m![1]! });
  }
  t.ok(exprs.length >= 30, `${exprs.length} expressions`);

  const used = new Set<string>();
  for (const { where, expr } of exprs) {
    let names: string[] = [];
    t.doesNotThrow(() => (names = metricNames(expr)), `${where} parses`);
    t.ok(names.length > 0, `${where} selects a metric`);
    for (const name of names) {
      const family = familyOf(name, types);
      t.ok(family, `${where}: ${name} is in /metrics`);
      if (family) {
        t.ok(help.has(family), `${family} has a HELP line`);
        used.add(family);
      }
    }
    if (where.startsWith('panel')) t.match(expr, /instance=~"\$instance"/, `${where} follows the node variable`);
  }

  // What the board is for: sessions, assignments, commits, latencies, storage errors, HTTP.
  for (const family of [
    'coordinator_open_sockets',
    'coordinator_assign_duration_seconds',
    'coordinator_commit_duration_seconds',
    'coordinator_frames_committed_total',
    'coordinator_storage_errors_total',
    'coordinator_http_requests_total',
    'coordinator_http_request_duration_seconds',
  ]) {
    t.ok(used.has(family), `the board shows ${family}`);
  }
  const all = exprs.map((e) => e.expr).join('\n');
  for (const h of ['coordinator_assign_duration_seconds', 'coordinator_commit_duration_seconds', 'coordinator_http_request_duration_seconds']) {
    t.match(all, new RegExp(`histogram_quantile\\(0\\.\\d+, sum by \\(le[^)]*\\) \\(rate\\(${h}_bucket`), `${h} as quantiles`);
  }
  t.ok(dash.templating.list.some((v) => v.name === 'instance'), 'a node (instance) variable');

  // The layout Grafana needs: unique ids, panels within the 24-column grid.
  const ids = panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels) t.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the grid`);
  t.equal(dash.uid, 'stream-coordinator');
});
