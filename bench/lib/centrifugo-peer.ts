/**
 * Centrifugo v5.4.9 as a peer of the coordinator in the sessions and set-up benchmarks:
 * started with the stack's certificates on loopback (src/provision/centrifugo.ts builds and
 * caches it), measured through /proc like the coordinator's server groups, and driven by
 * the same load generator in its Centrifugo mode (bench/loadgen.ts).
 */
import path from 'node:path';
import { CENTRIFUGO_VERSION, startCentrifugo, type CentrifugoService } from '../../src/provision/centrifugo';
import type { SessionsCommand } from '../loadgen';
import type { BenchContext } from './context';
import { processTree } from './proc';
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
    output: () => '',
    // Centrifugo is one process; SIGTERM makes it close its sockets, which nothing measures.
    stop: () => service.stop(),
  };
}

/** The fields of a `sessions` command that make a load generator open Centrifugo sessions. */
export function peerSessions(peer: PeerServer, loadgen: number): Pick<SessionsCommand, 'url' | 'centrifugo' | 'expect'> {
  return {
    url: peer.service.wsUrl,
    expect: 'any',
    // One prefix per load generator and node: user ids and channel names stay unique.
    centrifugo: { tokenSecret: peer.service.tokenSecret, prefix: `lg${loadgen}-${peer.port}` },
  };
}

/** Stops every node, whatever failed before. */
export async function stopPeers(peers: PeerServer[]): Promise<void> {
  await Promise.all(peers.map((p) => p.stop().catch(() => undefined)));
}
