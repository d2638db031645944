/**
 * The benchmarks' Centrifugo peer is what they say it is: Centrifugo v5.4.9 built from the
 * Go module proxy (cached after the first build), serving TLS with the dev chain, refusing
 * clients without a valid connection token, and the load generator's Centrifugo mode does
 * the whole exchange (connect with a token, subscribe) and keeps held sessions alive by
 * answering pings, which a client that does not answer is disconnected for. Both load
 * generators are checked: bench/loadgen.ts and the Go one of the sessions benchmark.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import { CENTRIFUGO_VERSION, connectionToken, ensureCentrifugo, STATE_NAMESPACE, startCentrifugo, type CentrifugoService } from '../src/provision/centrifugo';
import { publishStates } from '../bench/lib/centrifugo-peer';
import { RECIPE, seedBody } from '../bench/lib/fixtures';
import { generateCertificates } from '../src/provision/certs';
import { killAllChildrenSync, run } from '../src/provision/exec';
import { closeLoadGens, startLoadGens, type LoadGen, type LoadGenKind } from '../bench/lib/loadgen-pool';
import type { SessionsResult } from '../bench/loadgen';

const PING_S = 4;
const PONG_S = 2;

/** Opens a raw client, sends `first` on open, resolves with every message until close or `ms`. */
function rawClient(url: string, ca: string, first: unknown[], ms: number): Promise<{ messages: string[]; closeCode?: number }> {
  return new Promise((resolve) => {
    const messages: string[] = [];
    const ws = new WebSocket(url, { ca, servername: 'localhost' } as WebSocket.ClientOptions);
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ messages });
    }, ms);
    ws.on('open', () => {
      for (const m of first) ws.send(JSON.stringify(m));
    });
    ws.on('message', (d: Buffer) => messages.push(d.toString()));
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve({ messages, closeCode: code });
    });
  });
}

