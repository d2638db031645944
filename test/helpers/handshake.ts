/**
 * A WebSocket handshake request written by hand, for tests that send it over a raw socket
 * (to see the bytes of the answer, or to send what a `ws` client never would).
 */
import crypto from 'node:crypto';

/**
 * The request text: the headers a handshake needs (a fresh key, `Connection: Upgrade`), then
 * `headers` over them by name (`undefined` leaves a header out), then `extraLines` as they are
 * (each ending in CRLF; e.g. a header repeated on two lines).
 */
export function handshakeRequest(path: string, headers: Record<string, string | undefined> = {}, extraLines = ''): string {
  const all = { host: 'localhost', upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': crypto.randomBytes(16).toString('base64'), 'sec-websocket-version': '13', ...headers };
  const lines = Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [`${k}: ${v}\r\n`]));
  return `GET ${path} HTTP/1.1\r\n${lines.join('')}${extraLines}\r\n`;
}

/**
 * The header of a frame from a client announcing `payloadBytes` (length in its shortest form),
 * masked with a zero key so the payload that follows is sent as it is. By default a final
 * binary frame; `opcode` 0 continues a fragmented message, 9 is a ping.
 */
export function clientFrameHeader(payloadBytes: number, opts: { opcode?: number; fin?: boolean } = {}): Buffer {
  const first = ((opts.fin ?? true) ? 0x80 : 0) | (opts.opcode ?? 2);
  if (payloadBytes < 126) return Buffer.from([first, 0x80 | payloadBytes, 0, 0, 0, 0]);
  if (payloadBytes < 65536) {
    const header = Buffer.alloc(8);
    header[0] = first;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(payloadBytes, 2);
    return header;
  }
  const header = Buffer.alloc(14);
  header[0] = first;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(payloadBytes), 2);
  return header;
}
