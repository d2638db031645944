/**
 * Several coordinator nodes as separate CLI processes (own node id, port and data
 * directory) on one shared MongoDB database and Redis, with TLS off, behind one nginx that
 * terminates TLS and balances them (src/provision/nginx.ts) — the multi-node layout of
 * docs/scaling.md, on loopback. Shared by the multi-node tests and `bench:cluster` (no test
 * framework here).
 */
import fs from 'node:fs';
import type { Db } from 'mongodb';
import { loadConfig } from '../src/config/settings';
import { freePort } from '../src/provision/exec';
import { startNginx, type RunningService } from '../src/provision/nginx';
import { createMongo, type Mongo } from '../src/store/mongo';
import { ApiClient } from './admin-api';
import { runCli, type CliProcess } from './cli';
import { eventually } from './poll';
import { writeConfig } from './config-file';
import { tempDir } from './temp';
import { remoteCoreFixture, type RemoteCoreFixture } from './core-fixture';
import { getStack, stackOverrides, type Overrides } from './stack';

/** One node: a `serve` child process. */
export interface Node {
  index: number;
  port: number;
  /** http://127.0.0.1:port (TLS is nginx's job). */
  url: string;
  p: CliProcess;
  /** Its node id (from its "listening" log line). */
  id: string;
  /** Whether the process still runs. */
  alive(): boolean;
}

/**
 * The nodes, nginx in front and a core fixture made through nginx (its `wsUrl` and
 * `client()` reach /core/v1 through nginx; clients do not reconnect).
 */
export interface Cluster extends RemoteCoreFixture {
  nodes: Node[];
  nginx: RunningService;
  /** https://127.0.0.1:<nginx port> */
  url: string;
  ca: string;
  mongo: Mongo;
  db: Db;
  /** Admin API call to `base` (default: through nginx); throws on a status other than `expect`. */
  api<T = Record<string, unknown>>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number, base?: string): Promise<T>;
  /** SIGKILLs whatever still runs and stops nginx. */
  stop(): Promise<void>;
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  nodes: number;
  /** Config overrides every node shares. */
  overrides?: Overrides;
  /** nginx worker_connections (a proxied socket costs two). */
  workerConnections?: number;
  /** Given each node's output (the tests keep it for a failed file). */
  onServe?: (output: () => string) => void;
}

/** Starts `n` nodes and nginx, waits until all listen, and creates admin, manager, engine key and donor. */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const stack = await getStack();
  const ca = fs.readFileSync(stack.certs.caCert, 'utf8');
  const shared = await stackOverrides({
    'tls.cert': '',
    'tls.key': '',
    'tls.ca': '',
    'server.trustProxy': ['127.0.0.1'],
    'donors.registrationsPerHour': 100_000,
    // Every test core comes from 127.0.0.1 (through nginx, X-Forwarded-For says so) with the
    // fixture's one donor: a node may hold more than the default 256 of its streams.
    'core.maxSocketsPerAddress': 100_000,
    'core.maxAssignmentsPerDonor': 100_000,
    'log.level': 'info',
    ...o.overrides,
  });
  const nodes: Node[] = [];
  for (let i = 0; i < o.nodes; i++) {
    const port = await freePort();
    // Own data directory per node (spill files), as on separate machines.
    const overrides = { ...shared, 'server.port': port, dataDir: tempDir(`sc-node${i}-`) };
    const p = runCli(['serve', '--config', writeConfig(overrides)], { onServe: o.onServe });
    nodes.push({ index: i, port, url: `http://127.0.0.1:${port}`, p, id: '', alive: () => p.child.exitCode === null && p.child.signalCode === null });
  }
  for (const n of nodes) {
    const line = await eventually(async () => n.p.output().split('\n').find((l) => l.includes('"msg":"listening"')), 60_000, `node ${n.index} listening:\n${n.p.output()}`);
    n.id = /"node":"([^"]+)"/.exec(line)?.[1] ?? '';
  }
  const nginxDir = tempDir('sc-nginx-nodes-');
  // Every core connects from 127.0.0.1 here, standing for many volunteers' machines: the
  // per-address cap is sized for that network (as the nodes' own are in bench/lib/server.ts).
  const nginx = await startNginx({ dir: nginxDir, upstreamPorts: nodes.map((n) => n.port), cert: stack.certs.fullChain, key: stack.certs.key, workerConnections: o.workerConnections, connectionsPerAddress: 65_535 });
  const url = nginx.url;
  const mongo = createMongo(loadConfig({ env: {}, overrides: shared }));
  const db = mongo.db;
  const f = await remoteCoreFixture(url, ca, db, {
    clientDefaults: { reconnect: false, requestTimeoutMs: 60_000 },
    // A killed node resets sockets; the close that follows is what matters.
    beforeConnect: (c) => c.on('error', () => undefined),
  });
  return {
    ...f,
    nodes,
    nginx,
    url,
    ca,
    mongo,
    db,
    api: <T>(method: string, p: string, token: string | undefined, body?: unknown, expect?: number, base = url) => new ApiClient(base, ca).json<T>(method, p, token, body, expect),
    stop: async () => {
      for (const n of nodes) {
        if (n.alive()) {
          n.p.child.kill('SIGKILL');
          await n.p.exited;
        }
      }
      await nginx.stop();
      await mongo.client.close();
      fs.rmSync(nginxDir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` over `items`, at most `n` at once. */
export async function inBatches<T, R>(items: readonly T[], n: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n) out.push(...(await Promise.all(items.slice(i, i + n).map((x, j) => fn(x, i + j)))));
  return out;
}

/** The p-th percentile (0–100) of `values` (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
