/**
 * Several coordinator nodes as separate CLI processes (own node id, port and data
 * directory) on one shared MongoDB database and Redis, with TLS off, behind one nginx that
 * terminates TLS and balances them (src/provision/nginx.ts) — the multi-node layout of
 * docs/scaling.md, on loopback.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Db } from 'mongodb';
import { CoreClient, type CoreClientOptions } from '../../src/client';
import { loadConfig } from '../../src/config/settings';
import { freePort } from '../../src/provision/exec';
import { startNginx, type RunningService } from '../../src/provision/nginx';
import { initDatabase } from '../../src/store/init';
import { createMongo, type Mongo } from '../../src/store/mongo';
import { eventually, request, runCli, stackOverrides, writeConfig, type CliProcess, type Overrides } from './server';
import { getStack } from './stack';

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

/** The nodes, nginx in front and a fixture made through nginx. */
export interface Cluster {
  nodes: Node[];
  nginx: RunningService;
  /** https://127.0.0.1:<nginx port> */
  url: string;
  ca: string;
  mongo: Mongo;
  db: Db;
  admin: string;
  manager: string;
  engineKey: string;
  donor: string;
  /** wss:// URL of /core/v1 through nginx. */
  wsUrl: string;
  /** Admin API call to `base` (default: through nginx); throws on a status other than `expect`. */
  api<T = Record<string, unknown>>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number, base?: string): Promise<T>;
  target(body?: Record<string, unknown>): Promise<string>;
  stream(targetId: string, seed?: Buffer): Promise<string>;
  /** A core connected through nginx. */
  client(extra?: Partial<CoreClientOptions>): Promise<CoreClient>;
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
    const overrides = { ...shared, 'server.port': port, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), `sc-node${i}-`)) };
    const p = runCli(['serve', '--config', writeConfig(overrides)]);
    nodes.push({ index: i, port, url: `http://127.0.0.1:${port}`, p, id: '', alive: () => p.child.exitCode === null && p.child.signalCode === null });
  }
  for (const n of nodes) {
    const line = await eventually(async () => n.p.output().split('\n').find((l) => l.includes('"msg":"listening"')), 60_000, `node ${n.index} listening:\n${n.p.output()}`);
    n.id = /"node":"([^"]+)"/.exec(line)?.[1] ?? '';
  }
  const nginxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-nginx-nodes-'));
  const nginx = await startNginx({ dir: nginxDir, upstreamPorts: nodes.map((n) => n.port), cert: stack.certs.fullChain, key: stack.certs.key, workerConnections: o.workerConnections });
  const url = nginx.url;
  const mongo = createMongo(loadConfig({ env: {}, overrides: shared }));
  const db = mongo.db;
  const admin = (await initDatabase(db)).token;
  const api = async <T>(method: string, p: string, token: string | undefined, body?: unknown, expect?: number, base = url): Promise<T> => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const r = await request(`${base}${p}`, { ca, method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (expect !== undefined && r.status !== expect) throw new Error(`${method} ${base}${p}: expected ${expect}, got ${r.status} ${r.body.toString()}`);
    return (r.body.length ? JSON.parse(r.body.toString()) : {}) as T;
  };
  const manager = (await api<{ token: string }>('POST', '/v1/users', admin, { name: 'mgr', role: 'manager' }, 201)).token;
  const engineKey = (await api<{ key: string }>('POST', '/v1/engine-keys', admin, { engine: 'openmm', description: 'nodes' }, 201)).key;
  const donor = (await api<{ token: string }>('POST', '/v1/donors', undefined, { name: 'donor1' }, 201)).token;
  const wsUrl = `${url.replace(/^https/, 'wss')}/core/v1`;
  return {
    nodes,
    nginx,
    url,
    ca,
    mongo,
    db,
    admin,
    manager,
    engineKey,
    donor,
    wsUrl,
    api,
    target: async (body = {}) => (await api<{ target_id: string }>('POST', '/v1/targets', manager, { engines: ['openmm'], stage: 'public', ...body }, 201)).target_id,
    stream: async (targetId, seed = Buffer.from('seed state')) =>
      (await api<{ stream_id: string }>('POST', `/v1/targets/${targetId}/streams`, manager, { files: { 'state.xml': seed.toString('base64') } }, 201)).stream_id,
    client: async (extra = {}) => {
      const c = new CoreClient({ url: wsUrl, engineKey, donorToken: donor, ca, reconnect: false, requestTimeoutMs: 60_000, ...extra });
      // A killed node resets sockets; the close that follows is what matters.
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
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