t.test('Centrifugo peer', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-centrifugo-test-'));
  t.teardown(() => {
    killAllChildrenSync();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const bin = await ensureCentrifugo({ log: (l) => t.comment(l) });
  const { stdout } = await run(bin, ['version']);
  t.match(stdout, `Centrifugo ${CENTRIFUGO_VERSION}`, 'the cached binary is the pinned release');

  const certs = await generateCertificates(path.join(dir, 'certs'));
  const ca = fs.readFileSync(certs.caCert, 'utf8');
  const svc: CentrifugoService = await startCentrifugo({ dir: path.join(dir, 'run'), cert: certs.fullChain, key: certs.key, binary: bin, pingIntervalS: PING_S, pongTimeoutS: PONG_S });
  t.teardown(() => svc.stop());
  t.equal(svc.host, '127.0.0.1', 'loopback only');
  t.equal(svc.config.tls, true);

  /** A load generator of `kind` in Centrifugo mode: open sessions, read its counts. */
  // Each numbers its source ports from 10000, so each gets an address of its own.
  const loadGen = async (kind: LoadGenKind, localAddress: string) => {
    const gens: LoadGen[] = await startLoadGens(1, kind);
    t.teardown(() => closeLoadGens(gens));
    const lg = gens[0]!;
    return {
      sessions: (tokenSecret: string, count: number, stateChannels?: number): Promise<SessionsResult> => {
        lg.send({ cmd: 'sessions', url: svc.wsUrl, ca, localAddress, count, concurrency: 8, timeoutMs: 10_000, deadlineMs: 30_000, expect: 'any', centrifugo: { tokenSecret, prefix: `t-${kind}`, ...(stateChannels ? { stateChannels } : {}) } });
        return lg.next<SessionsResult>(['sessions'], 60_000);
      },
      stats: (): Promise<{ open: number; dropped: number }> => {
        lg.send({ cmd: 'stats' });
        return lg.next<{ open: number; dropped: number }>(['stats'], 10_000);
      },
    };
  };
  const gens = { node: await loadGen('node', '127.0.0.1'), go: await loadGen('go', '127.0.61.2') };

  for (const kind of ['node', 'go'] as const) {
    t.test(`${kind} load generator: a token signed with another secret is refused`, async (t) => {
      const r = await gens[kind].sessions('not-the-secret', 5);
      t.equal(r.ok, 0);
      t.same(Object.keys(r.reasons), ['closed 3500'], 'invalid token (3500)');
    });
  }

  t.test('a client without a token cannot connect, nor subscribe before connecting', async (t) => {
    const anonymous = await rawClient(svc.wsUrl, ca, [{ id: 1, connect: {} }], 10_000);
    t.notOk(anonymous.messages.some((m) => m.includes('"client"')), 'no connect result');
    t.ok(anonymous.closeCode !== undefined && anonymous.closeCode >= 3000, `closed by the server (${anonymous.closeCode})`);
    const early = await rawClient(svc.wsUrl, ca, [{ id: 1, subscribe: { channel: 'x' } }], 10_000);
    t.notOk(early.messages.some((m) => m.includes('"subscribe"')), 'no subscribe result');
    t.ok(early.closeCode !== undefined && early.closeCode >= 3000, `closed by the server (${early.closeCode})`);
  });

  t.test('both load generators connect, subscribe and keep their sessions through pings', async (t) => {
    for (const kind of ['node', 'go'] as const) {
      const r = await gens[kind].sessions(svc.tokenSecret, 40);
      t.equal(r.ok, 40, `${kind}: all established (${JSON.stringify(r.reasons)})`);
      t.equal(r.latenciesMs.length, 40);
    }
    // A client that subscribes but never answers pings is disconnected within ping + pong.
    const token = connectionToken(svc.tokenSecret, 'silent');
    const silent = await rawClient(svc.wsUrl, ca, [{ id: 1, connect: { token } }, { id: 2, subscribe: { channel: 'stream-silent' } }], (PING_S + PONG_S) * 1000 + 10_000);
    t.ok(silent.messages.some((m) => m.includes('"subscribe"')), 'the silent client was subscribed');
    t.equal(silent.closeCode, 3012, 'disconnected for not answering pings (3012 no pong)');
    // By now every held session has been pinged at least once and had to answer.
    for (const kind of ['node', 'go'] as const) {
      const stats = await gens[kind].stats();
      t.equal(stats.dropped, 0, `${kind}: no held session dropped`);
      t.equal(stats.open, 40, `${kind}: all held sessions open`);
    }
  });

  t.test('state channels: a session counts only when its subscribe reply carries the published seed body', async (t) => {
    for (const kind of ['node', 'go'] as const) {
      const r = await gens[kind].sessions(svc.tokenSecret, 4, RECIPE.distinctSeeds);
      t.equal(r.ok, 0, `${kind}: nothing published yet, no session counted`);
      t.same(r.reasons, { 'no state': 4 }, `${kind}: refused as 'no state'`);
    }
    t.equal(await publishStates(svc, ca), RECIPE.distinctSeeds, 'one channel per distinct seed');
    for (const kind of ['node', 'go'] as const) {
      const r = await gens[kind].sessions(svc.tokenSecret, 40, RECIPE.distinctSeeds);
      t.equal(r.ok, 40, `${kind}: all established (${JSON.stringify(r.reasons)})`);
    }
    const token = connectionToken(svc.tokenSecret, 'reader');
    const reader = await rawClient(svc.wsUrl, ca, [{ id: 1, connect: { token } }, { id: 2, subscribe: { channel: `${STATE_NAMESPACE}:3`, recover: true } }], 3_000);
    const reply = reader.messages
      .flatMap((m) => m.split('\n'))
      .filter((l) => l.includes('"id":2'))
      .map((l) => JSON.parse(l) as { subscribe?: { recovered?: boolean; publications?: { data?: unknown }[] } })[0];
    t.equal(reply?.subscribe?.recovered, true, 'recovered');
    t.same(reply?.subscribe?.publications?.map((p) => p.data), [seedBody(3)], 'the reply carries seed body 3, byte for byte');
    const bytes = reader.messages.reduce((n, m) => n + Buffer.byteLength(m), 0);
    t.ok(bytes > 270_000, `as many bytes as an assignment's files (${bytes} B)`);
  });
});
