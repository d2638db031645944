/**
 * The Node baseline of the set-up floor: node:https + ws echo server, the same behaviour as
 * echo-uws.ts (one text message on open, every message echoed) on the same certificates.
 *
 *   node dist/bench/echo-node.js --port N --cert <leaf+intermediate PEM> --key <key PEM>
 */
import fs from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';

const { values } = parseArgs({ options: { port: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, host: { type: 'string' } } });
if (!values.port || !values.cert || !values.key) {
  process.stderr.write('usage: echo-node --port N --cert FILE --key FILE [--host 127.0.0.1]\n');
  process.exit(2);
}

const server = https.createServer({ cert: fs.readFileSync(values.cert), key: fs.readFileSync(values.key), minVersion: 'TLSv1.2' }, (_req, res) => {
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('error', () => undefined);
  ws.send('{"type":"welcome"}');
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(Number(values.port), values.host ?? '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`listening ${typeof a === 'object' && a ? a.port : values.port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
