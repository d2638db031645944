/**
 * Several coordinator processes on one Redis and one MongoDB (own ports, own data dirs):
 * `/v1/nodes` on either lists both with their sessions and address, metrics carry the node
 * id, and a node killed with SIGKILL (no goodbye) disappears within three heartbeats.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import type { NodeInfo } from '../src/store/live';
import { cliServer } from './helpers/core-raw';
import { eventually, listeningPort, request, runCli, writeConfig } from './helpers/server';
import { stopStack } from '../test-support/stack';

t.teardown(() => stopStack());

/** server.nodeHeartbeatS for both processes (short, so the test is quick). */
const HEARTBEAT_S = 2;

t.test('two processes list each other; a killed one drops out within three heartbeats', async (t) => {
  const a = await cliServer(await freePort(), { 'redis.keyPrefix': 'nodes:', 'server.nodeHeartbeatS': HEARTBEAT_S }, /"msg":"listening"/);
  t.teardown(() => a.stop());
  const f = a.f;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-data-b-'));
  const b = runCli(['serve', '--config', writeConfig({ ...a.overrides, 'server.port': await freePort(), dataDir })]);
  t.teardown(() => {
    b.child.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const portB = await listeningPort(b);
  const urlB = `https://127.0.0.1:${portB}`;

  // A core on B, so B's entry has a session to report.
  const core = await f.client({ url: `wss://127.0.0.1:${portB}/core/v1`, reconnect: false });
  t.teardown(() => core.close());
  const nodeB = core.welcome!.node;

  const nodes = async (): Promise<NodeInfo[]> => (await f.api<{ nodes: NodeInfo[] }>('GET', '/v1/nodes', f.admin, undefined, 200)).nodes;
  const both = await eventually(async () => {
    const list = await nodes();
    const nb = list.find((n) => n.node === nodeB);
    return list.length === 2 && nb?.sessions === 1 ? list : undefined;
  }, 15000, 'both nodes listed, B with its session');
  const nb = both.find((n) => n.node === nodeB)!;
  t.match(nb, { pid: b.child.pid, sessions: 1, sessions_by_engine: { openmm: 1 } }, 'B with its core');
  t.match(nb.url, new RegExp(`:${portB}$`), "B's address");
  const na = both.find((n) => n.node !== nodeB)!;
  t.match(na, { pid: a.p.child.pid, sessions: 0 });
  t.match(na.url, new RegExp(`:${a.port}$`), "A's address");

  const metricsB = (await request(`${urlB}/metrics`, { ca: a.ca })).body.toString();
  t.match(metricsB, new RegExp(`coordinator_open_sockets\\{engine="openmm",node="${nodeB}"\\} 1`), "B's metrics carry B's node id");
  const metricsA = (await request(`https://127.0.0.1:${a.port}/metrics`, { ca: a.ca })).body.toString();
  t.match(metricsA, new RegExp(`node="${na.node}"`), "A's carry A's");
  t.notMatch(metricsA, new RegExp(`node="${nodeB}"`));

  b.child.kill('SIGKILL');
  await b.exited;
  const killed = Date.now();
  await eventually(async () => !(await nodes()).some((n) => n.node === nodeB), 3 * HEARTBEAT_S * 1000 + 5000, 'B gone from /v1/nodes');
  const gone = Date.now() - killed;
  t.comment(`killed node gone after ${gone} ms (heartbeat ${HEARTBEAT_S} s)`);
  // The registry entry expires three heartbeats after the last one (sent before the kill); the margin covers polling on a loaded machine.
  t.ok(gone <= 3 * HEARTBEAT_S * 1000 + 3000, `gone within three heartbeats (${gone} ms)`);
  t.same((await nodes()).map((n) => n.node), [na.node], 'A remains');
});
