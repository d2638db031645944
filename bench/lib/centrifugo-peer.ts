/**
 * Centrifugo v5.4.9 as a peer of the coordinator in the sessions and set-up benchmarks:
 * started with the stack's certificates on loopback (src/provision/centrifugo.ts builds and
 * caches it), measured through /proc like the coordinator's server groups, and driven by
 * the same load generator in its Centrifugo mode (bench/loadgen.ts).
 */
import path from 'node:path';
import { CENTRIFUGO_VERSION, STATE_NAMESPACE, startCentrifugo, type CentrifugoService } from '../../src/provision/centrifugo';
import { request } from '../../test-support/admin-api';
import type { SessionsCommand } from '../loadgen';
import type { BenchContext } from './context';
import { RECIPE, seedBody } from './fixtures';
import { processTree, sumRssKiB } from './proc';
import type { BenchServer } from './server';

/** Label of the peer in rows and notes. */
export const PEER = `Centrifugo ${CENTRIFUGO_VERSION}`;

/**
 * The coordinator's `core.heartbeatS` default: Centrifugo pings its clients as often as the
 * coordinator pings cores, so idle sessions cost both servers the same traffic.
 */
export const PEER_PING_INTERVAL_S = 30;

/** A running Centrifugo node, shaped like the coordinator's server groups. */
export interface PeerServer extends BenchServer {
  service: CentrifugoService;
}

let started = 0;

/** Starts one Centrifugo node (memory engine, TLS, HMAC tokens) for a benchmark. */
export async function startPeer(ctx: BenchContext, tag: string): Promise<PeerServer> {
  const c = ctx.stack.stack.certs;
  const service = await startCentrifugo({
    dir: path.join(ctx.workDir, `${tag}-${++started}`),
    cert: c.fullChain,
    key: c.key,
    pingIntervalS: PEER_PING_INTERVAL_S,
    log: (l) => ctx.log(`${tag}: ${l}`),
  });
  return {
    service,
    port: service.port,
    url: service.url,
    pid: service.pid,
    pids: () => processTree(service.pid),
    memoryKiB: () => sumRssKiB(processTree(service.pid)),
    output: () => '',
    // Centrifugo is one process; SIGTERM makes it close its sockets, which nothing measures.
    stop: () => service.stop(),
  };
}

/**
 * Publishes what an assignment of stream `k` carries (the recipe's seed files as
 * `{files: {name: base64}}`, about 270 KiB of JSON) to channel `state:<k>`, for each of the
 * recipe's distinct seed contents. A session that subscribes to one of them with recovery
 * receives it in the subscribe reply. Returns the number of channels.
 */
export async function publishStates(service: CentrifugoService, ca: string): Promise<number> {
  for (let k = 0; k < RECIPE.distinctSeeds; k++) {
    const res = await request(`${service.url}/api/publish`, {
      method: 'POST',
      ca,
      headers: { 'content-type': 'application/json', 'x-api-key': service.apiKey },
      body: JSON.stringify({ channel: `${STATE_NAMESPACE}:${k}`, data: seedBody(k) }),
      timeoutMs: 30_000,
    });
    const r = res.status === 200 ? res.json<{ result?: { offset?: number }; error?: unknown }>() : undefined;
    // With history on, a publication that was kept has an offset.
    if (!r?.result?.offset) throw new Error(`publish to ${STATE_NAMESPACE}:${k}: ${res.status} ${res.body.toString().slice(0, 200)}`);
  }
  return RECIPE.distinctSeeds;
}

/**
 * The fields of a `sessions` command that make a load generator open Centrifugo sessions;
 * with `stateChannels`, each session subscribes to one of the channels {@link publishStates}
 * filled and must receive its publication.
 */
export function peerSessions(peer: PeerServer, loadgen: number, stateChannels?: number): Pick<SessionsCommand, 'url' | 'centrifugo' | 'expect'> {
  return {
    url: peer.service.wsUrl,
    expect: 'any',
    // One prefix per load generator and node: user ids and channel names stay unique.
    centrifugo: { tokenSecret: peer.service.tokenSecret, prefix: `lg${loadgen}-${peer.port}`, ...(stateChannels ? { stateChannels } : {}) },
  };
}

/** Stops every node, whatever failed before. */
export async function stopPeers(peers: PeerServer[]): Promise<void> {
  await Promise.all(peers.map((p) => p.stop().catch(() => undefined)));
}
