/**
 * A minimal check of a transport problem the frames benchmark found: with the vendored
 * uWebSockets.js (SSLApp), a socket is dropped (close 1006, no close frame) when the
 * server sends a message from inside the message handler while the client still has about
 * 800 KB or more of data on its way (a core pipelining frames). Plain App is not affected,
 * and neither is a reply sent later (setImmediate), which is what src/transport/uws-core.ts does.
 * Prints one line per case; the "inline" and "corked" cases showed DROPPED until patch 7 of
 * the vendored build (BUILD.md) fixed uSockets' TLS write.
 *
 *   node dist/bench/uws-tls-burst.js     (makes its own dev certificates in a temp dir)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import uws from 'uWebSockets.js';
import WebSocket from 'ws';
import { ensureDevCertificates } from '../src/provision/certs';

interface Case {
  tls: boolean;
  size: number;
  count: number;
  reply: 'none' | 'inline' | 'corked' | 'setImmediate';
}

function runCase(certs: { fullChain: string; key: string }, c: Case): Promise<string> {
  return new Promise((resolve) => {
    const app = c.tls ? uws.SSLApp({ cert_file_name: certs.fullChain, key_file_name: certs.key }) : uws.App();
    let received = 0;
    let listen: uws.us_listen_socket | undefined;
    const label = `${c.tls ? 'SSLApp' : 'App   '} ${String(c.count).padStart(5)} × ${String(c.size).padStart(7)} B sent at once, reply ${c.reply.padEnd(12)}`;
    const done = (outcome: string): void => {
      if (listen) uws.us_listen_socket_close(listen);
      listen = undefined;
      app.close();
      resolve(`${label} → ${outcome}`);
    };
    app.ws('/*', {
      maxPayloadLength: 16 * 1024 * 1024,
      idleTimeout: 60,
      message: (ws) => {
        received++;
        if (c.reply === 'inline') ws.send('{"type":"ack"}');
        else if (c.reply === 'corked') ws.cork(() => ws.send('{"type":"ack"}'));
        else if (c.reply === 'setImmediate') {
          setImmediate(() => {
            try {
              ws.send('{"type":"ack"}');
            } catch {
              // closed meanwhile
            }
          });
        }
      },
    });
    app.listen('127.0.0.1', 0, (socket) => {
      if (!socket) return done('cannot listen');
      listen = socket;
      const port = uws.us_socket_local_port(socket);
      const client = new WebSocket(`${c.tls ? 'wss' : 'ws'}://127.0.0.1:${port}/`, { rejectUnauthorized: false });
      let acks = 0;
      const timer = setTimeout(() => {
        client.terminate();
        done(`ok: server received ${received}/${c.count}, client got ${acks} acks`);
      }, 2000);
      client.on('open', () => {
        const payload = Buffer.alloc(c.size, 1);
        for (let i = 0; i < c.count; i++) client.send(payload);
      });
      client.on('message', () => {
        acks++;
        if (c.reply !== 'none' && acks === c.count) {
          clearTimeout(timer);
          client.terminate();
          done(`ok: all ${c.count} answered`);
        }
      });
      client.on('error', () => undefined);
      client.on('close', (code) => {
        if (acks === c.count && c.reply !== 'none') return;
        clearTimeout(timer);
        done(`DROPPED (close ${code}) after the server received ${received}/${c.count}, client got ${acks} acks`);
      });
    });
  });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uws-burst-'));
  try {
    const certs = await ensureDevCertificates(path.join(dir, 'certs'));
    const cases: Case[] = [
      { tls: true, size: 65536, count: 8, reply: 'inline' },
      { tls: true, size: 65536, count: 16, reply: 'inline' },
      { tls: true, size: 65536, count: 16, reply: 'corked' },
      { tls: true, size: 65536, count: 16, reply: 'setImmediate' },
      { tls: true, size: 65536, count: 64, reply: 'none' },
      { tls: false, size: 65536, count: 64, reply: 'inline' },
      { tls: true, size: 1024, count: 2000, reply: 'inline' },
      { tls: true, size: 1048576, count: 4, reply: 'inline' },
    ];
    for (const c of cases) process.stdout.write(`${await runCase(certs, c)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
