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
 * The header of a final binary frame from a client announcing `payloadBytes`, masked with a
 * zero key so the payload that follows is sent as it is.
 */
export function clientFrameHeader(payloadBytes: number): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(payloadBytes), 2);
  return header;
}
