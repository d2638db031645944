/**
 * The floor of the set-up benchmark: a bare uWebSockets.js TLS WebSocket echo server (the
 * vendored build, `SSLApp`) on the same certificate chain and TLS settings as the coordinator
 * (src/transport/uws-server.ts). On open it
 * sends one text message (standing in for the welcome); every message is echoed. No
 * authentication, no storage: what is left is TLS, the upgrade and two small messages.
 * With `--reply-bytes N` every message is answered instead with one text message of N bytes
 * made once at start (standing in for an assignment of that size, sent the cheapest way: the
 * same bytes every time): the floor of a set-up that sends what the coordinator sends.
 *
 *   node dist/bench/echo-uws.js --port N --cert <leaf+intermediate PEM> --key <key PEM> [--reply-bytes N]
 */
import { parseArgs } from 'node:util';
import uws from 'uWebSockets.js';
import { DEFAULT_CIPHERS } from '../src/transport/tls-policy';

const { values } = parseArgs({ options: { port: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, host: { type: 'string' }, 'reply-bytes': { type: 'string' } } });
if (!values.port || !values.cert || !values.key) {
  process.stderr.write('usage: echo-uws --port N --cert FILE --key FILE [--host 127.0.0.1]\n');
  process.exit(2);
}

/** The sized reply: a JSON string of base64 letters, as an assignment's files are. */
const replyBytes = Number(values['reply-bytes'] ?? 0);
const reply = replyBytes > 0 ? Buffer.from(`{"type":"assignment","files":"${'QUJD'.repeat(Math.ceil(replyBytes / 4)).slice(0, Math.max(0, replyBytes - 35))}"}`) : undefined;

const app = uws.SSLApp({ cert_file_name: values.cert, key_file_name: values.key, ssl_prefer_low_memory_usage: true, ssl_ciphers: DEFAULT_CIPHERS });
app.ws('/*', {
  maxPayloadLength: 16 * 1024 * 1024,
  idleTimeout: 120,
  sendPingsAutomatically: true,
  compression: 0,
  open: (ws) => {
    ws.send('{"type":"welcome"}', false);
  },
  message: (ws, message, isBinary) => {
    if (reply) ws.send(reply, false);
    else ws.send(message, isBinary);
  },
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});
app.listen(values.host ?? '127.0.0.1', Number(values.port), (socket) => {
  if (!socket) {
    process.stderr.write(`echo-uws: cannot listen on port ${values.port}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening ${uws.us_socket_local_port(socket)}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
